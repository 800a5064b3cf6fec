"""Concurrent writers on PostgreSQL never fork a tenant's chain: the counter row serializes them."""

import threading

import pytest
from django.db import connection, transaction

from tenants.audit import SYSTEM, audit_record, audit_verify
from tenants.models import AuditEvent, AuditHead, Tenant
from tests.concurrency import race
from tests.conftest import make_client
from tests.factories import TenantFactory, output_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_appenders_never_fork_or_gap_the_chain():
    tenant = Tenant.objects.create(slug="racing")  # no counter row yet: the first appenders race to create it
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)
    errors = []

    def worker(number: int) -> None:
        try:
            barrier.wait()
            for index in range(per_thread):
                with transaction.atomic():
                    audit_record(
                        tenant=tenant,
                        actor=SYSTEM,
                        kind="test.appended",
                        object_type="t",
                        object_id=f"{number}-{index}",
                    )
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    assert errors == []
    seqs = list(AuditEvent.objects.for_tenant(tenant).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, threads * per_thread + 1))
    assert AuditEvent.objects.for_tenant(tenant).values("prev_hash").distinct().count() == threads * per_thread
    assert AuditHead.objects.for_tenant(tenant).get().last_seq == threads * per_thread
    assert audit_verify(tenant).ok


def test_concurrent_ingest_batches_append_one_event_each():
    tenant = TenantFactory()
    client = make_client(tenant, "service")
    bodies = [{"items": [output_payload(n) for n in range(start, start + 20)]} for start in (0, 100, 200, 300)]

    responses = race(client.raw_key, "post", "/api/v1/outputs/batch", bodies)

    assert all(response.status_code == 200 for response in responses)
    events = list(AuditEvent.objects.for_tenant(tenant).filter(kind="output.received").order_by("seq"))
    assert len(events) == 4 and sorted(event.data["count"] for event in events) == [20] * 4
    assert audit_verify(tenant).ok
