"""The API holds its published contract against a client nobody here wrote.

schemathesis (pinned in requirements-dev.txt) reads the OpenAPI document that a live
server publishes, generates requests from it, valid and invalid, sends them with a key
of each role (to the operations that role may call) and runs every built-in check on the
answers: no 5xx; status codes, content types, headers and bodies as documented; schema-
valid requests accepted, schema-violating requests rejected; a missing or ignored key
refused; undeclared methods refused.

Two settings say what a JSON Schema cannot:

- a well-formed request may still break a rule the schema cannot state (one field
  against another, a reference to other configuration, a regular expression that does
  not compile); the API answers 422 for those, documented per operation, and the
  positive-data check takes 422 as such an answer rather than as a rejected valid request;
- strings never hold U+0000 (PostgreSQL cannot store it; the API refuses it everywhere
  with a 400), so none are generated.
"""

import json
import re
import subprocess
import sys
from datetime import timedelta

import orjson
import pytest
from django.test import testcases
from django.urls import resolve
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from policies.defaults import DEFAULT_POLICY
from policies.services import judge_create, judge_flag_raise, policy_publish, rubric_publish
from quality.services import calibration_session_create, gold_items_import, golden_set_create
from reviews.bundle import compliance_export_build
from reviews.models import Certification, ComplianceExport, GoldItem, Queue, ReviewTask, WebhookDelivery
from reviews.services.queues import queue_grant
from reviews.services.webhooks import webhook_endpoint_create
from tenants.models import ApiKeyRole
from tenants.services import PLATFORM_OPERATOR, membership_create
from tests.conftest import make_client
from tests.factories import TenantFactory, UserFactory, output_payload

JSON_LINES_BODIES = {"golden_set_import"}
MAX_EXAMPLES = 20  # per operation and phase; the coverage phase adds its boundary cases
RUBRIC = {
    "name": "quality",
    "criteria": [
        {"key": "correct", "label": "Correct", "kind": "binary"},
        {"key": "helpful", "label": "Helpful", "kind": "graded", "min": 1, "max": 5},
    ],
}


def _seed(role: str) -> tuple[str, dict]:
    """A tenant with one of everything an operation can address, and a key of ``role``.

    Returns the key and the path parameters that name the seeded objects.
    """
    tenant = TenantFactory()
    rubric_publish(tenant=tenant, document=RUBRIC)
    rules = [{"name": "held", "tier": "critical", "match": {"application": "held"}}]
    policy_publish(tenant=tenant, document={**DEFAULT_POLICY, "rules": rules})
    user = None
    if role in ("reviewer", "admin"):
        user = UserFactory()
        membership_create(tenant=tenant, user=user, role=role, reviewer_level=3)
        queue_grant(queue=Queue.objects.for_tenant(tenant).get(name="default"), user=user, actor=PLATFORM_OPERATOR)
    raw_key = make_client(tenant, role, user=user).raw_key
    service = make_client(tenant, "service")
    held = service.post(
        "/api/v1/outputs", output_payload(1, application="held", session_id="held-session"), format="json"
    ).json()
    task = ReviewTask.objects.for_tenant(tenant).filter(output_id=held["id"]).first()
    webhook = webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1:9/hook", secret="s" * 20)
    delivery = WebhookDelivery.objects.for_tenant(tenant).create(
        endpoint=webhook, output_id=held["id"], payload={"event": "output.decided"}, status="failed"
    )
    judge = judge_create(
        tenant=tenant, data={"name": "banned", "kind": "banned", "params": {"phrases": ["x"]}, "applications": ["none"]}
    )
    export = ComplianceExport.objects.for_tenant(tenant).create(
        period_start=timezone.now() - timedelta(days=1), period_end=timezone.now() + timedelta(days=1)
    )
    compliance_export_build(export_id=export.pk)  # finished, so that its download is there
    golden = golden_set_create(tenant=tenant, name="gold", queue="default", actor=PLATFORM_OPERATOR)
    line = {"application": "support-bot", "input": "q", "output": "a", "expected_decision": "approve"}
    gold_items_import(tenant=tenant, golden_set_id=golden.pk, body=orjson.dumps(line), actor=PLATFORM_OPERATOR)
    certification = Certification.objects.for_tenant(tenant).create(
        user=user or UserFactory(),
        queue=Queue.objects.for_tenant(tenant).get(name="default"),
        valid_from=timezone.now(),
        valid_until=timezone.now() + timedelta(days=30),
    )
    # A calibration session the key's person (if any) is invited to, and a flagged judge.
    people = [user.pk] if user else []
    while len(people) < 2:
        other = UserFactory()
        membership_create(tenant=tenant, user=other, role="reviewer")
        people.append(other.pk)
    calibration = calibration_session_create(
        tenant=tenant,
        user=None,
        name="calibration",
        rubric_name=RUBRIC["name"],
        output_ids=[held["id"]],
        participant_ids=people,
    )
    judge_flag_raise(
        tenant=tenant, judge=judge, kappa=0.1, agreement_rate=0.5, compared=30, threshold=0.4, sample_rate=0.5
    )
    parameters = {
        "path.calibration_id": calibration.pk,
        "path.golden_set_id": golden.pk,
        "path.item_id": str(GoldItem.objects.for_tenant(tenant).get().pk),
        "path.certification_id": certification.pk,
        "path.queue_name": "default",
        "path.export_id": str(export.pk),
        "path.output_id": held["id"],
        "path.task_id": str(task.pk),
        "path.judge_id": judge.pk,
        "path.name": RUBRIC["name"],
        "path.webhook_id": webhook.pk,
        "path.delivery_id": str(delivery.pk),
        "path.session_id": "held-session",
    }
    return raw_key, parameters


