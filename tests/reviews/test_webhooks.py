"""Decisions POSTed to a real HTTP server on 127.0.0.1: signature, retries, attempt log, replay."""

import hashlib
import hmac
import http.server
import json
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from reviews.services import webhooks
from reviews.services.webhooks import webhook_attempt
from tenants.services import tenant_config_changed
from tests.conftest import make_client
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit

SECRET = "a-webhook-secret-of-20"


class Receiver:
    """A local HTTP server that fails the first ``failures`` requests with 500."""

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                status = 500 if len(receiver.received) <= receiver.failures else 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def _decide(tenant, workflow, django_capture_on_commit_callbacks):
    output = submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita")
    task = claim(rita).json()
    with django_capture_on_commit_callbacks(execute=True):
        review(rita, task["id"], decision="approve", scores=GOOD_SCORES)
    return output


def test_a_decision_is_posted_signed_with_an_idempotency_id(
    tenant, workflow, receiver, django_capture_on_commit_callbacks
):
    admin = make_client(tenant, "admin")
    created = admin.post("/api/v1/webhooks", {"url": receiver.url, "secret": SECRET}, format="json")
    assert created.status_code == 201 and "secret" not in created.json()

    output = _decide(tenant, workflow, django_capture_on_commit_callbacks)

    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-HITL-Signature"] == expected
    payload = json.loads(body)
    assert payload["delivery_id"] == headers["X-HITL-Delivery"]
    assert (payload["event"], payload["output"]["id"], payload["output"]["decision"]) == (
        "output.decided",
        output["id"],
        "approved",
    )
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
    assert WebhookAttempt.objects.for_tenant(tenant).get().status_code == 204


def test_failures_are_retried_with_backoff_and_every_attempt_is_logged(
    tenant, workflow, settings, django_capture_on_commit_callbacks
):
    server = Receiver(failures=2)
    try:
        make_client(tenant, "admin").post("/api/v1/webhooks", {"url": server.url, "secret": SECRET}, format="json")
        _decide(tenant, workflow, django_capture_on_commit_callbacks)
        delivery = WebhookDelivery.objects.for_tenant(tenant).get()
        assert (delivery.status, delivery.attempts) == ("pending", 1)
        first_wait = delivery.next_attempt_at - timezone.now()

        assert webhook_attempt(delivery_id=delivery.pk).attempts == 1  # not due yet: nothing sent
        later = timezone.now() + timedelta(hours=2)
        second = webhook_attempt(delivery_id=delivery.pk, now=later)
        third = webhook_attempt(delivery_id=delivery.pk, now=later + timedelta(hours=2))

        assert timedelta(seconds=5) < first_wait <= timedelta(seconds=10)
        assert second.next_attempt_at - later == timedelta(seconds=20)  # the wait doubles
        assert (third.status, third.attempts) == ("succeeded", 3)
        assert len(server.received) == 3
        ids = {headers["X-HITL-Delivery"] for headers, _ in server.received}
        assert ids == {str(delivery.pk)}  # the same idempotency id on every attempt
        codes = list(
            WebhookAttempt.objects.for_tenant(tenant).order_by("attempted_at").values_list("status_code", flat=True)
        )
        assert codes == [500, 500, 204]
    finally:
        server.close()


def test_a_delivery_that_keeps_failing_ends_failed_and_can_be_replayed(
    tenant, workflow, settings, django_capture_on_commit_callbacks
):
    settings.HITL_WEBHOOK_MAX_ATTEMPTS = 3
    server = Receiver(failures=3)
    try:
        make_client(tenant, "admin").post("/api/v1/webhooks", {"url": server.url, "secret": SECRET}, format="json")
        _decide(tenant, workflow, django_capture_on_commit_callbacks)
        delivery = WebhookDelivery.objects.for_tenant(tenant).get()
        moment = timezone.now()
        for _ in range(3):
            moment += timedelta(hours=2)
            webhook_attempt(delivery_id=delivery.pk, now=moment)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("failed", 3)
        assert "HTTP 500" in delivery.last_error

        with django_capture_on_commit_callbacks(execute=True):
            response = make_client(tenant, "admin").post(f"/api/v1/webhooks/deliveries/{delivery.pk}/replay")
        assert response.status_code == 202
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("succeeded", 1)
        assert len(server.received) == 4
    finally:
        server.close()


