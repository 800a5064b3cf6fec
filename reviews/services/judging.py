"""Automated judges on outputs: run them, store each verdict once, then finish the sampling decision.

The life of a judged output: ingest stores it ``judging`` with its ``judge_plan``
(the judges that apply, with their versions) and enqueues the judges on commit.
Each judge task runs without a transaction open (an LLM call takes seconds), then
in one transaction locks the outputs, inserts the verdicts (one per output and
judge: a redelivered task adds nothing) and completes every output whose plan is
fully answered: tier, sampling and delivery from the verdicts, review tasks
routed, a webhook when the service must learn that what it may deliver changed.

The database is the source of truth: ``judges_reconcile`` re-enqueues outputs
still ``judging`` after ``HITL_JUDGE_RECONCILE_SECONDS``, so a message lost with
a broker restart or a killed worker never strands an output.
"""

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, OperationalError, transaction
from django.utils import timezone

from hitl.db import bulk_insert, bulk_update
from hitl.enqueue import BROKER_ERRORS
from policies.engine import JudgeSignal
from policies.judges.base import JudgeInput, Verdict
from policies.judges.runners import judge_runner
from policies.models import Judge, JudgeKind
from policies.selectors import compiled_policy, compiled_policy_version, judge_flag_rates, rubric_criteria
from policies.signals import StatisticsView
from reviews.models import Feedback, Judgement, JudgementResult, Output, OutputStatus
from reviews.routing import plan_tasks, routing_table
from reviews.services.claims import tasks_create
from reviews.services.webhooks import webhook_deliveries_create
from tenants.audit import SYSTEM, audit_record_batch
from tenants.auditchain import digest, format_time
from tenants.models import Tenant

logger = logging.getLogger(__name__)

# Built-in checks take microseconds: many outputs a message. LLM judges take seconds:
# one output a message, so that workers judge one output's LLM calls in parallel.
BUILTIN_CHUNK = 500

_JUDGEMENT_FIELDS = (
    "id",
    "tenant",
    "output",
    "judge",
    "judge_version",
    "result",
    "score",
    "unsure",
    "rationale",
    "latency_ms",
    "attempts",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "model",
    "on_fail",
    "raise_to",
    "flag_rate",
    "created_at",
)
_RETRIEVAL_STEPS = frozenset({"retrieval", "retriever", "retrieve", "context", "search"})


def judges_enqueue(*, plans: dict[str, list[list[int]]], kinds: dict[int, str]) -> int:
    """Send the Celery messages for planned judges (call it on commit). Returns the number sent.

    Each LLM judge gets a message per output (they run in parallel, seconds each); the
    built-in checks of an output share one message with the outputs planned alike, up
    to ``BUILTIN_CHUNK`` of them (microseconds each: the message is the cost).
    """
    from reviews.tasks import judges_run_task

    sent = 0
    builtin: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for output_id, plan in plans.items():
        checks = tuple(sorted(judge_id for judge_id, _ in plan if kinds.get(judge_id) != JudgeKind.LLM))
        if checks:
            builtin[checks].append(str(output_id))
        for judge_id, _ in plan:
            if kinds.get(judge_id) == JudgeKind.LLM:
                judges_run_task.delay([judge_id], [str(output_id)])
                sent += 1
    for judge_ids, output_ids in builtin.items():
        for start in range(0, len(output_ids), BUILTIN_CHUNK):
            judges_run_task.delay(list(judge_ids), output_ids[start : start + BUILTIN_CHUNK])
            sent += 1
    return sent


def judges_enqueue_deferred(*, output_ids: list) -> int:
    """Outputs whose judges could not be enqueued (the broker was down): due for the
    reconciler's next run, instead of after ``HITL_JUDGE_RECONCILE_SECONDS``."""
    overdue = timezone.now() - timedelta(seconds=settings.HITL_JUDGE_RECONCILE_SECONDS + 1)
    return Output.unscoped.filter(id__in=output_ids, status=OutputStatus.JUDGING).update(judges_enqueued_at=overdue)


