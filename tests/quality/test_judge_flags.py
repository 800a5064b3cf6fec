"""Judges kept honest (issue 13 point 7): judge-vs-human agreement per judge version, a flag
below the threshold (scheduled, idempotent, in the tenant's scope), a ``judge.flagged`` webhook,
boosted sampling of what the flagged judge passes until a person clears the flag."""

import pytest
from django.utils import timezone

from hitl.tenancy import no_tenant
from policies.defaults import DEFAULT_POLICY
from policies.engine import JudgeSignal
from policies.models import JudgeFlag
from policies.selectors import compiled_policy
from policies.services import judge_create, judge_flag_clear, policy_publish
from quality.agreement import judge_version_agreement
from quality.tasks import judges_agreement_check_task
from reviews.models import Judgement, Output, WebhookDelivery
from reviews.services import output_ingest_batch
from reviews.services.webhooks import webhook_endpoint_create
from tenants.models import AuditEvent
from tests.conftest import make_client
from tests.factories import UserFactory, output_payload, output_submission


def _seed(tenant, judge, table, start=0, version=1):
    person = UserFactory()
    number = start
    for (result, decision), count in table.items():
        submissions = [output_submission(number + index) for index in range(count)]
        number += count
        ids = [item.receipt["id"] for item in output_ingest_batch(tenant=tenant, submissions=submissions)]
        for output_id in ids:
            Judgement.objects.for_tenant(tenant).create(
                output_id=output_id, judge=judge, judge_version=version, result=result
            )
        Output.objects.for_tenant(tenant).filter(id__in=ids).update(
            decision=decision, status=decision, decided_by=person, decided_at=timezone.now()
        )
    return number


@pytest.fixture
def judge(tenant):
    return judge_create(tenant=tenant, data={"name": "lenient", "kind": "banned", "params": {"phrases": ["zzz"]}})


def test_agreement_per_judge_version_is_cohens_kappa_of_the_2x2_table(tenant, judge):
    _seed(
        tenant,
        judge,
        {("pass", "approved"): 20, ("pass", "rejected"): 5, ("fail", "approved"): 10, ("fail", "rejected"): 15},
    )
    _seed(tenant, judge, {("pass", "approved"): 3}, start=100, version=2)

    figures = {figure.version: figure for figure in judge_version_agreement(tenant=tenant)}

    assert figures[1].compared == 50 and figures[1].table == ((20, 5), (10, 15))
    assert figures[1].kappa == pytest.approx(0.4)  # the textbook example: p_o 0.7, p_e 0.5
    assert figures[2].kappa is None  # both always said pass: undefined