def test_an_unreachable_endpoint_is_an_error_attempt_not_a_crash(tenant, workflow, django_capture_on_commit_callbacks):
    make_client(tenant, "admin").post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9/nothing", "secret": SECRET}, format="json"
    )
    _decide(tenant, workflow, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert delivery.status == "pending" and delivery.last_error == "ConnectionError: connection refused"


def test_a_failed_attempt_reads_in_plain_words(settings):
    """Not the HTTP library's chain of internal objects (``_PinnedHTTPConnectionPool(...)``)."""
    import requests

    from reviews.services.webhooks import attempt_error

    settings.HITL_WEBHOOK_TIMEOUT_SECONDS = 5
    assert attempt_error(requests.exceptions.ReadTimeout("pool: Read timed out.")) == "Timeout: no answer within 5 s"
    assert attempt_error(requests.exceptions.ConnectTimeout("pool")) == "ConnectionError: no connection within 5 s"
    unresolvable = requests.exceptions.ConnectionError(
        "_PinnedHTTPConnectionPool(host='x.invalid', port=443): Max retries exceeded (Caused by "
        "NameResolutionError(\"<urllib3.connection.HTTPSConnection object at 0x7f>: Failed to resolve 'x.invalid' "
        '([Errno -2] Name or service not known)"))'
    )
    assert attempt_error(unresolvable) == "ConnectionError: name or service not known"
    assert attempt_error(ValueError("odd")) == "ValueError: odd"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://x/y", "secret": SECRET}, "url"),
        ({"url": "http://x/y", "secret": "short"}, "secret"),
        ({}, "url"),
    ],
)
def test_webhook_registration_is_validated(tenant, body, field):
    response = make_client(tenant, "admin").post("/api/v1/webhooks", body, format="json")
    assert response.status_code == 400 and field in response.json()["fields"]


def test_deleted_webhooks_are_no_longer_listed_or_sent_to(tenant, receiver):
    admin = make_client(tenant, "admin")
    hook = admin.post("/api/v1/webhooks", {"url": receiver.url, "secret": SECRET}, format="json").json()
    assert admin.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert admin.get("/api/v1/webhooks").json()["results"] == []


def test_replay_of_an_unknown_delivery_is_404(tenant):
    assert (
        make_client(tenant, "admin")
        .post("/api/v1/webhooks/deliveries/01a1fe54-40f0-7ad9-a79e-02d642a1cacc/replay")
        .status_code
        == 404
    )


def test_a_deactivated_endpoint_gets_no_more_attempts(tenant, workflow, receiver, django_capture_on_commit_callbacks):
    server = Receiver(failures=1)
    try:
        admin = make_client(tenant, "admin")
        hook = admin.post("/api/v1/webhooks", {"url": server.url, "secret": SECRET}, format="json").json()
        _decide(tenant, workflow, django_capture_on_commit_callbacks)
        admin.delete(f"/api/v1/webhooks/{hook['id']}")
        delivery = WebhookDelivery.objects.for_tenant(tenant).get()

        after = webhook_attempt(delivery_id=delivery.pk, now=timezone.now() + timedelta(hours=1))

        assert (after.status, after.last_error) == ("failed", "endpoint deactivated")
        assert len(server.received) == 1
    finally:
        server.close()


def test_a_delivery_waiting_for_its_retry_is_sent_at_once_on_replay(
    tenant, workflow, django_capture_on_commit_callbacks
):
    # Without a broker the retry used to wait for ever, and replaying a pending delivery answered 409.
    server = Receiver(failures=1)
    try:
        admin = make_client(tenant, "admin")
        admin.post("/api/v1/webhooks", {"url": server.url, "secret": SECRET}, format="json")
        _decide(tenant, workflow, django_capture_on_commit_callbacks)
        delivery = WebhookDelivery.objects.for_tenant(tenant).get()
        assert (delivery.status, delivery.attempts) == ("pending", 1)  # the next attempt is seconds away

        with django_capture_on_commit_callbacks(execute=True):
            response = admin.post(f"/api/v1/webhooks/deliveries/{delivery.pk}/replay")

        assert response.status_code == 202
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("succeeded", 1)  # a fresh series, sent now
        assert [headers["X-HITL-Delivery"] for headers, _ in server.received] == [str(delivery.pk)] * 2
    finally:
        server.close()


