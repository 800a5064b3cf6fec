"""Judges through Redis and a real Celery worker: outputs submitted over the API get their verdicts.

Starts ``celery -A hitl worker`` (prefork, two processes) against Redis and the test
database, with an LLM judge on a local chat-completions server and a built-in PII
check. CI runs it with REQUIRE_REDIS=1, so a missing Redis fails instead of skipping.
"""

import time
from pathlib import Path

import pytest

from policies.services import judge_create, policy_publish
from reviews.models import Judgement, Output
from reviews.tasks import judges_run_task
from tests.celery_worker import celery_worker
from tests.conftest import make_client
from tests.factories import output_payload
from tests.judge_server import ok, status

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
POLICY = {
    "default_tier": "medium",
    "tiers": [{"name": "medium", "review_rate": 0.0, "mode": "sequential", "sla_minutes": 60}],
}


@pytest.fixture
def worker(monkeypatch):
    env = {"HITL_JUDGE_ALLOW_PRIVATE": "1"}
    with celery_worker(monkeypatch, [judges_run_task], env, pool=("--concurrency", "2")) as process:
        yield process


def wait_for(predicate, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_the_worker_judges_outputs_submitted_over_the_api(tenant, worker, judge_server):
    policy_publish(tenant=tenant, document=POLICY)
    judge_create(tenant=tenant, data={"name": "pii", "kind": "pii"})
    judge_create(
        tenant=tenant,
        data={
            "name": "llm",
            "kind": "llm",
            "params": {
                "base_url": judge_server.url,
                "model": "judge-1",
                "prompt_template": "Judge: {{output}}",
                "backoff_seconds": 0.1,
            },
        },
    )
    judge_server.script(status(429), ok(pass_=True, score=0.95))  # rate-limited once, then fine
    judge_server.default = ok(pass_=True, score=0.95)
    service = make_client(tenant, "service")
    clean = service.post("/api/v1/outputs", output_payload(1, output="All fine."), format="json").json()
    leaky = service.post(
        "/api/v1/outputs/batch",
        {"items": [output_payload(2, output="Mail me at ann@example.com"), output_payload(3, output="Thanks!")]},
        format="json",
    ).json()["results"]
    assert clean["status"] == "judging" and clean["delivery"] == "hold"  # a real worker: not judged yet
    ids = [clean["id"], *(item["output"]["id"] for item in leaky)]

    done = wait_for(lambda: not Output.objects.for_tenant(tenant).filter(id__in=ids, status="judging").exists())
    assert done, worker.poll()

    statuses = dict(Output.objects.for_tenant(tenant).values_list("external_id", "status"))
    assert statuses == {"ext-1": "auto_approved", "ext-2": "pending_review", "ext-3": "auto_approved"}
    assert Judgement.objects.for_tenant(tenant).count() == 6  # two judges, three outputs, once each
    body = service.get(f"/api/v1/outputs/{clean['id']}").json()
    assert {verdict["judge"]: verdict["result"] for verdict in body["judgements"]} == {"llm": "pass", "pii": "pass"}
    assert body["delivery"] == "deliver"
    llm_attempts = Judgement.objects.for_tenant(tenant).filter(judge__name="llm").values_list("attempts", flat=True)
    assert sorted(llm_attempts) == [1, 1, 2] and len(judge_server.requests) == 4  # the 429 was retried once