def _context(trace) -> tuple[str, ...]:
    """Retrieved passages from the trace: steps whose ``type`` (or ``kind``) is a retrieval."""
    passages: list[str] = []
    for step in trace if isinstance(trace, list) else ():
        if not isinstance(step, dict) or str(step.get("type", step.get("kind", ""))).lower() not in _RETRIEVAL_STEPS:
            continue
        for key in ("documents", "content", "output", "text"):
            value = step.get(key)
            if isinstance(value, str):
                passages.append(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, str):
                        passages.append(item)
                    elif isinstance(item, dict):
                        text = item.get("content") or item.get("text") or item.get("page_content")
                        if isinstance(text, str):
                            passages.append(text)
    return tuple(passages)


def _rubric(tenant: Tenant, application: str, tier: str, policy) -> dict | None:
    routing = routing_table(tenant=tenant)
    spec = policy.tiers.get(tier)
    found = routing.application_rubrics.get(application) or (
        routing.rubrics.get(spec.rubric) if spec is not None and spec.rubric else None
    )
    if not found:
        return None
    rubric_id, version = found
    return {
        "id": rubric_id,
        "version": version,
        "criteria": rubric_criteria(tenant=tenant, rubric_id=rubric_id, version=version),
    }


def judge_run(*, judge_id: int, output_ids: list[str]) -> int:
    """One judge on the given outputs (see ``judges_run``)."""
    return judges_run(judge_ids=[judge_id], output_ids=output_ids)


def judges_run(*, judge_ids: list[int], output_ids: list[str]) -> int:
    """Run judges (of one tenant) on the given outputs that lack their verdicts; store the
    verdicts and finish the decisions in one transaction. Safe to repeat. Returns the
    number of verdicts stored."""
    judges = list(Judge.unscoped.select_related("tenant").filter(pk__in=judge_ids).order_by("pk"))
    if not judges:
        return 0
    tenant = judges[0].tenant
    judges = [judge for judge in judges if judge.tenant_id == tenant.pk]  # a message names one tenant's judges
    answered = set(
        Judgement.objects.for_tenant(tenant)
        .filter(output_id__in=output_ids, judge__in=judges)
        .values_list("output_id", "judge_id")
    )
    # Built-in checks read the output text only: the input and trace (JSON to decode) are for LLM judges.
    wanted = ("id", "application", "risk_tier", "policy_version", "output", "metadata")
    if any(judge.kind == JudgeKind.LLM for judge in judges):
        wanted += ("input", "trace")
    rows = list(Output.objects.for_tenant(tenant).filter(id__in=output_ids).values(*wanted))
    batches = []
    for judge in judges:
        todo = [row for row in rows if (row["id"], judge.pk) not in answered]
        if todo:
            batches.append((judge, _judged(tenant, judge, todo)))
    if not batches:
        outputs_judging_complete(tenant=tenant, output_ids=output_ids)  # a redelivery after a crash mid-way
        return 0
    try:
        return judgements_store(tenant=tenant, batches=batches)
    except OperationalError:
        raise  # the database blinked: the task retries
    except DatabaseError:
        # Something in the verdicts would not store: keep the outcome, not the figures, so
        # that the outputs are finished (and go to a person) instead of waiting for ever.
        logger.exception("judges %s: verdicts would not store; recording errors instead", judge_ids)
        failed = "the judge's answer could not be stored"
        fallback = [
            (judge, [(output_id, Verdict("error", None, failed, verdict.latency_ms)) for output_id, verdict in results])
            for judge, results in batches
        ]
        return judgements_store(tenant=tenant, batches=fallback)


