"""The audit log in the database: appends, the batch event of ingest, checkpoints, verify_audit and tampering."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl import tenancy
from reviews.models import Output, TaskPurpose
from reviews.services import output_ingest_batch
from reviews.services.ingest import output_audit_digest
from tenants import audit, auditchain
from tenants.audit import SYSTEM, Actor, audit_checkpoint, audit_record, audit_verify, public_key
from tenants.models import AuditCheckpoint, AuditEvent, AuditHead
from tests.conftest import make_client
from tests.factories import output_submission

pytestmark = pytest.mark.django_db


def head(tenant):
    return AuditHead.objects.for_tenant(tenant).get().last_seq


def append(tenant, n, **fields):
    with transaction.atomic():
        for number in range(n):
            audit_record(
                tenant=tenant,
                actor=fields.get("actor", SYSTEM),
                kind="queue.updated",
                object_type="queue",
                object_id=number,
                data={"before": {"priority": number}, "after": {"priority": number + 1}},
            )


def test_appends_are_gap_free_chained_and_verified(tenant):
    # Onboarding recorded the tenant, its default policy and its default queue.
    assert list(AuditEvent.objects.for_tenant(tenant).order_by("seq").values_list("kind", flat=True)) == [
        "tenant.created",
        "policy.published",
        "queue.created",
    ]
    append(tenant, 5)
    events = list(AuditEvent.objects.for_tenant(tenant).order_by("seq"))
    assert [event.seq for event in events] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert events[0].prev_hash == auditchain.GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))
    head = AuditHead.objects.for_tenant(tenant).get()
    assert (head.last_seq, head.last_hash) == (8, events[-1].hash)
    assert audit_verify(tenant).ok


@pytest.mark.django_db(transaction=True)
def test_audit_record_refuses_to_run_outside_a_transaction(tenant):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_record(tenant=tenant, actor=SYSTEM, kind="queue.updated", object_type="queue", object_id=1)


def test_a_rolled_back_change_leaves_no_event_and_no_gap(tenant):
    base = head(tenant)
    append(tenant, 1)
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        audit_record(tenant=tenant, actor=SYSTEM, kind="queue.updated", object_type="queue", object_id=9)
        1 / 0  # noqa: B018
    append(tenant, 1)
    seqs = list(
        AuditEvent.objects.for_tenant(tenant).filter(seq__gt=base).values_list("seq", flat=True).order_by("seq")
    )
    assert seqs == [base + 1, base + 2]
    assert audit_verify(tenant).ok


def test_chains_are_per_tenant(tenant, other_tenant):
    base, other_base = head(tenant), head(other_tenant)
    append(tenant, 2)
    append(other_tenant, 3)
    assert head(tenant) == base + 2
    assert head(other_tenant) == other_base + 3
    assert audit_verify(tenant).ok and audit_verify(other_tenant).ok


def test_a_key_of_no_person_is_named_with_its_role(tenant):
    client = make_client(tenant, "service")
    with transaction.atomic():
        audit_record(
            tenant=tenant, actor=Actor.of_key(client.api_key), kind="key.used", object_type="api_key", object_id=1
        )
    event = AuditEvent.objects.for_tenant(tenant).get(kind="key.used")
    assert (event.actor_key_id, event.actor_person_id, event.actor_role) == (client.api_key.pk, None, "service")


def test_an_ingest_batch_is_one_event_committing_to_every_output_stored(tenant):
    submissions = [output_submission(n) for n in (3, 1, 2)]
    output_ingest_batch(tenant=tenant, submissions=submissions)
    output_ingest_batch(tenant=tenant, submissions=submissions)  # repeats store nothing, append nothing
    events = list(AuditEvent.objects.for_tenant(tenant).filter(kind="output.received"))
    assert len(events) == 1
    assert AuditEvent.objects.for_tenant(tenant).order_by("-seq").first().pk == events[0].pk  # nothing after it
    event = events[0]
    outputs = {str(o.id): o for o in Output.objects.for_tenant(tenant)}
    assert sorted(event.data["ids"]) == sorted(outputs)
    assert [outputs[i].external_id for i in event.data["ids"]] == ["ext-1", "ext-2", "ext-3"]
    digests = [outputs[i].audit_digest for i in event.data["ids"]]
    assert event.data["root"] == event.object_id == auditchain.merkle_root(digests)
    assert event.data["count"] == 3
    for output in outputs.values():  # each digest is recomputed from the stored row
        assert output.audit_digest == output_audit_digest(
            tenant_slug=tenant.slug,
            output_id=output.id,
            external_id=output.external_id,
            application=output.application,
            content_hash=output.content_hash,
            received_at=output.received_at,
            risk_tier=output.risk_tier,
            policy_version=output.policy_version,
            sampling_draw=output.sampling_draw,
            decision_reason=output.decision_reason,
        )
    assert audit_verify(tenant).ok


def test_the_api_names_the_submitting_key(tenant):
    client = make_client(tenant, "service")
    response = client.post(
        "/api/v1/outputs", {"external_id": "a", "application": "x", "input": "i", "output": "o"}, format="json"
    )
    assert response.status_code == 201
    event = AuditEvent.objects.for_tenant(tenant).get(kind="output.received")
    assert (event.actor_key_id, event.actor_role, event.data["ids"]) == (
        client.api_key.pk,
        "service",
        [response.json()["id"]],
    )


def test_checkpoints_are_signed_idempotent_and_checked(tenant):
    append(tenant, 3)
    first = audit_checkpoint(tenant)
    assert audit_checkpoint(tenant).pk == first.pk
    kid, public = public_key()
    assert first.seq == head(tenant) and first.key_id == kid
    assert auditchain.checkpoint_valid(
        public, tenant.slug, first.seq, first.head_hash, first.signed_at, first.signature
    )
    assert audit_verify(tenant).ok
    assert not audit_verify(tenant, public_keys={kid: "A" * 43 + "="}).ok


def test_public_key_endpoint(tenant):
    response = make_client(tenant, "auditor").get("/api/v1/audit/public-key")
    assert response.status_code == 200
    kid, public = public_key()
    assert response.json() == {"key_id": kid, "public_key": public, "algorithm": "Ed25519"}


# --- tampering, as the owner of the tables would --------------------------------------------


def tamper(sql, params=()):
    with tenancy.as_owner(), connection.cursor() as cursor:  # the app role may not: only the owner could
        cursor.execute(sql, params)


def verify_fails(tenant, seq):
    with pytest.raises(CommandError, match=f"first bad seq {seq}"):
        call_command("verify_audit", tenant.slug)


@pytest.fixture
def chained(tenant):
    """A chain of exactly six events (the onboarding's three are dropped: tests may tamper as the owner),
    with a signed checkpoint at 6."""
    tamper("DELETE FROM tenants_auditevent WHERE tenant_id = %s", [tenant.pk])
    tamper(
        "UPDATE tenants_audithead SET last_seq = 0, last_hash = %s, prev_hash = %s WHERE tenant_id = %s",
        [auditchain.GENESIS, auditchain.GENESIS, tenant.pk],
    )
    append(tenant, 6)
    assert audit_checkpoint(tenant).seq == 6
    call_command("verify_audit", tenant.slug)  # intact
    return tenant


def test_edit_a_field_is_detected(chained):
    tamper("UPDATE tenants_auditevent SET actor_role = 'admin' WHERE tenant_id = %s AND seq = 3", [chained.pk])
    verify_fails(chained, 3)


@pytest.mark.parametrize("shift", [timedelta(microseconds=1), timedelta(hours=-1)])
def test_move_an_events_time_is_detected(chained, shift):
    moved = AuditEvent.objects.for_tenant(chained).get(seq=2).at + shift
    tamper(
        "UPDATE tenants_auditevent SET at = %s WHERE tenant_id = %s AND seq = 2",
        [connection.ops.adapt_datetimefield_value(moved), chained.pk],
    )
    verify_fails(chained, 2)


def test_delete_a_middle_row_is_detected(chained):
    tamper("DELETE FROM tenants_auditevent WHERE tenant_id = %s AND seq = 4", [chained.pk])
    verify_fails(chained, 4)


def test_delete_the_newest_rows_is_detected_even_with_the_head_rewound(chained):
    last = AuditEvent.objects.for_tenant(chained).get(seq=4)
    tamper("DELETE FROM tenants_auditevent WHERE tenant_id = %s AND seq > 4", [chained.pk])
    tamper(
        "UPDATE tenants_audithead SET last_seq = 4, last_hash = %s, prev_hash = %s WHERE tenant_id = %s",
        [last.hash, last.prev_hash, chained.pk],
    )
    verify_fails(chained, 5)


def test_rehash_after_an_edit_is_detected_by_the_signed_checkpoint(chained):
    prev = AuditEvent.objects.for_tenant(chained).get(seq=1).hash
    for event in AuditEvent.objects.for_tenant(chained).filter(seq__gte=2).order_by("seq"):
        fields = {
            "tenant": chained.slug,
            "at": event.at,
            "kind": event.kind,
            "actor_person": event.actor_person_id,
            "actor_key": event.actor_key_id,
            "actor_role": event.actor_role,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "data": {"forged": True} if event.seq == 2 else event.data,
        }
        new = auditchain.chain_hash(prev, event.seq, auditchain.event_body(fields))
        tamper(
            "UPDATE tenants_auditevent SET data = %s, prev_hash = %s, hash = %s WHERE id = %s",
            ['{"forged": true}' if event.seq == 2 else __import__("json").dumps(event.data), prev, new, event.pk],
        )
        prev = new
    tamper("UPDATE tenants_audithead SET last_hash = %s WHERE tenant_id = %s", [prev, chained.pk])
    verify_fails(chained, 6)  # the checkpoint at 6 signed the old head


def test_swap_two_rows_is_detected(chained):
    tamper("UPDATE tenants_auditevent SET seq = -2 WHERE tenant_id = %s AND seq = 2", [chained.pk])
    tamper("UPDATE tenants_auditevent SET seq = 2 WHERE tenant_id = %s AND seq = 3", [chained.pk])
    tamper("UPDATE tenants_auditevent SET seq = 3 WHERE tenant_id = %s AND seq = -2", [chained.pk])
    verify_fails(chained, 2)


def test_a_forged_checkpoint_is_detected(chained):
    tamper("UPDATE tenants_auditcheckpoint SET seq = 5 WHERE tenant_id = %s", [chained.pk])
    with pytest.raises(CommandError, match="not intact"):
        call_command("verify_audit", chained.slug)


def test_unknown_tenant():
    with pytest.raises(CommandError, match="no tenant"):
        call_command("verify_audit", "nope")


def test_the_scheduled_checkpoints_sign_only_chains_that_grew(tenant, other_tenant):
    from tenants.audit import audit_checkpoints_due
    from tenants.tasks import audit_checkpoints_task

    assert audit_checkpoints_task.apply().get() >= 2  # both onboarded tenants have events
    assert audit_checkpoints_due() == 0  # nothing grew since
    append(tenant, 1)
    assert audit_checkpoints_due() == 1
    latest = AuditCheckpoint.objects.for_tenant(tenant).order_by("-seq").first()
    assert latest.seq == head(tenant)
    assert AuditCheckpoint.objects.for_tenant(other_tenant).count() == 1


@settings(max_examples=200, deadline=None)
@given(
    draw=st.none() | st.floats(min_value=0, max_value=1, exclude_max=True) | st.sampled_from([0.0, 1e-05, 1e-9, 0.5]),
    version=st.none() | st.integers(min_value=0, max_value=2**31),
    text=st.text(),
)
def test_an_outputs_digest_is_the_documented_canonical_json_digest_of_its_record(draw, version, text):
    # The ingest path encodes the record without normalizing it again (its values are already
    # canonical); the bytes must still be those the spec (and the offline verifier) defines.
    at = datetime(2026, 11, 30, 4, 5, 6, 789, tzinfo=UTC)
    fields = {
        "application": f"app {text}",
        "content_hash": "c" * 64,
        "decision_reason": text,
        "external_id": f"e\u2028{text}",
        "policy_version": version,
        "risk_tier": "high",
    }
    output_id = uuid.UUID(int=2**122 + len(text))
    expected = auditchain.digest(
        {
            **fields,
            "id": str(output_id),
            "received_at": auditchain.format_time(at),
            "sampling_draw": draw,
            "tenant": "t",
        }
    )
    computed = output_audit_digest(tenant_slug="t", output_id=output_id, received_at=at, sampling_draw=draw, **fields)
    assert computed == expected


_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e14, max_value=1e14)
    | st.text(max_size=5)
    | st.uuids()
    | st.datetimes(timezones=st.just(UTC))
    | st.decimals(allow_nan=False, allow_infinity=False, places=2, max_value=1000, min_value=-1000)
    | st.sampled_from(list(TaskPurpose))  # a choices enum: a str subclass, as services hand them
)


@settings(max_examples=200, deadline=None)
@given(
    data=st.recursive(
        _leaves,
        lambda children: (
            st.lists(children, max_size=3)
            | st.tuples(children, children)
            | st.dictionaries(
                st.text(max_size=4) | st.integers(0, 9) | st.sampled_from(list(TaskPurpose)), children, max_size=3
            )
        ),
        max_leaves=12,
    )
)
def test_an_events_data_is_made_json_in_one_walk_as_in_two(data):
    one_walk = audit._data_of(data)
    assert one_walk == auditchain.json_normalize(audit.jsonable(data))
    assert auditchain.canonical_json(one_walk) == auditchain.canonical_json(audit.jsonable(data))


@pytest.mark.postgres
def test_autovacuum_visits_the_chain_counter_rows_often(db):
    """Every append updates its tenant's one counter row: autovacuum is set to clear its dead
    versions after a thousand, not after a fifth of a table of one row a tenant (migration 0006)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'tenants_audithead'")
        options = dict(option.split("=", 1) for option in cursor.fetchone()[0] or [])
    assert options.get("autovacuum_vacuum_threshold") == "1000"
    assert options.get("autovacuum_vacuum_scale_factor") == "0"