def test_an_attempt_in_flight_during_a_replay_does_not_decide_the_outcome(
    tenant, workflow, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.HITL_WEBHOOK_MAX_ATTEMPTS = 2
    server = Receiver(failures=2)
    try:
        make_client(tenant, "admin").post("/api/v1/webhooks", {"url": server.url, "secret": SECRET}, format="json")
        _decide(tenant, workflow, django_capture_on_commit_callbacks)
        delivery = WebhookDelivery.objects.for_tenant(tenant).get()
        signature = webhooks.webhook_signature

        def replayed_meanwhile(**kwargs):  # runs after the attempt was claimed, before it is sent
            webhooks.webhook_delivery_replay(tenant=tenant, delivery_id=delivery.pk)
            return signature(**kwargs)

        monkeypatch.setattr(webhooks, "webhook_signature", replayed_meanwhile)
        last = webhook_attempt(delivery_id=delivery.pk, now=timezone.now() + timedelta(hours=1))
        monkeypatch.setattr(webhooks, "webhook_signature", signature)

        # The last attempt failed, but the replay started a new series: not failed, due now.
        assert (last.status, last.attempts) == ("pending", 0)
        assert webhook_attempt(delivery_id=delivery.pk).status == "succeeded"
        assert WebhookAttempt.objects.for_tenant(tenant).count() == 3 == len(server.received)
    finally:
        server.close()


def test_private_addresses_are_refused_outside_development(
    tenant, workflow, settings, receiver, django_capture_on_commit_callbacks
):
    settings.HITL_WEBHOOK_ALLOW_PRIVATE = False
    make_client(tenant, "admin").post("/api/v1/webhooks", {"url": receiver.url, "secret": SECRET}, format="json")

    _decide(tenant, workflow, django_capture_on_commit_callbacks)

    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert "non-public address 127.0.0.1" in delivery.last_error
    assert receiver.received == []


# http(s)://, then no whitespace: the published pattern (else a 400); the outbound rules
# of hitl.net refuse the rest with a 422 that names the rule.
@pytest.mark.parametrize(
    ("url", "status"),
    [("http://[::1", 422), ("http://a]b/", 422), ("http://host:99999/x", 422), ("http:///nohost", 422), ("h://x", 400)],
)
def test_malformed_webhook_urls_are_refused(tenant, url, status):
    response = make_client(tenant, "admin").post("/api/v1/webhooks", {"url": url, "secret": SECRET}, format="json")
    assert response.status_code == status and "url" in response.json()["fields"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # urllib.parse reads host 1.1.1.1 here, requests connects to 127.0.0.1.
        ("http://127.0.0.1:8799\\@1.1.1.1/x", "The URL must not contain a backslash."),
        ("https://user:password@hooks.example/x", "The URL must not contain user-info (user:password@)."),
        ("http://a..b/", "The URL has an invalid host name: a..b."),
        ("http://2130706433/", "four decimal numbers"),
    ],
)
def test_urls_the_client_could_read_another_way_are_refused_when_saved(tenant, url, message):
    response = make_client(tenant, "admin").post("/api/v1/webhooks", {"url": url, "secret": SECRET}, format="json")

    assert response.status_code == 422 and message in response.json()["fields"]["url"][0]
    assert not WebhookEndpoint.objects.for_tenant(tenant).exists()


def _decide_answering(tenant, workflow, django_capture_on_commit_callbacks):
    """Like _decide, but returns the review's response (the delivery runs in-process, on commit)."""
    submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita")
    task = claim(rita).json()
    with django_capture_on_commit_callbacks(execute=True):
        return review(rita, task["id"], decision="approve", scores=GOOD_SCORES)


def test_a_name_resolving_to_the_shared_address_space_is_a_failed_attempt(
    tenant, workflow, settings, fake_dns, loopback_only, django_capture_on_commit_callbacks
):
    settings.HITL_WEBHOOK_ALLOW_PRIVATE = False
    fake_dns.script("hooks.test", ["100.64.0.1"])  # shared address space: some clouds' metadata service
    make_client(tenant, "admin").post(
        "/api/v1/webhooks", {"url": "http://hooks.test/x", "secret": SECRET}, format="json"
    )

    response = _decide_answering(tenant, workflow, django_capture_on_commit_callbacks)

    assert response.status_code == 201
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "non-public address 100.64.0.1" in delivery.last_error
    assert WebhookAttempt.objects.for_tenant(tenant).get().error == delivery.last_error
    assert loopback_only.destinations == []


@pytest.mark.parametrize("allow_private", [False, True])
def test_a_malformed_url_saved_under_older_rules_fails_the_attempt_not_the_review(
    tenant, workflow, settings, allow_private, fake_dns, loopback_only, django_capture_on_commit_callbacks
):
    # Resolving "a..b" raised UnicodeError from inside the guard: the review answered 500 after its decision committed.
    settings.HITL_WEBHOOK_ALLOW_PRIVATE = allow_private
    WebhookEndpoint.objects.for_tenant(tenant).create(url="http://a..b/", secret=SECRET)
    tenant_config_changed(tenant=tenant)

    response = _decide_answering(tenant, workflow, django_capture_on_commit_callbacks)

    assert response.status_code == 201
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert delivery.last_error == "endpoint refused: the URL has an invalid host name: a..b"
    assert fake_dns.calls == [] and loopback_only.destinations == []


def test_a_delivery_connects_to_the_address_checked_and_keeps_the_name(
    tenant, workflow, receiver, fake_dns, loopback_only, django_capture_on_commit_callbacks
):
    port = receiver.server.server_address[1]
    fake_dns.script("hooks.test", ["127.0.0.1"], ["127.0.0.2"])  # a rebinding answer after the first
    url = f"http://hooks.test:{port}/hook"
    make_client(tenant, "admin").post("/api/v1/webhooks", {"url": url, "secret": SECRET}, format="json")

    _decide(tenant, workflow, django_capture_on_commit_callbacks)

    assert WebhookDelivery.objects.for_tenant(tenant).get().status == "succeeded"
    assert [headers["Host"] for headers, _ in receiver.received] == [f"hooks.test:{port}"]
    assert fake_dns.calls == ["hooks.test"]
    assert loopback_only.destinations == [("127.0.0.1", port)]
