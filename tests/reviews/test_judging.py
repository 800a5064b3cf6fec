"""Judges on the life of an output: verdicts stored once, then the sampling decision finished from them.

Judges run in-process here (no broker), enqueued on commit as in production; the
LLM judge calls a real chat-completions server on 127.0.0.1.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from policies.engine import JudgeSignal
from policies.selectors import compiled_policy_version
from policies.services import judge_create, judge_update, policy_publish
from reviews.models import Judgement, Output, Queue, ReviewTask, WebhookDelivery
from reviews.services.judging import judge_run, judges_reconcile
from reviews.services.queues import queue_grant
from reviews.services.webhooks import webhook_endpoint_create
from reviews.tasks import judges_run_task
from tenants.services import PLATFORM_OPERATOR, membership_create
from tests.conftest import make_client
from tests.factories import UserFactory, output_payload
from tests.judge_server import ok, status

POLICY = {
    "default_tier": "low",
    "tiers": [
        {"name": "low", "review_rate": 0.0, "mode": "parallel", "sla_minutes": 600},
        {"name": "medium", "review_rate": 0.0, "mode": "sequential", "sla_minutes": 120},
        {"name": "smart", "review_rate": 0.5, "mode": "adaptive", "sla_minutes": 120},
        {
            "name": "critical",
            "review_rate": 1.0,
            "mode": "sequential",
            "sla_minutes": 30,
            "required_approvals": 2,
            "min_reviewer_level": 2,
        },
    ],
    "rules": [
        {"tier": "medium", "match": {"application": "held-app"}},
        {"tier": "smart", "match": {"application": "smart-app"}},
    ],
}
CARD = "Your card 4242 4242 4242 4242 is on file."


@pytest.fixture
def service(tenant):
    policy_publish(tenant=tenant, document=POLICY)
    return make_client(tenant, "service")


def pii_judge(tenant, **extra):
    return judge_create(tenant=tenant, data={"name": "pii", "kind": "pii", **extra})


def submit(service, capture, number, application="plain-app", output="All good.", run=True):
    with capture(execute=run):
        response = service.post(
            "/api/v1/outputs", output_payload(number, application=application, output=output), format="json"
        )
    assert response.status_code == 201, response.json()
    return Output.unscoped.get(pk=response.json()["id"])


def test_a_passing_judge_lets_an_unsampled_output_through_and_its_verdict_is_shown(
    tenant, service, django_capture_on_commit_callbacks
):
    judge = pii_judge(tenant)
    output = submit(service, django_capture_on_commit_callbacks, 1)

    assert (output.status, output.delivery, output.review_required) == ("auto_approved", "deliver", False)
    assert output.judged_at is not None
    assert "no review" in output.decision_reason
    body = service.get(f"/api/v1/outputs/{output.pk}").json()
    [verdict] = body["judgements"]
    assert verdict["judge"] == "pii" and verdict["judge_id"] == judge.pk and verdict["judge_version"] == 1
    assert (verdict["result"], verdict["score"], verdict["unsure"]) == ("pass", 1.0, False)
    assert verdict["latency_ms"] >= 0 and verdict["rationale"]
    assert body["status"] == "auto_approved"


def test_a_sequential_output_holds_while_judging_then_the_failing_judge_forces_a_review(
    tenant, service, django_capture_on_commit_callbacks
):
    pii_judge(tenant)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = service.post(
            "/api/v1/outputs", output_payload(1, application="held-app", output=CARD), format="json"
        )
    receipt = response.json()
    assert (receipt["status"], receipt["delivery"], receipt["review_required"]) == ("judging", "hold", False)
    assert not ReviewTask.objects.for_tenant(tenant).exists()  # sampling waits for the judges

    for callback in callbacks:  # the commit: the judges run
        callback()
    output = Output.unscoped.get(pk=receipt["id"])
    assert (output.status, output.delivery, output.review_required) == ("pending_review", "hold", True)
    assert "judge pii failed" in output.decision_reason
    assert ReviewTask.objects.for_tenant(tenant).filter(output=output).count() == 1
    verdict = Judgement.objects.for_tenant(tenant).get(output=output)
    assert verdict.result == "fail" and "4242 4242 4242 4242" not in verdict.rationale


def test_a_parallel_output_is_delivered_while_judging(tenant, service, django_capture_on_commit_callbacks):
    pii_judge(tenant)
    output = submit(service, django_capture_on_commit_callbacks, 1, run=False)
    assert (output.status, output.delivery) == ("judging", "deliver")


def test_a_blocking_judge_blocks_delivery_and_tells_the_service(tenant, service, django_capture_on_commit_callbacks):
    pii_judge(tenant, on_fail="block")
    webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1:9/hook", secret="s" * 20)
    output = submit(service, django_capture_on_commit_callbacks, 1, application="held-app", output=CARD)

    assert (output.status, output.delivery, output.review_required) == ("blocked", "block", False)
    assert not ReviewTask.objects.for_tenant(tenant).exists()
    delivery = WebhookDelivery.objects.for_tenant(tenant).get(output=output)
    assert delivery.event == "output.judged"
    assert delivery.payload["output"]["delivery"] == "block"


def test_raise_tier_moves_the_output_to_the_next_tier_with_its_approvals(
    tenant, service, django_capture_on_commit_callbacks
):
    pii_judge(tenant, on_fail="raise_tier", raise_to="critical")
    output = submit(service, django_capture_on_commit_callbacks, 1, output=CARD)

    assert output.risk_tier == "critical"
    assert (output.status, output.delivery) == ("pending_review", "hold")
    assert "tier raised from low to critical" in output.decision_reason
    levels = sorted(
        ReviewTask.objects.for_tenant(tenant).filter(output=output).values_list("level_required", flat=True)
    )
    assert levels == [2, 3]


def test_raise_tier_without_a_target_goes_one_tier_up(tenant, service, django_capture_on_commit_callbacks):
    pii_judge(tenant, on_fail="raise_tier")
    output = submit(service, django_capture_on_commit_callbacks, 1, output=CARD)
    assert output.risk_tier == "medium"  # the tier after low, as the policy lists them


def test_llm_judges_that_disagree_force_a_review(tenant, service, judge_server, django_capture_on_commit_callbacks):
    judge_create(tenant=tenant, data=llm_judge_data(judge_server.url, on_fail="record"))
    strict = llm_judge_data(judge_server.url, name="strict", on_fail="record")
    strict["params"] = {**strict["params"], "model": "strict-1"}
    judge_create(tenant=tenant, data=strict)
    lenient, harsh = ok(pass_=True, score=0.9), ok(pass_=False, score=0.1)
    judge_server.default = lambda request: (harsh if request["model"] == "strict-1" else lenient)(request)
    output = submit(service, django_capture_on_commit_callbacks, 1)

    assert output.review_required is True
    assert "judges disagree" in output.decision_reason
    assert "failed" not in output.decision_reason  # record-only: a failure alone does nothing


def test_built_in_checks_that_differ_do_not_disagree(tenant, service, django_capture_on_commit_callbacks):
    pii_judge(tenant, on_fail="record")
    judge_create(tenant=tenant, data={"name": "short", "kind": "length", "params": {"max_chars": 500}})
    output = submit(service, django_capture_on_commit_callbacks, 1, output=CARD)
    assert (output.status, output.review_required) == ("auto_approved", False)


def test_a_record_only_judge_that_fails_alone_changes_nothing(tenant, service, django_capture_on_commit_callbacks):
    pii_judge(tenant, on_fail="record")
    output = submit(service, django_capture_on_commit_callbacks, 1, output=CARD)
    assert (output.status, output.review_required) == ("auto_approved", False)


def test_judges_run_only_where_configured(tenant, service, django_capture_on_commit_callbacks):
    pii_judge(tenant, applications=["other-app"])
    judge_create(
        tenant=tenant, data={"name": "held-only", "kind": "length", "params": {"max_chars": 5}, "tiers": ["medium"]}
    )
    plain = submit(service, django_capture_on_commit_callbacks, 1, output=CARD)
    held = submit(service, django_capture_on_commit_callbacks, 2, application="held-app")

    assert (plain.status, plain.judge_plan) == ("auto_approved", [])
    assert not Judgement.objects.for_tenant(tenant).filter(output=plain).exists()
    assert list(Judgement.objects.for_tenant(tenant).filter(output=held).values_list("judge__name", flat=True)) == [
        "held-only"
    ]


def test_the_stop_button_blocks_without_judging(tenant, service, django_capture_on_commit_callbacks):
    pii_judge(tenant)
    make_client(tenant, "admin").put("/api/v1/applications/plain-app/override", {"mode": "block"}, format="json")
    output = submit(service, django_capture_on_commit_callbacks, 1, output=CARD)
    assert (output.status, output.judge_plan) == ("blocked", [])
    assert not Judgement.objects.for_tenant(tenant).exists()


def test_adaptive_rate_follows_judge_confidence(tenant, service, judge_server, django_capture_on_commit_callbacks):
    """Tier rate 0.5: a judge 100 % sure never samples, one at 0.7 samples at 0.3."""
    judge_create(tenant=tenant, data=llm_judge_data(judge_server.url, applications=["smart-app"]))
    judge_server.default = ok(pass_=True, score=1.0)
    sure = [submit(service, django_capture_on_commit_callbacks, n, application="smart-app") for n in range(40)]
    judge_server.default = ok(pass_=True, score=0.7)
    less = [submit(service, django_capture_on_commit_callbacks, n, application="smart-app") for n in range(40, 80)]

    assert not any(output.review_required for output in sure)
    assert all("adaptive rate 0 " in output.decision_reason for output in sure)
    for output in less:
        assert "adaptive rate 0.3 " in output.decision_reason
        assert output.review_required == (output.sampling_draw < 0.3)
    assert any(output.review_required for output in less)


def llm_judge_data(url, **extra):
    return {
        "name": "llm",
        "kind": "llm",
        "params": {
            "base_url": url,
            "model": "judge-1",
            "prompt_template": "Is this answer fine? {{output}}",
            "max_retries": 1,
            "backoff_seconds": 0,
            "timeout_seconds": 2,
            "input_cost_per_million": 1.0,
            "output_cost_per_million": 2.0,
        },
        "api_key": "sk-never-shown",
        **extra,
    }


def test_an_llm_verdict_records_tokens_cost_and_the_prompt_it_sent(
    tenant, service, judge_server, django_capture_on_commit_callbacks
):
    judge_create(tenant=tenant, data=llm_judge_data(judge_server.url))
    judge_server.default = ok(
        pass_=True, score=0.9, rationale="fine", usage={"prompt_tokens": 1000, "completion_tokens": 500}
    )
    output = submit(service, django_capture_on_commit_callbacks, 1, output="The answer is 42.")

    verdict = service.get(f"/api/v1/outputs/{output.pk}").json()["judgements"][0]
    assert (verdict["result"], verdict["score"], verdict["rationale"]) == ("pass", 0.9, "fine")
    assert (verdict["prompt_tokens"], verdict["completion_tokens"]) == (1000, 500)
    assert verdict["cost"] == pytest.approx(0.002)
    [request] = judge_server.requests
    assert request.headers["Authorization"] == "Bearer sk-never-shown"
    assert "The answer is 42." in request.json["messages"][-1]["content"]


def test_a_judge_that_keeps_failing_records_an_error_and_sends_the_output_to_a_person(
    tenant, service, judge_server, django_capture_on_commit_callbacks
):
    judge_create(tenant=tenant, data=llm_judge_data(judge_server.url))
    judge_server.default = status(500)
    output = submit(service, django_capture_on_commit_callbacks, 1)

    verdict = Judgement.objects.for_tenant(tenant).get(output=output)
    assert (verdict.result, verdict.unsure, verdict.attempts) == ("error", True, 2)
    assert (output.status, output.review_required) == ("pending_review", True)
    assert "judge llm unsure" in output.decision_reason
    assert len(judge_server.requests) == 2  # bounded: max_retries 1


def test_a_score_in_the_unsure_band_goes_to_a_person(tenant, service, judge_server, django_capture_on_commit_callbacks):
    judge_create(tenant=tenant, data=llm_judge_data(judge_server.url))
    judge_server.default = ok(pass_=True, score=0.5)
    output = submit(service, django_capture_on_commit_callbacks, 1)
    assert output.review_required is True and "judge llm unsure" in output.decision_reason


def test_a_redelivered_task_adds_no_verdict_and_no_task(tenant, service, django_capture_on_commit_callbacks):
    judge = pii_judge(tenant)
    output = submit(service, django_capture_on_commit_callbacks, 1, output=CARD)
    tasks_before = ReviewTask.objects.for_tenant(tenant).count()

    assert judge_run(judge_id=judge.pk, output_ids=[str(output.pk)]) == 0
    assert judge_run(judge_id=judge.pk, output_ids=[str(output.pk)]) == 0
    assert Judgement.objects.for_tenant(tenant).count() == 1
    assert ReviewTask.objects.for_tenant(tenant).count() == tasks_before == 1


def test_a_task_for_another_tenants_output_does_nothing(
    tenant, other_tenant, service, django_capture_on_commit_callbacks
):
    judge = pii_judge(tenant)
    policy_publish(tenant=other_tenant, document=POLICY)
    theirs = submit(make_client(other_tenant, "service"), django_capture_on_commit_callbacks, 1, output=CARD)
    assert judge_run(judge_id=judge.pk, output_ids=[str(theirs.pk)]) == 0
    assert not Judgement.unscoped.exists()


def test_the_reconciler_re_enqueues_outputs_whose_judges_were_lost(
    tenant, service, settings, django_capture_on_commit_callbacks
):
    pii_judge(tenant)
    judge_create(tenant=tenant, data={"name": "short", "kind": "length", "params": {"max_chars": 500}})
    lost = submit(service, django_capture_on_commit_callbacks, 1, output=CARD, run=False)  # the message never ran
    recent = submit(service, django_capture_on_commit_callbacks, 2, output=CARD, run=False)
    settings.HITL_JUDGE_RECONCILE_SECONDS = 60
    Output.objects.for_tenant(tenant).filter(pk=lost.pk).update(
        judges_enqueued_at=timezone.now() - timedelta(seconds=61)
    )
    # One of its two judges answered before the worker died.
    judge_run(judge_id=lost.judge_plan[0][0], output_ids=[str(lost.pk)])

    with django_capture_on_commit_callbacks(execute=True):
        assert judges_reconcile() == 1
    lost.refresh_from_db()
    recent.refresh_from_db()
    assert lost.status == "pending_review" and "judge pii failed" in lost.decision_reason
    assert Judgement.objects.for_tenant(tenant).filter(output=lost).count() == 2
    assert recent.status == "judging"  # not late yet
    assert judges_reconcile() == 0  # nothing late any more


def test_the_reconciler_finishes_an_output_whose_verdicts_are_all_in(
    tenant, service, settings, django_capture_on_commit_callbacks
):
    pii_judge(tenant)
    output = submit(service, django_capture_on_commit_callbacks, 1, run=False)
    Judgement.objects.for_tenant(tenant).create(
        output=output, judge_id=output.judge_plan[0][0], judge_version=1, result="pass", score=1.0
    )  # stored, but the completion was lost
    Output.objects.for_tenant(tenant).filter(pk=output.pk).update(judges_enqueued_at=timezone.now() - timedelta(days=1))

    assert judges_reconcile() == 1
    output.refresh_from_db()
    assert output.status == "auto_approved"


def test_an_updated_judge_applies_from_the_next_output_and_the_verdict_keeps_its_version(
    tenant, service, django_capture_on_commit_callbacks
):
    judge = judge_create(tenant=tenant, data={"name": "short", "kind": "length", "params": {"max_chars": 500}})
    first = submit(service, django_capture_on_commit_callbacks, 1, output="x" * 100)
    judge_update(
        tenant=tenant, judge_id=judge.pk, data={"name": "short", "kind": "length", "params": {"max_chars": 50}}
    )
    second = submit(service, django_capture_on_commit_callbacks, 2, output="x" * 100)

    verdicts = dict(Judgement.objects.for_tenant(tenant).values_list("output_id", "judge_version"))
    assert verdicts == {first.pk: 1, second.pk: 2}
    assert (first.review_required, second.review_required) == (False, True)


def test_an_auditor_recomputes_every_judged_decision_from_the_policy_version_and_the_verdicts(
    tenant, service, django_capture_on_commit_callbacks
):
    pii_judge(tenant, on_fail="raise_tier")
    judge_create(tenant=tenant, data={"name": "short", "kind": "length", "params": {"max_chars": 60}})
    texts = ["Fine.", CARD, "x" * 80, CARD + "y" * 80]
    outputs = [
        submit(service, django_capture_on_commit_callbacks, n, application=app, output=texts[n % 4])
        for n, app in enumerate(["plain-app", "held-app", "smart-app"] * 4)
    ]
    for output in outputs:
        verdicts = Judgement.objects.for_tenant(tenant).filter(output=output).select_related("judge")
        signals = [
            JudgeSignal(v.judge.name, v.result, v.score, v.unsure, v.on_fail, v.raise_to, v.judge.kind)
            for v in sorted(verdicts, key=lambda v: v.judge.name)
        ]
        decision = compiled_policy_version(tenant=tenant, version=output.policy_version).decide(
            external_id=output.external_id,
            application=output.application,
            model=output.model,
            metadata=output.metadata,
            confidence=output.confidence,
            judges=signals,
            overrides={},
        )
        assert (decision.status, decision.risk_tier, decision.delivery, decision.reason) == (
            output.status,
            output.risk_tier,
            output.delivery,
            output.decision_reason,
        )
    assert {output.status for output in outputs} >= {"auto_approved", "pending_review"}


def test_the_reviewer_who_claims_the_task_sees_the_verdicts(tenant, service, django_capture_on_commit_callbacks):
    pii_judge(tenant)
    submit(service, django_capture_on_commit_callbacks, 1, output=CARD)
    person = UserFactory()
    membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=1)
    queue_grant(queue=Queue.objects.for_tenant(tenant).get(name="default"), user=person, actor=PLATFORM_OPERATOR)

    task = make_client(tenant, "reviewer", user=person).post("/api/v1/tasks/claim", {}, format="json").json()
    [verdict] = task["judgements"]
    assert (verdict["judge"], verdict["result"]) == ("pii", "fail")
    assert "card number" in verdict["rationale"]


def test_absurd_usage_figures_are_dropped_and_the_output_still_finishes(
    tenant, service, judge_server, django_capture_on_commit_callbacks
):
    judge_create(tenant=tenant, data=llm_judge_data(judge_server.url))
    judge_server.default = ok(pass_=True, score=0.9, usage={"prompt_tokens": 10**20, "completion_tokens": 5}, cost=1e12)
    output = submit(service, django_capture_on_commit_callbacks, 1)

    verdict = Judgement.objects.for_tenant(tenant).get(output=output)
    assert (verdict.result, verdict.prompt_tokens, verdict.completion_tokens) == ("pass", None, 5)
    assert float(verdict.cost) == pytest.approx(5 * 2.0 / 1e6)  # the absurd reported cost gave way to the prices
    assert output.status == "auto_approved"


def test_the_stop_button_pressed_while_judging_acts_when_the_judges_finish(
    tenant, service, django_capture_on_commit_callbacks
):
    webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1:9/hook", secret="s" * 20)
    pii_judge(tenant)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        receipt = service.post("/api/v1/outputs", output_payload(1, application="held-app"), format="json").json()
    make_client(tenant, "admin").put("/api/v1/applications/held-app/override", {"mode": "block"}, format="json")
    for callback in callbacks:
        callback()

    output = Output.unscoped.get(pk=receipt["id"])
    assert (output.status, output.delivery) == ("blocked", "block")
    assert WebhookDelivery.objects.for_tenant(tenant).get(output=output).payload["output"]["delivery"] == "block"


def test_a_thumbs_down_while_judging_waits_for_the_judges_and_then_forces_a_review(
    tenant, service, django_capture_on_commit_callbacks
):
    pii_judge(tenant, on_fail="record")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        receipt = service.post("/api/v1/outputs", output_payload(1), format="json").json()
    feedback = service.post(f"/api/v1/outputs/{receipt['id']}/feedback", {"rating": "down"}, format="json").json()
    assert feedback["review_task_created"] is False  # not yet: the judges finish the decision
    assert Output.unscoped.get(pk=receipt["id"]).status == "judging"
    for callback in callbacks:
        callback()

    output = Output.unscoped.get(pk=receipt["id"])
    assert (output.status, output.review_required) == ("pending_review", True)
    assert "end user gave thumbs-down" in output.decision_reason
    assert ReviewTask.objects.for_tenant(tenant).filter(output=output).count() == 1


def test_a_thumbs_down_while_judging_does_not_undo_a_blocking_judge(
    tenant, service, django_capture_on_commit_callbacks
):
    pii_judge(tenant, on_fail="block")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        receipt = service.post("/api/v1/outputs", output_payload(1, output=CARD), format="json").json()
    service.post(f"/api/v1/outputs/{receipt['id']}/feedback", {"rating": "down"}, format="json")
    for callback in callbacks:
        callback()
    output = Output.unscoped.get(pk=receipt["id"])
    assert (output.status, output.delivery) == ("blocked", "block")
    assert not ReviewTask.objects.for_tenant(tenant).exists()


def test_the_decision_uses_each_judges_settings_as_they_were_when_it_judged(
    tenant, service, django_capture_on_commit_callbacks
):
    pii = pii_judge(tenant)  # force_review when it judges
    short = judge_create(tenant=tenant, data={"name": "short", "kind": "length", "params": {"max_chars": 500}})
    output = submit(service, django_capture_on_commit_callbacks, 1, output=CARD, run=False)
    judge_run(judge_id=pii.pk, output_ids=[str(output.pk)])
    judge_update(tenant=tenant, judge_id=pii.pk, data={"name": "pii", "kind": "pii", "on_fail": "record"})
    judge_run(judge_id=short.pk, output_ids=[str(output.pk)])  # the last verdict finishes the decision

    output.refresh_from_db()
    assert output.review_required is True and "judge pii failed" in output.decision_reason


def test_built_in_checks_share_a_message_and_each_llm_judge_gets_one_per_output(
    tenant, service, judge_server, monkeypatch, django_capture_on_commit_callbacks
):
    pii_judge(tenant)
    judge_create(tenant=tenant, data={"name": "short", "kind": "length", "params": {"max_chars": 500}})
    llm = judge_create(tenant=tenant, data=llm_judge_data(judge_server.url))
    sent = []
    monkeypatch.setattr(judges_run_task, "delay", lambda judge_ids, output_ids: sent.append((judge_ids, output_ids)))
    with django_capture_on_commit_callbacks(execute=True):
        batch = service.post(
            "/api/v1/outputs/batch", {"items": [output_payload(1), output_payload(2)]}, format="json"
        ).json()
    ids = {item["output"]["id"] for item in batch["results"]}

    builtin = [(judge_ids, output_ids) for judge_ids, output_ids in sent if llm.pk not in judge_ids]
    per_output = [output_ids[0] for judge_ids, output_ids in sent if judge_ids == [llm.pk]]
    assert len(builtin) == 1 and len(builtin[0][0]) == 2 and set(builtin[0][1]) == ids
    assert sorted(per_output) == sorted(ids)
