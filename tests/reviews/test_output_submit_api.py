"""POST /api/v1/outputs: storing, idempotency, and every way a body can be wrong."""

import pytest
from django.test import override_settings

from reviews.models import Output, ReviewTask
from tenants.models import AuditEvent
from tests.factories import output_payload

URL = "/api/v1/outputs"


@pytest.fixture
def submit(service_client):
    def _submit(payload, **kwargs):
        return service_client.post(URL, payload, format="json", **kwargs)

    return _submit


def test_submit_stores_everything_and_answers_201(submit, tenant):
    payload = output_payload(1)
    response = submit(payload)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["external_id"] == "ext-1"
    # The default policy: no rule matches confidence 0.87, so the default tier, medium (parallel).
    assert body["risk_tier"] == "medium"
    assert body["policy_version"] == 1
    assert body["delivery"] == "deliver"
    assert body["status"] == ("pending_review" if body["review_required"] else "auto_approved")
    stored = Output.objects.for_tenant(tenant).get(pk=body["id"])
    assert stored.input == payload["input"]
    assert stored.output == payload["output"]
    assert stored.trace == payload["trace"]
    assert stored.metadata == payload["metadata"]
    assert stored.model == "gpt-4o-mini"
    assert stored.confidence == pytest.approx(0.87)
    assert stored.received_at is not None
    assert stored.decision_reason.startswith("no rule matched: default tier; tier medium, rate 0.25, drawn ")


def test_submit_minimal_body_gets_defaults(submit, tenant):
    response = submit({"external_id": "m", "application": "app", "input": "hi", "output": ""})

    assert response.status_code == 201
    stored = Output.objects.for_tenant(tenant).get(external_id="m")
    assert (stored.trace, stored.metadata, stored.model, stored.confidence) == ([], {}, "", None)


def test_same_body_again_returns_the_same_record_with_200(submit, tenant):
    first = submit(output_payload(1))
    # Key order must not matter: the idempotency hash is over a canonical form.
    reordered = dict(reversed(list(output_payload(1).items())))
    second = submit(reordered)

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json() == first.json()
    assert Output.objects.for_tenant(tenant).count() == 1


def test_different_body_under_same_external_id_is_409_and_changes_nothing(submit, tenant):
    submit(output_payload(1))
    response = submit(output_payload(1, output="Something else."))

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert "external_id" in response.json()["fields"]
    assert Output.objects.for_tenant(tenant).get().output == "Answer 1."


