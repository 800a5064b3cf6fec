"""Shared model plumbing: the one tenant-scoping mechanism and time-ordered ids.

Every tenant-owned model inherits :class:`TenantOwnedModel`. Its ``objects``
manager refuses to build a query until it is told the tenant
(``Model.objects.for_tenant(tenant)``): forgetting the scope raises instead of
leaking rows. Code that must look across tenants (authentication by API key,
the Django admin, data migrations) says so by using ``Model.unscoped``.
"""

import os
import threading
import time
import uuid

from django.db import models

_uuid7_lock = threading.Lock()
_uuid7_last = [0, 0]  # the milliseconds and the 12-bit counter of the last id made in this process


def uuid7() -> uuid.UUID:
    """A version-7 UUID: 48 bits of Unix milliseconds, a 12-bit counter, then random bits.

    Time-ordered ids keep B-tree inserts append-mostly on PostgreSQL and sort by
    arrival, while revealing nothing about other tenants' volume (unlike a serial).
    Within a process they are also strictly increasing (RFC 9562, 6.2, method 1: the
    counter starts at a random value each millisecond and counts up), so that the
    outputs of one batch, received at the same instant, sort in the order submitted.
    """
    millis = time.time_ns() // 1_000_000
    with _uuid7_lock:
        if millis > _uuid7_last[0]:
            _uuid7_last[:] = [millis, int.from_bytes(os.urandom(2), "big") & 0x7FF]  # room to count
        elif _uuid7_last[1] < 0xFFF:
            _uuid7_last[1] += 1
        else:  # 4096 ids in one millisecond: borrow the next one
            _uuid7_last[:] = [_uuid7_last[0] + 1, 0]
        millis, counter = _uuid7_last
    random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0x2 << 62 | random_bits
    return uuid.UUID(int=value)


class UnscopedQueryError(RuntimeError):
    """A tenant-owned model was queried without naming the tenant."""


class TenantQuerySet(models.QuerySet):
    """A queryset that remembers its tenant, so that rows it creates belong to it."""

    _scoped_tenant = None

    def _clone(self):
        clone = super()._clone()
        clone._scoped_tenant = self._scoped_tenant
        return clone

    def _fill_tenant(self, obj) -> None:
        if self._scoped_tenant is None:
            raise UnscopedQueryError(f"{self.model.__name__}: create through .for_tenant(tenant)")
        if obj.tenant_id is None:
            obj.tenant = self._scoped_tenant
        elif obj.tenant_id != self._scoped_tenant.pk:
            raise UnscopedQueryError(f"{self.model.__name__}: row of another tenant in a scoped write")

    def create(self, **kwargs):
        obj = self.model(**kwargs)
        self._fill_tenant(obj)
        obj.save(force_insert=True, using=self.db)
        return obj

    def bulk_create(self, objs, *args, **kwargs):
        for obj in objs:
            self._fill_tenant(obj)
        return super().bulk_create(objs, *args, **kwargs)


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    """``Model.objects``: every query starts with ``for_tenant(tenant)``."""

    def get_queryset(self):
        raise UnscopedQueryError(
            f"{self.model.__name__}.objects needs a tenant: use "
            f"{self.model.__name__}.objects.for_tenant(tenant), or .unscoped where "
            "crossing tenants is the point"
        )

    def none(self) -> TenantQuerySet:
        """An empty queryset reveals nothing, so it needs no tenant (schema generation uses it)."""
        return TenantQuerySet(model=self.model, using=self._db).none()

    def for_tenant(self, tenant) -> TenantQuerySet:
        if tenant is None or getattr(tenant, "pk", None) is None:
            raise UnscopedQueryError(f"{self.model.__name__}.objects.for_tenant() needs a saved tenant")
        queryset = TenantQuerySet(model=self.model, using=self._db).filter(tenant=tenant)
        queryset._scoped_tenant = tenant
        return queryset


def tenant_key_covered():
    """The tenant foreign key of a model whose own indexes lead with ``tenant`` (a unique
    ``(tenant, ...)`` or the ``(tenant, id)`` key of row-level isolation): no index of its own,
    which would cost every insert an index entry and help no query. For hot, insert-heavy tables."""
    return models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)


class TenantOwnedModel(models.Model):
    """Base of every row that belongs to a tenant; the tenant is never null."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")

    objects = TenantManager()
    unscoped = models.Manager()

    class Meta:
        abstract = True
        # Django internals (admin, related lookups, deletion) use the plain manager;
        # application code goes through ``objects.for_tenant``.
        default_manager_name = "unscoped"
        base_manager_name = "unscoped"