def test_a_judge_below_the_threshold_is_flagged_once_with_a_webhook_and_boosted_sampling(
    tenant, judge, settings, django_capture_on_commit_callbacks
):
    settings.HITL_JUDGE_FLAG_SAMPLE_RATE = 1.0
    webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1:9/hook", secret="s" * 20)
    # The judge passes what people reject: kappa well below 0.4.
    _seed(tenant, judge, {("pass", "approved"): 10, ("pass", "rejected"): 15, ("fail", "approved"): 5})

    with no_tenant():  # the task declares its own scope
        assert judges_agreement_check_task() == 1
        assert judges_agreement_check_task() == 0  # idempotent: flagged once

    flag = JudgeFlag.objects.for_tenant(tenant).get()
    assert (flag.judge_id, flag.judge_version, flag.compared, flag.sample_rate) == (judge.pk, 1, 30, 1.0)
    assert flag.kappa < 0.4
    delivery = WebhookDelivery.objects.for_tenant(tenant).get(event="judge.flagged")
    assert delivery.output_id is None
    assert delivery.payload["judge"]["name"] == "lenient" and delivery.payload["flag"]["kappa"] == flag.kappa
    assert AuditEvent.objects.for_tenant(tenant).filter(kind="judge.flagged", object_id=str(judge.pk)).count() == 1

    # Outputs the flagged judge passes are now reviewed (rate 1), with the reason stored.
    tiers = [{**tier, "review_rate": 0.0} for tier in DEFAULT_POLICY["tiers"]]
    policy_publish(tenant=tenant, document={**DEFAULT_POLICY, "tiers": tiers})
    service = make_client(tenant, "service")
    with django_capture_on_commit_callbacks(execute=True):  # the judges run on commit
        response = service.post("/api/v1/outputs", output_payload(900), format="json").json()
    output = Output.objects.for_tenant(tenant).get(pk=response["id"])
    verdict = Judgement.objects.for_tenant(tenant).get(output=output)
    assert (verdict.result, verdict.flag_rate) == ("pass", 1.0)
    assert output.review_required and "judge lenient flagged: rate raised to 1" in output.decision_reason
    # Recomputable from the rows: the policy version, the output and the verdicts.
    again = compiled_policy(tenant=tenant).decide(
        external_id=output.external_id,
        application=output.application,
        model=output.model,
        metadata=output.metadata,
        confidence=output.confidence,
        judges=[JudgeSignal("lenient", "pass", None, False, kind="banned", flag_rate=verdict.flag_rate)],
    )
    assert again.reason == output.decision_reason and again.review_required

    # A person clears it: sampling goes back to the tier's rate.
    lead = UserFactory()
    judge_flag_clear(tenant=tenant, judge_id=judge.pk, user=lead, note="prompt fixed")
    with django_capture_on_commit_callbacks(execute=True):
        response = service.post("/api/v1/outputs", output_payload(901), format="json").json()
    output = Output.objects.for_tenant(tenant).get(pk=response["id"])
    assert Judgement.objects.for_tenant(tenant).get(output=output).flag_rate is None
    assert not output.review_required
    assert AuditEvent.objects.for_tenant(tenant).filter(kind="judge.flag_cleared").count() == 1


def test_a_judge_agreeing_with_people_is_not_flagged(tenant, judge):
    _seed(tenant, judge, {("pass", "approved"): 20, ("fail", "rejected"): 15, ("pass", "rejected"): 1})

    with no_tenant():
        assert judges_agreement_check_task() == 0
    assert not JudgeFlag.objects.for_tenant(tenant).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_check_flags_each_judge_in_a_transaction_of_its_own_in_judge_updates_lock_order(tenant, monkeypatch):
    """One transaction for the whole check locked judge 1, the tenant's row and the chain's counter
    row (the flag's event, appended at once in a nested block), then judge 2; an edit of judge 2
    locked it, then the tenant's row: each waited for the other. A flag a transaction now, in
    judge_update's order (its judge, the tenant, the chain)."""
    import types

    from quality import services as quality_services
    from tenants.models import AuditEvent
    from tests.concurrency import other_transaction

    first = judge_create(tenant=tenant, data={"name": "a", "kind": "banned", "params": {"phrases": ["zzz"]}})
    second = judge_create(tenant=tenant, data={"name": "b", "kind": "banned", "params": {"phrases": ["yyy"]}})
    figures = [
        types.SimpleNamespace(judge=judge.pk, version=judge.version, compared=100, kappa=0.0, percent_agreement=0.5)
        for judge in (first, second)
    ]
    monkeypatch.setattr(quality_services, "judge_version_agreement", lambda **kwargs: figures)
    edit = [("UPDATE policies_judge SET description = 'edited' WHERE id = %s", [second.pk])]  # judge_update's save
    config = [("UPDATE tenants_tenant SET config_token = gen_random_uuid() WHERE id = %s", [tenant.pk])]  # then this
    with other_transaction(now=edit, then=config):
        assert sorted(quality_services.judges_agreement_check(tenant=tenant)) == sorted([first.pk, second.pk])
    assert JudgeFlag.objects.for_tenant(tenant).count() == 2
    assert AuditEvent.objects.for_tenant(tenant).filter(kind="judge.flagged").count() == 2