def test_same_external_id_in_two_tenants_are_two_records(submit, other_service_client, tenant, other_tenant):
    mine = submit(output_payload(1))
    theirs = other_service_client.post(URL, output_payload(1, output="theirs"), format="json")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"external_id": None}, "external_id"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": "x" * 256}, "external_id"),
        ({"application": 5}, "application"),
        ({"application": "has spaces"}, "application"),
        ({"output": ["not", "a", "string"]}, "output"),
        ({"trace": {"not": "a list"}}, "trace"),
        ({"trace": ["not an object"]}, "trace.0"),
        ({"metadata": []}, "metadata"),
        ({"confidence": "0.5"}, "confidence"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": -0.1}, "confidence"),
        ({"model": 7}, "model"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_wrong_field_is_400_naming_it_and_stores_nothing(submit, tenant, change, field):
    response = submit(output_payload(1, **change))

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in body["fields"], body
    assert field in body["message"]
    assert not Output.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize("missing", ["external_id", "application", "input", "output"])
def test_missing_required_field_is_400_naming_it(submit, tenant, missing):
    payload = output_payload(1)
    del payload[missing]

    response = submit(payload)

    assert response.status_code == 400
    assert response.json()["fields"][missing] == ["Field required"]
    assert not Output.objects.for_tenant(tenant).exists()


def test_malformed_json_is_400(service_client, tenant):
    response = service_client.post(URL, data=b'{"external_id": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert "Malformed JSON" in response.json()["message"]


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42"])
def test_body_that_is_not_an_object_is_400(service_client, body):
    response = service_client.post(URL, data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"body": ["Must be a JSON object."]}


def test_empty_body_names_the_required_fields(service_client):
    response = service_client.post(URL, data=b"", content_type="application/json")

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"external_id", "application", "input", "output"}


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_oversized_body_is_400_and_stores_nothing(submit, tenant):
    response = submit(output_payload(1, output="x" * 2000))

    assert response.status_code == 400
    assert response.json()["code"] == "request_too_large"
    assert "1000 bytes" in response.json()["message"]
    assert not Output.objects.for_tenant(tenant).exists()


def test_non_json_content_type_is_415(service_client):
    response = service_client.post(URL, data="external_id=1", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_single_submit_runs_a_small_fixed_number_of_queries(submit, assert_work_queries, predictable_policy):
    from django.db import connection

    from tests.conftest import AUDIT_APPEND_QUERIES as audit

    submit(output_payload(0))  # the key's first use records last_used_at once
    if connection.vendor == "postgresql":
        # One statement: the key's check (the key comes from the process's cache, filled by the
        # first submit), the row, its tasks if sampled, its audit event. (Plus the chain's counter
        # row made sure of: once a process in production, but every time inside a test's
        # transaction, which never commits.)
        new, sampled, repeat = 2, 2, 3  # a repeat: the statement inserts nothing, the stored row is read
    else:
        new, sampled, repeat = 2 + audit, 3 + audit, 3  # key lookup, INSERT, [its tasks,] the audit event
    with assert_work_queries(new):
        response = submit(output_payload(2))
    assert (response.status_code, response.json()["review_required"]) == (201, False)
    with assert_work_queries(sampled):
        response = submit(output_payload(1, application="held"))
    assert (response.status_code, response.json()["review_required"]) == (201, True)
    with assert_work_queries(repeat):
        assert submit(output_payload(1, application="held")).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_an_output_its_tasks_and_its_audit_event_commit_together(service_client, tenant, predictable_policy):
    import re

    from django.db import connection

    statements = []

    def record(execute, sql, params, many, context):
        tables = [table for table in re.findall(r'INSERT\s+INTO\s+"?(\w+)', sql) if table != "tenants_audithead"]
        if tables:
            statements.append((tables, connection.in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        sampled = service_client.post(URL, output_payload(1, application="held"), format="json")
        unsampled = service_client.post(URL, output_payload(2), format="json")
    assert (sampled.status_code, sampled.json()["review_required"]) == (201, True)
    assert (unsampled.status_code, unsampled.json()["review_required"]) == (201, False)
    if connection.vendor == "postgresql":
        # One statement each, a transaction by itself: the output, its tasks, its audit event.
        assert statements == [
            (["reviews_output", "reviews_reviewtask", "tenants_auditevent"], False),
            (["reviews_output", "tenants_auditevent"], False),
        ]
    else:
        # The output, its review tasks and its audit event in one transaction; an output alone
        # too, for its audit event.
        assert statements == [
            (["reviews_output"], True),
            (["reviews_reviewtask"], True),
            (["tenants_auditevent"], True),
            (["reviews_output"], True),
            (["tenants_auditevent"], True),
        ]
    for response in (sampled, unsampled):
        assert (
            AuditEvent.objects.for_tenant(tenant)
            .filter(kind="output.received", data__ids=[response.json()["id"]])
            .count()
            == 1
        )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_output_whose_audit_event_cannot_be_appended_is_not_stored(service_client, tenant, predictable_policy):
    """The one statement of a single output fails whole when its event cannot join the chain:
    here the tenant's counter row vanished while this process believed it known."""
    from django.db import IntegrityError

    from hitl.tenancy import as_owner
    from tenants import audit
    from tenants.models import AuditHead

    assert service_client.post(URL, output_payload(1), format="json").status_code == 201
    assert tenant.pk in audit._heads_known
    with as_owner():  # (the application's role may not delete chain rows)
        AuditHead.objects.for_tenant(tenant).delete()
    events = AuditEvent.objects.for_tenant(tenant).count()
    try:
        with pytest.raises(IntegrityError, match="seq"):
            service_client.post(URL, output_payload(2, application="held"), format="json")
        assert not Output.objects.for_tenant(tenant).filter(external_id="ext-2").exists()
        assert ReviewTask.objects.for_tenant(tenant).count() == 0
        assert AuditEvent.objects.for_tenant(tenant).count() == events
        assert tenant.pk not in audit._heads_known  # doubted: made sure of again by the next append
    finally:
        audit._heads_known.discard(tenant.pk)


@pytest.mark.postgres
@pytest.mark.parametrize(("application", "tier"), [("held", "critical"), ("support-bot", "high")])
def test_a_sampled_outputs_tasks_take_its_id_tenant_and_time_from_the_row_it_inserted(
    service_client, tenant, application, tier
):
    """The tasks of a sampled output are inserted from the output's row in the same statement
    (``insert_statement(from_cte=...)``): theirs are its id, tenant and time of receipt, and the
    statement sends at most the parameters whose conversion psycopg caches, for one task or two."""
    import psycopg
    from django.db import connection

    from policies.defaults import DEFAULT_POLICY
    from policies.services import policy_publish

    tiers = [{**t, "review_rate": 1.0} for t in DEFAULT_POLICY["tiers"]]
    rules = [{"name": "held", "tier": tier, "match": {"application": application}}]
    policy_publish(tenant=tenant, document={**DEFAULT_POLICY, "tiers": tiers, "rules": rules})
    assert service_client.post(URL, output_payload(0), format="json").status_code == 201  # (the key now cached)
    sent = []

    def record(execute, sql, params, many, context):
        if "reviews_reviewtask" in sql:
            sent.append(("key_ok" in sql, len(params)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = service_client.post(URL, output_payload(1, application=application), format="json")
    assert (response.status_code, response.json()["risk_tier"]) == (201, tier)
    output = Output.objects.for_tenant(tenant).get(pk=response.json()["id"])
    tasks = list(ReviewTask.objects.for_tenant(tenant).filter(output=output))
    assert tasks and all(
        (task.tenant_id, task.created_at, task.status) == (tenant.pk, output.received_at, "pending") for task in tasks
    )
    assert len({task.pk for task in tasks}) == len(tasks)
    assert len(tasks) == (2 if tier == "critical" else 1)  # (critical: two approvals, two tasks)
    assert sent == [(True, sent[0][1])]  # one statement, the key's check in it
    assert sent[0][1] <= psycopg._queries.MAX_CACHED_STATEMENT_PARAMS
    event = AuditEvent.objects.for_tenant(tenant).get(kind="output.received", data__ids=[str(output.pk)])
    assert event.data["tasks"]  # the event commits to the tasks created


@pytest.mark.postgres
def test_insert_from_a_cte_refuses_a_mapping_it_would_ignore():
    """A field the mapping names must be one of the rows' fields (``output``, not ``output_id``),
    and some must be left to send: otherwise the rows' own values would go in unnoticed."""
    from hitl.db import insert_statement
    from reviews.services.claims import TASK_FIELDS

    row = tuple(range(len(TASK_FIELDS)))
    for mapping in ({"output_id": "id"}, dict.fromkeys(TASK_FIELDS, "id")):
        with pytest.raises(ValueError, match="from_cte"):
            insert_statement(ReviewTask, TASK_FIELDS, [row, row], from_cte=("stored", mapping))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_single_outputs_statement_is_the_requests_check_of_its_connection(
    service_client, tenant, predictable_policy, monkeypatch
):
    """Django checks a kept connection with a SELECT 1 before a request's first statement; the
    single output's write is that check (one round trip, not two)."""
    from django.db import connection

    assert service_client.post(URL, output_payload(1), format="json").status_code == 201  # (the key now cached)
    checks = []
    real = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or real())
    connection.health_check_done = False  # as at the start of a request on a kept connection
    assert service_client.post(URL, output_payload(2), format="json").status_code == 201
    assert checks == []
    assert connection.health_check_done  # (no other statement of the request checks again)

    connection.health_check_done = False  # the rest of the API is checked as before
    assert service_client.get(URL).status_code == 200
    assert checks == [1]


def _admin_connection():
    import psycopg
    from django.db import connection

    found = connection.settings_dict
    return psycopg.connect(
        host=found["HOST"], port=found["PORT"] or 5432, user=found["USER"], dbname=found["NAME"], autocommit=True
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_is_replaced_and_the_output_stored_once(
    service_client, tenant, predictable_policy
):
    from django.db import connection

    assert service_client.post(URL, output_payload(1), format="json").status_code == 201
    old_backend = connection.connection.info.backend_pid
    events = AuditEvent.objects.for_tenant(tenant).filter(kind="output.received").count()
    with _admin_connection() as admin:  # the server ends the kept connection between two requests
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [old_backend])  # (returns once it has ended)
    connection.health_check_done = False  # the next request, on the kept (now dead) connection

    # (whichever statement of the request comes first finds the connection dead and replaces it:
    # the write itself, hitl.db.as_health_check, or a lookup before it, Django's own check)
    response = service_client.post(URL, output_payload(2), format="json")

    assert response.status_code == 201
    assert connection.connection.info.backend_pid != old_backend
    assert Output.objects.for_tenant(tenant).filter(external_id="ext-2").count() == 1
    assert AuditEvent.objects.for_tenant(tenant).filter(kind="output.received").count() == events + 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_write_run_as_the_health_check_of_a_dead_connection_is_sent_again_on_a_new_one():
    from django.db import connection

    from hitl.db import as_health_check

    connection.ensure_connection()
    old_backend = connection.connection.info.backend_pid
    with _admin_connection() as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [old_backend])
    connection.health_check_done = False  # a request's first statement on a kept connection
    sent = []

    def write():
        sent.append(1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    new_backend = as_health_check(write)

    assert len(sent) == 2  # on the dead connection (no SELECT 1 before it), then on a new one
    assert new_backend != old_backend and connection.health_check_done
    assert as_health_check(write) == new_backend and len(sent) == 3  # (checked: simply runs)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_write_whose_answer_was_lost_is_sent_again_and_answered_as_created_once(
    service_client, tenant, predictable_policy
):
    """The connection dies after the write committed, before its answer came back: sent again on
    a new connection, the statement finds the output stored under the id this request gave it, so
    the request created it (201, its judges enqueued); nothing is stored or recorded twice."""
    from django.db import OperationalError, connection

    from policies.services import judge_create

    judge_create(tenant=tenant, data={"name": "pii", "kind": "pii"})
    assert service_client.post(URL, output_payload(1), format="json").status_code == 201
    writes = []

    def answer_lost_once(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "stored AS" in sql:
            writes.append(sql)
            if len(writes) == 1:
                connection.connection.close()  # the answer never arrives: the connection is gone
                raise OperationalError("server closed the connection unexpectedly")
        return result

    events = AuditEvent.objects.for_tenant(tenant).filter(kind="output.received").count()
    connection.health_check_done = False
    connection.execute_wrappers.insert(0, answer_lost_once)  # outermost: the statement has committed
    try:
        response = service_client.post(URL, output_payload(2), format="json")
    finally:
        connection.execute_wrappers.remove(answer_lost_once)

    assert len(writes) == 2
    assert response.status_code == 201  # the first send stored it, for this very request
    stored = Output.objects.for_tenant(tenant).get(external_id="ext-2")
    assert response.json()["id"] == str(stored.pk)
    assert stored.judged_at is not None  # its judges were enqueued (and ran, in-process)
    assert AuditEvent.objects.for_tenant(tenant).filter(kind="output.received").count() == events + 1
    # Another request with the same body is a repeat, as ever.
    assert service_client.post(URL, output_payload(2), format="json").status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_statement_that_fails_on_a_live_connection_is_not_sent_again(service_client, tenant, predictable_policy):
    from django.db import OperationalError, connection

    assert service_client.post(URL, output_payload(1), format="json").status_code == 201
    writes = []

    def fail(execute, sql, params, many, context):
        if "stored AS" in sql:
            writes.append(sql)
            raise OperationalError("canceling statement due to statement timeout")
        return execute(sql, params, many, context)

    connection.health_check_done = False
    with connection.execute_wrapper(fail), pytest.raises(OperationalError, match="timeout"):
        service_client.post(URL, output_payload(2), format="json")
    assert len(writes) == 1
    assert not Output.objects.for_tenant(tenant).filter(external_id="ext-2").exists()