def _judged(tenant: Tenant, judge: Judge, rows: list[dict]) -> list[tuple[object, Verdict]]:
    """One judge's verdicts on the rows, with no transaction open (an LLM call takes seconds)."""
    runner = judge_runner(
        judge_id=judge.pk, version=judge.version, kind=judge.kind, params=judge.params, api_key=judge.api_key
    )
    rubrics: dict[tuple[str, str], dict | None] = {}
    results: list[tuple[object, Verdict]] = []
    for row in rows:
        rubric = None
        if judge.kind == JudgeKind.LLM:
            key = (row["application"], row["risk_tier"])
            if key not in rubrics:
                policy = compiled_policy_version(tenant=tenant, version=row["policy_version"])
                rubrics[key] = _rubric(tenant, row["application"], row["risk_tier"], policy)
            rubric = rubrics[key]
        judge_input = JudgeInput(
            output=row["output"],
            input=row.get("input"),
            context=_context(row.get("trace")),
            application=row["application"],
            metadata=row["metadata"],
            rubric=rubric,
        )
        try:
            verdict = runner(judge_input)
        except Exception as error:  # a judge's own failure must not strand the output: it goes to a person
            logger.exception("judge %s failed on output %s", judge.pk, row["id"])
            verdict = Verdict("error", None, f"the judge failed: {type(error).__name__}", 0.0)
        results.append((row["id"], verdict))
    return results


@transaction.atomic
def judgements_store(*, tenant: Tenant, batches: list[tuple[Judge, list[tuple[object, Verdict]]]]) -> int:
    """Insert verdicts (once per output and judge) and finish the outputs they complete."""
    output_ids = {output_id for _, results in batches for output_id, _ in results}
    outputs = _lock_judging(tenant, sorted(output_ids))
    now = timezone.now()
    flag_rates = judge_flag_rates(tenant=tenant)  # cached per configuration token: no query
    rows = [
        (
            Judgement._meta.pk.default(),
            tenant.pk,
            output_id,
            judge.pk,
            judge.version,
            verdict.result,
            verdict.score,
            _unsure(judge, verdict),
            verdict.rationale[:4000],
            round(verdict.latency_ms, 3),
            verdict.attempts,
            _bounded_tokens(verdict.prompt_tokens),
            _bounded_tokens(verdict.completion_tokens),
            _bounded_cost(verdict.cost),
            verdict.model[:200],
            judge.on_fail,
            judge.raise_to,
            flag_rates.get(judge.pk),
            now,
        )
        for judge, results in batches
        for output_id, verdict in results
    ]
    inserted = bulk_insert(Judgement, _JUDGEMENT_FIELDS, rows, skip_conflicts_on=("output", "judge"))
    _complete(tenant, outputs, now)
    leaves = [(row[0], judgement_digest(row)) for row in rows if row[0] in inserted]
    if leaves:  # one event for the batch of verdicts, last: it takes the chain's lock
        audit_record_batch(tenant=tenant, actor=SYSTEM, kind="judge.verdicts", object_type="judgement", digests=leaves)
    return len(inserted)


def judgement_digest(row: tuple) -> str:
    """A verdict's digest: its ``_JUDGEMENT_FIELDS`` but the tenant, ids as strings, the cost as a string."""
    values = dict(zip(_JUDGEMENT_FIELDS, row, strict=True))
    values.pop("tenant")
    if values["flag_rate"] is None:  # verdicts of unflagged judges keep the digest they had before flags existed
        values.pop("flag_rate")
    values["id"], values["output"] = str(values["id"]), str(values["output"])
    values["cost"] = None if values["cost"] is None else str(values["cost"])
    values["created_at"] = format_time(values["created_at"])
    return digest(values)


def _bounded_tokens(value: int | None) -> int | None:
    """Token counts an endpoint reports beyond what a row holds are garbage: dropped, not a failed store."""
    return value if value is not None and 0 <= value < 2**31 else None


def _bounded_cost(value: float | None) -> Decimal | None:
    if value is None or not 0 <= value < 1_000_000:
        return None
    return Decimal(str(round(value, 8)))


