"""Per-process configuration caches are bounded in bytes: one tenant's large documents
cannot fill a web process, however often they are published and used."""

import gc
import tracemalloc

import pytest
from django.test import override_settings

from hitl.cache import ENTRY_OVERHEAD_BYTES, ByteBoundedCache
from policies.selectors import _compiled, compiled_policy
from policies.services import policy_publish
from tests.factories import TenantFactory
from tests.policies.test_config_limits import policy_of_size


def built(value, weight):
    return lambda: (value, weight)


def test_entries_go_least_recently_used_first_once_the_budget_is_spent():
    cache = ByteBoundedCache("test", max_bytes=3 * (1000 + ENTRY_OVERHEAD_BYTES))
    for owner in ("a", "b", "c"):
        cache.get_or_build((owner, 1), built(owner, 1000))
    assert cache.get_or_build(("a", 1), built("rebuilt", 1000)) == "a"  # a is now the most recent

    cache.get_or_build(("d", 1), built("d", 1000))

    assert cache.get_or_build(("b", 1), built("b again", 1000)) == "b again"  # b was dropped
    assert len(cache) == 3 and cache.bytes == 3 * (1000 + ENTRY_OVERHEAD_BYTES)


def test_an_entry_heavier_than_the_budget_is_used_but_not_kept():
    cache = ByteBoundedCache("test", max_bytes=10_000)
    cache.get_or_build(("a", 1), built("small", 100))

    assert cache.get_or_build(("b", 1), built("huge", 20_000)) == "huge"
    assert cache.get_or_build(("b", 1), built("huge, built again", 20_000)) == "huge, built again"
    assert len(cache) == 1  # and it pushed nothing out


def test_a_new_generation_drops_the_owners_older_entries_only():
    cache = ByteBoundedCache("test", max_bytes=1_000_000)
    cache.get_or_build(("tenant-1", "token-1", "x"), built(1, 10))
    cache.get_or_build(("tenant-1", "token-1", "y"), built(2, 10))
    cache.get_or_build(("tenant-2", "token-1", "x"), built(3, 10))

    cache.get_or_build(("tenant-1", "token-2", "x"), built(4, 10))

    assert len(cache) == 2 and cache.bytes == 2 * (10 + ENTRY_OVERHEAD_BYTES)
    assert cache.get_or_build(("tenant-2", "token-1", "x"), built(None, 10)) == 3


def test_the_entry_count_is_bounded_too():
    cache = ByteBoundedCache("test", max_bytes=10**9, max_entries=5)
    for owner in range(20):
        cache.get_or_build((owner, 1), built(owner, 1))
    assert len(cache) == 5 and cache.bytes == 5 * (1 + ENTRY_OVERHEAD_BYTES)


def test_a_failed_build_caches_nothing():
    cache = ByteBoundedCache("test", max_bytes=10_000)

    def failing():
        raise LookupError("no policy")

    with pytest.raises(LookupError):
        cache.get_or_build(("a", 1), failing)
    assert len(cache) == 0 and cache.bytes == 0


@pytest.mark.django_db
def test_publishing_and_using_many_large_policies_keeps_the_cache_under_its_budget(django_assert_num_queries):
    budget = 1024 * 1024
    document = policy_of_size(200_000)  # sets of short strings: the heaviest compiled form per byte
    _compiled.cache.clear()
    with override_settings(HITL_CACHE_MAX_BYTES=budget):
        tenants = [TenantFactory() for _ in range(8)]
        for tenant in tenants:
            for version in range(2):  # each publishes twice and uses both versions
                document["rules"][0]["name"] = f"v{version}"
                policy_publish(tenant=tenant, document=document)
                tenant.refresh_from_db()
                assert compiled_policy(tenant=tenant).rules[0].number == 1
            assert _compiled.cache.bytes <= budget

        # Four entries of 200 KB fit in 1 MB: the newest tenants' current policies, used without a query.
        assert len(_compiled.cache) == 4
        for tenant in tenants[-4:]:
            with django_assert_num_queries(0):
                compiled_policy(tenant=tenant)

        # What the entries hold in memory: their compiled forms, within a small multiple of the
        # budget (docs/policies.md#limits); traced while every tenant's policy is used once more.
        _compiled.cache.clear()
        tracemalloc.start()
        try:
            for tenant in tenants:
                compiled_policy(tenant=tenant)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0]
            _compiled.cache.clear()
            gc.collect()
            held -= tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    assert 0 < held <= 8 * budget, held
