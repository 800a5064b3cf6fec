"""Per-process caches of tenants' configuration, bounded in bytes, not only in entries.

An entry is weighed by the serialized size of what it was built from (a policy document,
the rows of a routing table): ``functools.lru_cache`` counts entries, and one tenant's
2.5 MB policy then weighs as much as another's 2 KB one. Each cache holds at most
``settings.HITL_CACHE_MAX_BYTES`` of such weight, dropping the least recently used
entries first. The compiled forms in memory take about 1 to 7 times the weight of their
source (measured on policies: sets of short strings are the heaviest), so the budget
bounds memory too.

Entries are keyed by the tenant's configuration token, which every configuration write
renews: a new token makes the tenant's older entries unreachable, so storing one drops
them at once instead of leaving them to age out.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import wraps
from typing import Any

import orjson
from django.conf import settings

# What an entry costs besides its weight: the key, the bookkeeping, the object headers.
ENTRY_OVERHEAD_BYTES = 256


def weight_of(*sources) -> int:
    """The serialized size of the documents or rows an entry is built from."""
    return sum(len(orjson.dumps(source, default=str, option=orjson.OPT_NON_STR_KEYS)) for source in sources)


class ByteBoundedCache:
    """A least-recently-used cache whose entries' weights add up to at most a byte budget.

    Keys are tuples ``(owner, generation, ...)``: a tenant and its configuration token, or
    a judge and its version. Storing an entry drops the owner's entries of other
    generations, which nothing will ask for again. Thread-safe; the value is built outside
    the lock, so two threads missing the same key at once may both build it.
    """

    def __init__(self, name: str, *, max_entries: int = 4096, max_bytes: int | None = None):
        self.name = name
        self.max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._keys_of: dict[Hashable, set[tuple]] = {}  # owner -> its keys (all of one generation)
        self._lock = threading.Lock()
        self.bytes = 0

    @property
    def max_bytes(self) -> int:
        return self._max_bytes if self._max_bytes is not None else settings.HITL_CACHE_MAX_BYTES

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_build(self, key: tuple, build: Callable[[], tuple[Any, int]]):
        """The cached value of ``key``, or ``build()``'s ``(value, weight)`` stored and returned."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry[0]
        value, weight = build()
        self.put(key, value, weight)
        return value

    def put(self, key: tuple, value, weight: int) -> None:
        weight += ENTRY_OVERHEAD_BYTES
        limit = self.max_bytes
        if weight > limit:
            return  # heavier than the whole budget: used once, never kept
        owner, generation = key[0], key[1]
        with self._lock:
            for stale in [other for other in self._keys_of.get(owner, ()) if other[1] != generation]:
                self._remove(stale)
            self._remove(key)
            self._entries[key] = (value, weight)
            self._keys_of.setdefault(owner, set()).add(key)
            self.bytes += weight
            while self.bytes > limit or len(self._entries) > self.max_entries:
                self._remove(next(iter(self._entries)))  # the least recently used

    def _remove(self, key: tuple) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self.bytes -= entry[1]
        keys = self._keys_of[key[0]]
        keys.discard(key)
        if not keys:
            del self._keys_of[key[0]]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._keys_of.clear()
            self.bytes = 0


def config_cache(name: str, *, max_entries: int = 4096):
    """Decorate ``build(tenant_id, config_token, *args) -> (value, weight)``; calls return the
    value, cached in a :class:`ByteBoundedCache` (the wrapper's ``cache``)."""

    def decorate(build):
        cache = ByteBoundedCache(name, max_entries=max_entries)

        @wraps(build)
        def cached(tenant_id, config_token, *args):
            key = (tenant_id, config_token, *args)
            return cache.get_or_build(key, lambda: build(tenant_id, config_token, *args))

        cached.cache = cache
        return cached

    return decorate
