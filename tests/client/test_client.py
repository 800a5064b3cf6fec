"""The service client (client/, package hitl_client) against a live server, and its retries against a stub."""

import copy
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from hitl_client import (
    AuthenticationError,
    ConflictError,
    DecisionTimeout,
    HitlClient,
    NotFoundError,
    RateLimitedError,
    Receipt,
    ServerError,
    ValidationError,
    WebhookSignatureError,
    verify_webhook,
)

from policies.defaults import DEFAULT_POLICY
from policies.services import policy_publish
from reviews.models import Output, Queue
from reviews.services.queues import queue_grant
from reviews.services.webhooks import decision_payload, webhook_signature
from tenants.services import PLATFORM_OPERATOR, membership_create
from tests.conftest import make_client
from tests.factories import TenantFactory, UserFactory, output_payload


@pytest.fixture
def live(live_server, transactional_db):
    """A tenant whose ``held-app`` outputs all wait for one approval, a service key and a reviewer."""
    tenant = TenantFactory()
    tiers = copy.deepcopy(DEFAULT_POLICY["tiers"])
    for tier in tiers:
        if tier["name"] == "high":
            tier.update(review_rate=1.0)
    rules = [{"tier": "high", "match": {"application": "held-app"}}]
    policy_publish(tenant=tenant, document={"default_tier": "medium", "tiers": tiers, "rules": rules})
    person = UserFactory()
    membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=2)
    queue_grant(queue=Queue.objects.for_tenant(tenant).get(name="default"), user=person, actor=PLATFORM_OPERATOR)
    service = make_client(tenant, "service")
    base_url = live_server.url.replace("localhost", "127.0.0.1")
    with HitlClient(base_url, service.raw_key, max_retries=0) as client:
        yield {
            "tenant": tenant,
            "client": client,
            "base_url": base_url,
            "reviewer": make_client(tenant, "reviewer", user=person),
        }


def test_submit_then_repeat_is_idempotent(live):
    client = live["client"]
    first = client.submit(**output_payload(1))
    again = client.submit(**output_payload(1))

    assert isinstance(first, Receipt)
    assert (first.created, again.created) == (True, False)
    assert again.id == first.id and again.external_id == "ext-1"
    assert first.delivery in ("deliver", "hold")
    assert Output.objects.for_tenant(live["tenant"]).count() == 1


def test_conflict_carries_the_api_error_body(live):
    client = live["client"]
    client.submit(**output_payload(1))
    with pytest.raises(ConflictError) as raised:
        client.submit(**output_payload(1, output="something else"))

    assert raised.value.status_code == 409
    assert raised.value.code == "conflict"
    assert "external_id" in raised.value.fields
    assert raised.value.body["code"] == "conflict"


def test_submit_batch_reports_each_item(live):
    client = live["client"]
    result = client.submit_batch([output_payload(1), output_payload(2), {"external_id": "bad"}])

    assert (result.created, result.invalid) == (2, 1)
    assert [item.outcome for item in result.results] == ["created", "created", "invalid"]
    assert result.results[0].output.external_id == "ext-1"
    assert result.results[2].output is None and result.results[2].error["code"] == "validation_error"


def test_get_output_and_missing_output(live):
    client = live["client"]
    receipt = client.submit(**output_payload(1))
    output = client.get_output(receipt.id)

    assert (output.id, output.external_id, output.application) == (receipt.id, "ext-1", "support-bot")
    assert output.raw["input"] == output_payload(1)["input"]
    with pytest.raises(NotFoundError) as raised:
        client.get_output("00000000-0000-0000-0000-000000000000")
    assert raised.value.code == "not_found"


def test_a_bad_key_raises_authentication_error(live_server, transactional_db):
    with pytest.raises(AuthenticationError) as raised:
        HitlClient(live_server.url, "hitl_wrong", max_retries=0).get_output("00000000-0000-0000-0000-000000000000")
    assert raised.value.status_code == 401 and raised.value.message


