"""Outlier signals through ingest: the statistics job, decisions with their snapshot, recomputation, isolation."""

import copy
from datetime import timedelta

import pytest
from django.utils import timezone

from hitl.tenancy import cross_tenant, tenant_scope
from policies.defaults import DEFAULT_POLICY
from policies.engine import CompiledPolicy
from policies.models import ApplicationStatistics
from policies.selectors import _statistics_cache, application_statistics, policy_version_document
from policies.services import judge_create, policy_publish
from policies.signals import StatisticsView, measures_of
from reviews.models import Output
from reviews.services.signals import signal_statistics_refresh, signal_statistics_refresh_all
from tests.conftest import make_client
from tests.factories import output_payload

SIGNALS = [
    {"name": "long", "signal": "outlier", "measure": "length", "min_observations": 20, "action": "force_review"},
    {"name": "tools", "signal": "tool_failed", "action": "raise_tier", "raise_to": "high"},
    {"name": "handoff", "signal": "user_asked_for_human", "action": "force_review"},
]


def signal_policy(**changes) -> dict:
    document = copy.deepcopy(DEFAULT_POLICY)
    # Nothing of the low and medium tiers is sampled by rate: what is reviewed there, a signal sent.
    document["tiers"] = [
        {**tier, "review_rate": 0.0 if tier["name"] in ("low", "medium") else 1.0} for tier in document["tiers"]
    ]
    document["rules"] = []
    document["signals"] = SIGNALS
    document.update(changes)
    return document


@pytest.fixture(autouse=False)
def fresh_statistics():
    _statistics_cache.clear()
    yield
    _statistics_cache.clear()


@pytest.fixture
def service(tenant, fresh_statistics):
    policy_publish(tenant=tenant, document=signal_policy())
    return make_client(tenant, "service")


def submit(client, number, **overrides) -> Output:
    response = client.post("/api/v1/outputs", output_payload(number, **overrides), format="json")
    assert response.status_code == 201, response.json()
    return Output.unscoped.get(pk=response.json()["id"])


def refresh(tenant) -> int:
    """The job as the beat runs it, a minute on (it leaves the last 10 seconds for later), then a fresh read."""
    with tenant_scope(tenant):
        folded = signal_statistics_refresh(tenant=tenant, now=timezone.now() + timedelta(minutes=1))
    _statistics_cache.clear()
    return folded


def recompute(tenant, stored: Output, statistics: StatisticsView | None = None):
    document = policy_version_document(tenant=tenant, version=stored.policy_version)
    policy = CompiledPolicy(tenant_id=tenant.pk, version=stored.policy_version, document=document, overrides={})
    snapshot = stored.signal_snapshot or {}
    return policy.decide(
        external_id=stored.external_id,
        application=stored.application,
        model=stored.model,
        metadata=stored.metadata,
        confidence=stored.confidence,
        measures=snapshot.get("measures"),
        statistics=statistics or StatisticsView.stored(snapshot),
    )


def test_an_output_longer_than_the_p99_of_its_application_goes_to_a_person_with_the_figures(tenant, service):
    for number in range(40):
        submit(service, number, output=f"A usual answer {number:02d}.")
    assert refresh(tenant) == 40
    stats = ApplicationStatistics.objects.for_tenant(tenant).get(application="support-bot")
    assert (stats.version, stats.observations) == (1, 40)

    usual = submit(service, 100, output="A usual answer 99.")
    long = submit(service, 101, output="x" * 5000)

    assert (usual.review_required, long.review_required) == (False, True)
    p99 = long.signal_snapshot["quantiles"]["length@0.99"]
    assert p99 == pytest.approx(18, rel=0.02)
    assert f"signal 1 (long): length 5000 chars > p99 {p99:.6g} chars (statistics v1, 40 outputs): review" in (
        long.decision_reason
    )
    assert long.signal_snapshot == {
        "measures": measures_of(output="x" * 5000, trace=long.trace, metadata=long.metadata),
        "version": 1,
        "observations": 40,
        "quantiles": {"length@0.99": p99},
    }


def test_a_failed_tool_step_and_a_user_asking_for_a_human_act_without_statistics(tenant, service):
    failed = submit(
        service, 1, trace=[{"type": "tool", "name": "search", "error": "timeout"}], metadata={"category": "x"}
    )
    asked = submit(service, 2, metadata={"user_asked_for_human": True})

    assert failed.risk_tier == "high" and failed.review_required
    assert "signal 2 (tools): a tool step failed (1 tool errors): tier raised from medium to high" in (
        failed.decision_reason
    )
    assert asked.review_required and "signal 3 (handoff): the user asked for a human: review" in asked.decision_reason


def test_the_decision_recomputes_from_its_snapshot_after_the_statistics_moved(tenant, service):
    for number in range(40):
        submit(service, number, output="short")
    refresh(tenant)
    flagged = submit(service, 100, output="y" * 300)
    assert flagged.review_required

    # Long outputs become the usual: the statistics move on (version 2).
    for number in range(200, 400):
        submit(service, number, output="z" * 400)
    refresh(tenant)
    with tenant_scope(tenant):
        live = application_statistics(tenant=tenant)
    assert live.basis("support-bot") == (2, 241)
    assert not recompute(tenant, flagged, statistics=live).review_required  # no longer an outlier today...

    for stored in Output.objects.for_tenant(tenant).order_by("received_at"):
        again = recompute(tenant, stored)  # ...but every stored decision recomputes from its own snapshot
        assert (again.risk_tier, again.review_required, again.reason, again.signal_snapshot) == (
            stored.risk_tier,
            stored.review_required,
            stored.decision_reason,
            stored.signal_snapshot,
        )