def _unsure(judge: Judge, verdict: Verdict) -> bool:
    if verdict.result == JudgementResult.ERROR:
        return True
    return verdict.score is not None and judge.unsure_low <= verdict.score <= judge.unsure_high


def _lock_judging(tenant: Tenant, output_ids) -> list[Output]:
    """Lock the outputs still waiting for judges, in id order (concurrent judges of one
    output queue here, so exactly one of them completes it). ``no_key``: the verdicts'
    foreign-key checks take key-share locks, which a plain FOR UPDATE would wait on."""
    return list(
        Output.objects.for_tenant(tenant)
        .select_for_update(no_key=True)
        .filter(id__in=output_ids, status=OutputStatus.JUDGING)
        .order_by("id")
        .only(
            "id",
            "tenant",
            "external_id",
            "application",
            "model",
            "metadata",
            "confidence",
            "status",
            "risk_tier",
            "decision_reason",
            *Output.INGEST_CLASSIFICATION_FIELDS,
            "delivery",
            "policy_version",
            "judge_plan",
            "received_at",
            "signal_snapshot",
        )
    )


@transaction.atomic
def outputs_judging_complete(*, tenant: Tenant, output_ids) -> int:
    """Finish the decision of every given output whose judges have all answered. Returns how many."""
    return _complete(tenant, _lock_judging(tenant, sorted(output_ids)), timezone.now())


def _complete(tenant: Tenant, outputs: list[Output], now: datetime) -> int:
    """Finish the locked outputs whose plan is fully answered (in the caller's transaction)."""
    if not outputs:
        return 0
    verdicts: dict[object, list[dict]] = defaultdict(list)
    for row in (
        Judgement.objects.for_tenant(tenant)
        .filter(output_id__in=[output.pk for output in outputs])
        .values(
            "output_id",
            "judge_id",
            "result",
            "score",
            "unsure",
            "judge__name",
            "on_fail",
            "raise_to",
            "flag_rate",
            "judge__kind",
        )
    ):
        verdicts[row["output_id"]].append(row)
    routing = routing_table(tenant=tenant)
    current = compiled_policy(tenant=tenant)
    thumbs_down = set(
        Feedback.objects.for_tenant(tenant)
        .filter(output_id__in=[output.pk for output in outputs], rating=Feedback.Rating.DOWN)
        .values_list("output_id", flat=True)
    )
    finished: list[Output] = []
    delivery_changed: list[Output] = []
    planned = []
    for output in outputs:
        answers = verdicts.get(output.pk, [])
        if {judge_id for judge_id, _ in output.judge_plan} - {row["judge_id"] for row in answers}:
            continue  # still waiting for some judge
        policy = compiled_policy_version(tenant=tenant, version=output.policy_version)
        signals = [
            JudgeSignal(
                name=row["judge__name"],
                result=row["result"],
                score=row["score"],
                unsure=row["unsure"],
                on_fail=row["on_fail"],
                raise_to=row["raise_to"],
                kind=row["judge__kind"],
                flag_rate=row["flag_rate"],
            )
            for row in sorted(answers, key=lambda row: row["judge__name"])
        ]
        decision = policy.decide(
            external_id=output.external_id,
            application=output.application,
            model=output.model,
            metadata=output.metadata,
            confidence=output.confidence,
            judges=signals,
            signals=["end user gave thumbs-down"] if output.pk in thumbs_down else [],
            overrides=current.overrides,  # the stop button as it is now: pressed meanwhile, it acts
            # the signals as they read at ingest: the same measures against the same statistics
            measures=(output.signal_snapshot or {}).get("measures"),
            statistics=StatisticsView.stored(output.signal_snapshot),
        )
        if output.delivery != decision.delivery:
            delivery_changed.append(output)
        output.keep_ingest_classification()  # what the output's audit digest covers
        output.status = decision.status
        output.risk_tier = decision.risk_tier
        output.review_required = decision.review_required
        output.delivery = decision.delivery
        output.decision_reason = decision.reason
        output.judged_at = now
        finished.append(output)
        if decision.review_required:
            for task in plan_tasks(
                policy=policy,
                routing=routing,
                decision=decision,
                application=output.application,
                external_id=output.external_id,
                received_at=output.received_at,
            ):
                planned.append((output.pk, task))
    if not finished:
        return 0
    bulk_update(
        Output,
        (
            "status",
            "risk_tier",
            "review_required",
            "delivery",
            "decision_reason",
            "judged_at",
            *Output.INGEST_CLASSIFICATION_FIELDS,
        ),
        [
            (
                o.pk,
                o.status,
                o.risk_tier,
                o.review_required,
                o.delivery,
                o.decision_reason,
                o.judged_at,
                o.received_risk_tier,
                o.received_decision_reason,
            )
            for o in finished
        ],
    )
    if planned:
        tasks_create(tenant=tenant, planned=planned, now=now)
    for output in delivery_changed:  # the service must learn what it may now do
        webhook_deliveries_create(tenant=tenant, output=output, event="output.judged")
    audit_record_batch(
        tenant=tenant,
        actor=SYSTEM,
        kind="output.judged",
        object_type="output",
        digests=[(output.pk, judged_digest(output)) for output in finished],
    )
    return len(finished)