def _operations_of(role: str, parameters: dict) -> list[str]:
    """The operations a key of ``role`` may call. What the others answer it (403, changing
    nothing) is pinned for every role and endpoint by tests/test_api_access_matrix.py."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    allowed = []
    for path, operations in schema["paths"].items():
        concrete = re.sub(r"\{(\w+)\}", lambda match: str(parameters[f"path.{match.group(1)}"]), path)
        permission_map = resolve(concrete).func.view_class.permission_map
        allowed += [op["operationId"] for method, op in operations.items() if role in permission_map[method.upper()]]
    # schemathesis has no serializer for application/x-ndjson bodies; tests/quality covers the import.
    return [operation for operation in allowed if operation not in JSON_LINES_BODIES]


def _config(parameters: dict) -> str:
    """schemathesis.toml: every check on, reproducible generation, the seeded objects."""
    lines = [
        "continue-on-failure = true",
        "workers = 1",  # the test server shares one SQLite connection between its threads
        "[cache]",
        "enabled = false",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        "deterministic = true",
        "allow-x00 = false",
        "[checks]",
        "enabled = true",
        "[checks.positive_data_acceptance]",
        'expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]',
        "[parameters]",
        *(f"{json.dumps(name)} = {json.dumps(value)}" for name, value in parameters.items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("role", ApiKeyRole.values)
def test_schemathesis_finds_no_failure(live_server, transactional_db, role, tmp_path, monkeypatch):
    # Django's test server writes headers and body apart; without TCP_NODELAY each answer
    # waits out the client's delayed ACK (40 ms), which would make this test ten times slower.
    monkeypatch.setattr(testcases.QuietWSGIRequestHandler, "disable_nagle_algorithm", True)
    raw_key, parameters = _seed(role)
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(parameters))
    base_url = live_server.url.replace("localhost", "127.0.0.1")
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color"),
        *("run", f"{base_url}/api/v1/schema/", "--url", base_url, "--checks", "all"),
        # Off: its links are inferred by parameter name, so POST /golden-sets's new id is sent on to
        # DELETE /golden-sets/{id}/items/{item_id} with a seeded item of another set, whose 404 is
        # right; the golden set it created is found (tests/quality/test_golden_sets_api.py).
        *("--exclude-checks", "ensure_resource_availability"),
        *("--header", f"Authorization: Bearer {raw_key}"),
        *(option for operation in _operations_of(role, parameters) for option in ("--include-operation-id", operation)),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-30000:] + result.stderr[-3000:]