def test_one_tenants_statistics_never_reach_another(tenant, other_tenant, service):
    policy_publish(tenant=other_tenant, document=signal_policy())
    other = make_client(other_tenant, "service")
    for number in range(40):
        submit(service, number, output="tiny")
    for number in range(30):
        submit(other, number, output="w" * 1000)
    with cross_tenant("test_harness"):
        assert signal_statistics_refresh_all(now=timezone.now() + timedelta(minutes=1)) == 70
    _statistics_cache.clear()

    with cross_tenant("test_harness"):
        rows = {
            (row.tenant_id, row.application): row.observations
            for row in ApplicationStatistics.unscoped.order_by("tenant_id")
        }
    assert rows == {(tenant.pk, "support-bot"): 40, (other_tenant.pk, "support-bot"): 30}
    # 1000 characters are usual in the other tenant, an outlier here; and the other way round.
    here = submit(service, 500, output="w" * 1000)
    there = submit(other, 500, output="w" * 1000)
    assert (here.review_required, there.review_required) == (True, False)
    assert here.signal_snapshot["observations"] == 40 and there.signal_snapshot["observations"] == 30


def test_the_job_folds_each_output_once_and_starts_where_it_stopped(tenant, service):
    for number in range(25):
        submit(service, number)
    with tenant_scope(tenant):
        later = timezone.now() + timedelta(minutes=1)
        assert signal_statistics_refresh(tenant=tenant, now=later, batch_size=10) == 25
        assert signal_statistics_refresh(tenant=tenant, now=later) == 0
    submit(service, 99)
    assert refresh(tenant) == 1
    stats = ApplicationStatistics.objects.for_tenant(tenant).get()
    assert (stats.version, stats.observations) == (2, 26)


def test_judges_finish_the_decision_with_the_snapshot_taken_at_ingest(
    tenant, service, django_capture_on_commit_callbacks
):
    for number in range(40):
        submit(service, number, output="short")
    refresh(tenant)
    judge_create(tenant=tenant, data={"name": "pii", "kind": "pii"})
    with django_capture_on_commit_callbacks(execute=True):
        response = service.post("/api/v1/outputs", output_payload(7000, output="q" * 900), format="json")
    stored = Output.unscoped.get(pk=response.json()["id"])

    assert stored.status == "pending_review" and stored.judged_at is not None
    assert "signal 1 (long): length 900 chars > p99" in stored.decision_reason
    assert recompute(tenant, stored).reason.split("; signal")[0] == stored.decision_reason.split("; signal")[0]


def test_ingest_reads_the_statistics_once_a_minute_not_per_batch(tenant, service, assert_work_queries):
    from tests.conftest import AUDIT_APPEND_QUERIES

    service.post("/api/v1/outputs", output_payload(0), format="json")  # key, policy and statistics now cached
    # key lookup, outputs, the audit event: nothing sampled, the statistics from the cache
    with assert_work_queries(3 - 1 + AUDIT_APPEND_QUERIES):
        response = service.post(
            "/api/v1/outputs/batch", {"items": [output_payload(n) for n in range(1, 50)]}, format="json"
        )
    assert response.status_code == 200


def test_a_policy_naming_an_unknown_tier_for_a_signal_is_refused_with_the_field(tenant, fresh_statistics):
    admin = make_client(tenant, "admin")
    bad = signal_policy(signals=[{"signal": "tool_failed", "action": "raise_tier", "raise_to": "urgent"}])
    response = admin.put("/api/v1/policy", bad, format="json")
    assert response.status_code == 422
    assert "signals.0.raise_to" in response.json()["fields"]
    malformed = signal_policy(signals=[{"signal": "outlier", "action": "force_review", "quantile": 3}])
    response = admin.put("/api/v1/policy", malformed, format="json")
    assert response.status_code == 400, response.json()
    assert any(key.startswith("signals.0") for key in response.json()["fields"])

    good = admin.put("/api/v1/policy", signal_policy(), format="json")
    assert good.status_code == 200
    assert [signal["signal"] for signal in good.json()["signals"]] == [
        "outlier",
        "tool_failed",
        "user_asked_for_human",
    ]


def test_the_scheduled_task_declares_its_scope_and_folds_each_tenants_outputs(tenant, service):
    """As in a worker or the embedded beat: no scope around it (tests/test_isolation.py's rule)."""
    from hitl.tenancy import no_tenant
    from reviews.tasks import signal_statistics_refresh_task

    for number in range(5):
        submit(service, number)
    Output.objects.for_tenant(tenant).update(received_at=timezone.now() - timedelta(minutes=2))
    with no_tenant():
        assert signal_statistics_refresh_task() == 5
    assert ApplicationStatistics.objects.for_tenant(tenant).get().observations == 5