def test_wait_for_decision_polls_until_a_reviewer_decides(live):
    client = live["client"]
    receipt = client.submit(**output_payload(1, application="held-app"))
    assert receipt.delivery == "hold"
    with pytest.raises(DecisionTimeout) as raised:
        client.wait_for_decision(receipt.id, timeout=0.3, poll_interval=0.05)
    assert raised.value.output.status == "pending_review"

    reviewer = live["reviewer"]
    task = reviewer.post("/api/v1/tasks/claim", {}, format="json").json()
    decided = {}

    def decide_later():
        # Through the live server, as a reviewer's browser would: on SQLite the test's in-memory
        # database is shared with the server's threads only through the server's own connection.
        threading.Event().wait(0.3)
        request = urllib.request.Request(  # noqa: S310 (the live server on 127.0.0.1)
            f"{live['base_url']}/api/v1/tasks/{task['id']}/review",
            data=json.dumps({"decision": "approve"}).encode(),
            headers={"Authorization": f"Bearer {reviewer.raw_key}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            decided["status"], decided["body"] = response.status, response.read()

    thread = threading.Thread(target=decide_later)
    thread.start()
    output = client.wait_for_decision(receipt.id, timeout=30, poll_interval=0.1)
    thread.join()

    assert decided["status"] == 201, decided["body"]
    assert (output.status, output.decision, output.delivery) == ("approved", "approved", "deliver")
    assert output.decided and output.decided_at is not None


# Retries ----------------------------------------------------------------------------------

RECEIPT = {
    "id": "6f1c0c5e-5d7a-4c39-9d5e-2b9b8d9a1a01",
    "external_id": "ext-1",
    "application": "support-bot",
    "status": "auto_approved",
    "risk_tier": "medium",
    "review_required": False,
    "delivery": "deliver",
    "policy_version": 1,
    "received_at": "2026-11-29T12:00:00Z",
}


class Stub:
    """A server on 127.0.0.1 that answers from a script of (status, headers, body), the last repeating."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                stub.requests.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
                status, headers, body = stub.answers.pop(0) if len(stub.answers) > 1 else stub.answers[0]
                payload = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    made = []

    def _make(*answers):
        made.append(Stub(*answers))
        return made[-1]

    yield _make
    for server in made:
        server.close()


SLOW_DOWN = {"code": "throttled", "message": "Slow down."}


def test_429_then_201_honours_retry_after(stub):
    server = stub((429, {"Retry-After": "2"}, SLOW_DOWN), (201, {}, RECEIPT))
    slept = []
    client = HitlClient(server.url, "key", sleep=slept.append)

    receipt = client.submit(**output_payload(1))

    assert receipt.created and receipt.id == RECEIPT["id"]
    assert slept == [2.0]
    assert len(server.requests) == 2
    assert server.requests[0]["body"] == server.requests[1]["body"]  # the same body: ingest is idempotent on it


def test_5xx_backs_off_exponentially_then_gives_up_with_the_body(stub):
    server = stub((503, {}, {"code": "unavailable", "message": "Down for a moment."}))
    slept = []
    client = HitlClient(server.url, "key", max_retries=3, backoff=1.0, sleep=slept.append)

    with pytest.raises(ServerError) as raised:
        client.submit(**output_payload(1))

    assert len(server.requests) == 4
    assert len(slept) == 3
    assert [0.5 <= slept[0] <= 1, 1 <= slept[1] <= 2, 2 <= slept[2] <= 4] == [True, True, True]
    assert (raised.value.status_code, raised.value.code) == (503, "unavailable")


def test_a_retry_after_past_the_bound_is_not_waited_for(stub):
    server = stub((429, {"Retry-After": "3600"}, SLOW_DOWN), (201, {}, RECEIPT))
    slept = []
    client = HitlClient(server.url, "key", max_backoff=30, sleep=slept.append)

    with pytest.raises(RateLimitedError) as raised:
        client.submit(**output_payload(1))

    assert raised.value.retry_after == 3600 and raised.value.message == "Slow down."
    assert slept == [] and len(server.requests) == 1


def test_a_client_error_is_not_retried(stub):
    server = stub((400, {}, {"code": "validation_error", "message": "x: bad", "fields": {"x": ["bad"]}}))
    with pytest.raises(ValidationError) as raised:
        HitlClient(server.url, "key", sleep=lambda _: None).submit(**output_payload(1))
    assert raised.value.fields == {"x": ["bad"]}
    assert len(server.requests) == 1


# Webhooks ---------------------------------------------------------------------------------


def test_verify_webhook_accepts_what_the_server_signs_and_refuses_anything_else(db):
    tenant = TenantFactory()
    service = make_client(tenant, "service")
    output_id = service.post("/api/v1/outputs", output_payload(1), format="json").json()["id"]
    payload = decision_payload(Output.objects.for_tenant(tenant).get(pk=output_id))
    body = orjson.dumps({**payload, "delivery_id": "d-1"})  # as reviews/services/webhooks.py sends it
    secret = "s" * 20
    headers = {"x-hitl-signature": webhook_signature(secret=secret, body=body), "X-HITL-Event": "output.decided"}

    event = verify_webhook(body, headers, secret)

    assert (event.event, event.delivery_id, event.output["id"]) == ("output.decided", "d-1", output_id)
    with pytest.raises(WebhookSignatureError):
        verify_webhook(body.replace(b"ext-1", b"ext-2"), headers, secret)
    with pytest.raises(WebhookSignatureError):
        verify_webhook(body, headers, "t" * 20)
    with pytest.raises(WebhookSignatureError):
        verify_webhook(body, {}, secret)


def test_get_session_follows_the_pages_in_order(live):
    client = live["client"]
    client.submit_batch([output_payload(number, session_id="chat/7") for number in range(1, 4)])
    client.submit(**output_payload(9, session_id="other"))

    turns = client.get_session("chat/7")

    assert [turn.external_id for turn in turns] == ["ext-1", "ext-2", "ext-3"]
    with pytest.raises(NotFoundError):
        client.get_session("nope")
