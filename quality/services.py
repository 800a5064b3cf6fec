"""Writes of the quality layer: keyword-only functions in a transaction (house style rule 2)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from policies.models import Judge
from policies.services import judge_flag_raise
from quality.agreement import judge_version_agreement
from reviews.services.webhooks import webhook_event_send
from tenants.models import Tenant


def judge_flag_settings() -> dict:
    return {
        "threshold": float(settings.HITL_JUDGE_FLAG_BELOW_KAPPA),
        "min_compared": int(settings.HITL_JUDGE_FLAG_MIN_COMPARED),
        "window_days": int(settings.HITL_JUDGE_FLAG_WINDOW_DAYS),
        "sample_rate": settings.HITL_JUDGE_FLAG_SAMPLE_RATE,
    }


@transaction.atomic
def judges_agreement_check(*, tenant: Tenant, now: datetime | None = None) -> list[int]:
    """Flag every active judge whose current version agrees too little with people.

    Over the last ``HITL_JUDGE_FLAG_WINDOW_DAYS`` (by the time people decided), a judge's
    current version with at least ``HITL_JUDGE_FLAG_MIN_COMPARED`` verdicts compared and a
    Cohen's kappa below ``HITL_JUDGE_FLAG_BELOW_KAPPA`` (or undefined: it never agrees beyond
    chance) is flagged: audited (``judge.flagged``), and each webhook endpoint gets a
    ``judge.flagged`` event. Idempotent: a judge flagged already is left as it is until a
    person clears it. Returns the ids of the judges flagged now.
    """
    now = now or timezone.now()
    config = judge_flag_settings()
    start = now - timedelta(days=config["window_days"])
    judges = {judge.pk: judge for judge in Judge.objects.for_tenant(tenant).filter(is_active=True)}
    flagged = []
    for figure in judge_version_agreement(tenant=tenant, start=start, end=now):
        judge = judges.get(figure.judge)
        if judge is None or figure.version != judge.version or figure.compared < config["min_compared"]:
            continue
        if figure.kappa is not None and figure.kappa >= config["threshold"]:
            continue
        flag = judge_flag_raise(
            tenant=tenant,
            judge=judge,
            kappa=figure.kappa,
            agreement_rate=figure.percent_agreement,
            compared=figure.compared,
            threshold=config["threshold"],
            sample_rate=config["sample_rate"],
            period_start=start,
            period_end=now,
        )
        if flag is None:
            continue
        webhook_event_send(
            tenant=tenant,
            event="judge.flagged",
            payload={
                "judge": {"id": judge.pk, "name": judge.name, "kind": judge.kind, "version": judge.version},
                "flag": {
                    "id": flag.pk,
                    "kappa": flag.kappa,
                    "agreement_rate": flag.agreement_rate,
                    "compared": flag.compared,
                    "threshold": flag.threshold,
                    "sample_rate": flag.sample_rate,
                    "period_start": start.isoformat(),
                    "period_end": now.isoformat(),
                    "flagged_at": flag.flagged_at.isoformat(),
                },
            },
        )
        flagged.append(judge.pk)
    return flagged
