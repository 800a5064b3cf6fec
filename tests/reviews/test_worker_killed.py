"""A Celery worker killed with SIGKILL mid-task loses nothing and sends nothing twice under two ids.

Real processes: ``celery -A hitl worker`` on Redis and the test database, an LLM judge
on a local chat-completions server, a webhook receiver on 127.0.0.1. Each test kills
the worker while the judge's or the receiver's answer is still pending, either its pool
process (the broker hands the message back: ``acks_late`` and
``reject_on_worker_lost``) or the whole worker with its unacknowledged message (the
reconciler and the webhook sweep find the work in the database), and checks that the
work completes exactly once.
"""

import http.server
import os
import signal
import threading
import time

import pytest
from django.utils import timezone

from policies.services import judge_create, policy_publish
from reviews.models import Judgement, Output, WebhookDelivery
from reviews.services.judging import judges_reconcile
from reviews.services.webhooks import webhook_endpoint_create
from reviews.tasks import judges_run_task, webhook_deliver_task, webhook_sweep_task
from tests.celery_worker import celery_worker, kill_worker, pool_processes
from tests.conftest import make_client
from tests.factories import output_payload
from tests.judge_server import ok, slow
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit
from tests.reviews.test_webhooks import SECRET

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

POLICY = {
    "default_tier": "medium",
    "tiers": [{"name": "medium", "review_rate": 0.0, "mode": "sequential", "sla_minutes": 60}],
}
KILLED = ["pool process", "whole worker"]
POOLS = {"pool process": ("--pool", "prefork", "--concurrency", "1"), "whole worker": ("--pool", "solo")}


def wait_for(predicate, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def kill(worker, killed: str) -> None:
    if killed == "pool process":
        children = pool_processes(worker)
        assert len(children) == 1, children
        os.kill(children[0], signal.SIGKILL)  # the main process sees its child lost and requeues the message
    else:
        kill_worker(worker)
        worker.wait(timeout=10)


@pytest.mark.parametrize("killed", KILLED)
def test_a_worker_killed_mid_judging_leaves_no_output_judging(tenant, judge_server, monkeypatch, settings, killed):
    policy_publish(tenant=tenant, document=POLICY)
    params = {"base_url": judge_server.url, "model": "m", "prompt_template": "Judge: {{output}}", "max_retries": 0}
    judge_create(tenant=tenant, data={"name": "llm", "kind": "llm", "params": params})
    judge_server.script(slow(20))  # the first call hangs: the worker dies waiting for it
    judge_server.default = ok(pass_=True, score=0.95)
    env = {"HITL_JUDGE_ALLOW_PRIVATE": "1"}
    service = make_client(tenant, "service")

    with celery_worker(monkeypatch, [judges_run_task], env, pool=POOLS[killed]) as worker:
        output = service.post("/api/v1/outputs", output_payload(1), format="json").json()
        assert output["status"] == "judging"
        assert wait_for(lambda: len(judge_server.requests) == 1), worker.poll()
        kill(worker, killed)
        if killed == "pool process":
            assert wait_for(lambda: Output.objects.for_tenant(tenant).get().status != "judging")

    if killed == "whole worker":  # its message is gone with it: the reconciler sends the judge again
        assert Output.objects.for_tenant(tenant).get().status == "judging"
        settings.HITL_JUDGE_RECONCILE_SECONDS = 1
        with celery_worker(monkeypatch, [judges_run_task], env):
            assert wait_for(lambda: judges_reconcile() == 1, 5)
            assert wait_for(lambda: Output.objects.for_tenant(tenant).get().status != "judging")

    stored = Output.objects.for_tenant(tenant).get()
    assert (stored.status, stored.delivery) == ("auto_approved", "deliver")
    verdicts = list(Judgement.objects.for_tenant(tenant).values_list("result", "attempts"))
    assert verdicts == [("pass", 1)]  # one verdict, from the second run
    assert len(judge_server.requests) == 2


class HoldingReceiver:
    """A webhook receiver that holds its first request for ``hold`` seconds before answering 204.

    Like a real receiver it processes a delivery once: repeats of an ``X-HITL-Delivery``
    id it has seen are answered 204 and ignored.
    """

    def __init__(self, hold: float):
        self.requests: list[str] = []  # the delivery id of every request, in order
        self.processed: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                delivery_id = self.headers["X-HITL-Delivery"]
                with receiver.lock:
                    receiver.requests.append(delivery_id)
                    first = len(receiver.requests) == 1
                    if delivery_id not in receiver.processed:
                        receiver.processed.append(delivery_id)
                if first:
                    time.sleep(hold)
                try:
                    self.send_response(204)
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("killed", KILLED)
def test_a_worker_killed_mid_delivery_sends_the_decision_again_under_the_same_id(tenant, workflow, monkeypatch, killed):
    receiver = HoldingReceiver(hold=3)
    env = {"HITL_WEBHOOK_BACKOFF_SECONDS": "1", "HITL_WEBHOOK_ALLOW_PRIVATE": "1"}
    try:
        webhook_endpoint_create(tenant=tenant, url=receiver.url, secret=SECRET)
        submit(workflow, 1, "medium-app")
        rita = reviewer(tenant, 1, "rita")
        delivery = WebhookDelivery.objects.for_tenant(tenant)

        with celery_worker(monkeypatch, [webhook_deliver_task], env, pool=POOLS[killed]) as worker:
            assert review(rita, claim(rita).json()["id"], decision="approve", scores=GOOD_SCORES).status_code == 201
            assert wait_for(lambda: len(receiver.requests) == 1), worker.poll()
            kill(worker, killed)
            if killed == "pool process":  # redelivered at once; attempted again after the backoff
                assert wait_for(lambda: delivery.get().status == "succeeded")

        if killed == "whole worker":  # the sweep finds the delivery due after the backoff
            assert delivery.get().status == "pending"
            with celery_worker(monkeypatch, [webhook_deliver_task], env):
                assert wait_for(lambda: delivery.get().next_attempt_at <= timezone.now(), 5)
                assert webhook_sweep_task() == 1
                assert wait_for(lambda: delivery.get().status == "succeeded")

        sent = delivery.get()
        assert (sent.status, sent.attempts) == ("succeeded", 2)
        assert receiver.requests == [str(sent.pk)] * 2  # sent again, under the same idempotency id
        assert receiver.processed == [str(sent.pk)]  # so the receiver acted on the decision once
        assert sent.attempt_log.count() == 1  # the killed attempt left no outcome; the second succeeded
    finally:
        receiver.close()
