"""Writes of the quality layer: keyword-only functions in a transaction (house style rule 2)."""

from django.db import transaction

from quality.datasets import DatasetFilter, dataset_count
from tenants.audit import audit_record
from tenants.models import Tenant


def dataset_export_record(*, tenant: Tenant, dataset: DatasetFilter, actor) -> int:
    """Count a dataset's lines and record who exported which filter, and how many lines, before
    it is streamed (``dataset.export``); the count holds for the stream, which reads the outputs
    decided up to ``dataset.as_of`` only."""
    with transaction.atomic():
        lines = dataset_count(tenant=tenant, dataset=dataset)
        audit_record(
            tenant=tenant,
            actor=actor,
            kind="dataset.export",
            object_type="dataset",
            object_id=dataset.format,
            data={**dataset.describe(), "lines": lines},
        )
    return lines