def judged_digest(output: Output) -> str:
    """What the judges' completion decided for an output: its id and the fields it set."""
    return digest(
        {
            "id": str(output.pk),
            "status": output.status,
            "risk_tier": output.risk_tier,
            "review_required": output.review_required,
            "delivery": output.delivery,
            "decision_reason": output.decision_reason,
            "judged_at": format_time(output.judged_at),
        }
    )


def judges_reconcile(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Re-enqueue outputs waiting for judges longer than the timeout; returns how many.

    Claims them first (pushes ``judges_enqueued_at`` to now, skipping rows other
    reconcilers hold), so that two beats never enqueue the same outputs twice in one
    period; only the judges without a verdict are sent again.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.HITL_JUDGE_RECONCILE_SECONDS)
    with transaction.atomic():
        late = list(
            Output.unscoped.select_for_update(skip_locked=True, no_key=True)
            .filter(status=OutputStatus.JUDGING, judges_enqueued_at__lt=cutoff)
            .order_by("judges_enqueued_at")
            .values_list("id", "tenant_id", "judge_plan")[:limit]
        )
        if not late:
            return 0
        Output.unscoped.filter(id__in=[output_id for output_id, _, _ in late]).update(judges_enqueued_at=now)
    answered = set(
        Judgement.unscoped.filter(output_id__in=[output_id for output_id, _, _ in late]).values_list(
            "output_id", "judge_id"
        )
    )
    plans: dict[str, list[list[int]]] = {}
    complete: dict[int, list] = defaultdict(list)
    for output_id, tenant_id, plan in late:
        missing = [[judge_id, version] for judge_id, version in plan if (output_id, judge_id) not in answered]
        if missing:
            plans[str(output_id)] = missing
        else:
            complete[tenant_id].append(output_id)  # all answered, but the completion was lost
    kinds = dict(
        Judge.unscoped.filter(pk__in={j for plan in plans.values() for j, _ in plan}).values_list("id", "kind")
    )
    try:
        judges_enqueue(plans=plans, kinds=kinds)
    except BROKER_ERRORS:
        judges_enqueue_deferred(output_ids=list(plans))  # the next run tries again, not one timeout later
        raise
    for tenant_id, output_ids in complete.items():
        outputs_judging_complete(tenant=Tenant.objects.get(pk=tenant_id), output_ids=output_ids)
    if late:
        logger.warning("re-enqueued judges for %d outputs still waiting past the timeout", len(late))
    return len(late)
