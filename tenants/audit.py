"""The audit log's one door: every service appends its events here, in its own transaction.

``audit_record`` appends one event to the tenant's hash chain; ``audit_record_batch``
appends one event that commits to many records (a Merkle root over their digests), so
that bulk paths stay bulk. The chain's rules (canonical bytes, hashes, Merkle tree,
checkpoint message) are in :mod:`tenants.auditchain`, which the offline verifier shares.

The next ``seq`` comes from the tenant's ``AuditHead`` row, whose lock the append holds
until the caller's transaction ends: so call these as late as possible in the
transaction. On PostgreSQL the counter update, the hash and the insert are one
statement (one round trip): ``UPDATE audithead ... RETURNING`` feeding ``INSERT``,
the hash computed by PostgreSQL's ``sha256()`` over the same bytes
:func:`tenants.auditchain.chain_hash` hashes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

import orjson
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import Max
from django.utils import timezone

from tenants import auditchain
from tenants.models import AuditCheckpoint, AuditEvent, AuditHead, Tenant

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a person, a key (and so its role, when no person acts), or the system.

    ``person`` is a user (or None), ``key`` an ``ApiKey`` (or None); ``role`` is the role
    they acted in: the key's role, the person's membership role, ``system`` for
    scheduled work, ``operator`` for the platform operator's commands.
    """

    person: object | None = None
    key: object | None = None
    role: str = ""

    @property
    def person_id(self) -> int | None:
        if self.person is not None:
            return self.person.pk
        return getattr(self.key, "user_id", None)

    @property
    def key_id(self) -> int | None:
        return None if self.key is None else self.key.pk

    @classmethod
    def of_key(cls, api_key) -> Actor:
        """A request made with an API key: the key, its role, and its person if it has one."""
        return cls(person=None, key=api_key, role=api_key.role)

    @classmethod
    def of_person(cls, person, role: str = "") -> Actor:
        """A signed-in person (a page), in their role in the tenant."""
        return cls(person=person, role=role or ("superuser" if getattr(person, "is_superuser", False) else "person"))

    @classmethod
    def of_person_id(cls, user_id: int, role: str) -> Actor:
        """A person known by id only (a claim knows its reviewer so)."""
        return cls(person=_PersonRef(user_id), role=role)

    @classmethod
    def of_request(cls, request, role: str = "") -> Actor:
        """The key of an API request, else the signed-in person of a page (in the role the
        page resolved, ``request.audit_role``)."""
        api_key = getattr(request, "auth", None)
        if api_key is not None and hasattr(api_key, "role"):
            return cls.of_key(api_key)
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return cls.of_person(user, role or getattr(request, "audit_role", ""))
        return ANONYMOUS

    @classmethod
    def coerce(cls, value, role: str = "") -> Actor:
        """An ``Actor`` from what services were handed so far: an Actor, a person, the
        platform operator, or None (the system: scheduled work, workers)."""
        if isinstance(value, Actor):
            return value
        if value is None:
            return SYSTEM
        operator = getattr(value, "audit_actor", None)
        if isinstance(operator, Actor):
            return operator
        if hasattr(value, "role") and hasattr(value, "key_hash"):
            return cls.of_key(value)
        return cls.of_person(value, role)


@dataclass(frozen=True, slots=True)
class _PersonRef:
    pk: int


SYSTEM = Actor(role="system")
OPERATOR = Actor(role="operator")
ANONYMOUS = Actor(role="anonymous")

_request: ContextVar = ContextVar("audit_request", default=None)


@contextmanager
def request_bound(request) -> Iterator[None]:
    """While serving ``request`` (tenants.middleware), events name its key or person."""
    token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(token)


def request_actor() -> Actor | None:
    """The key or person of the request being served, if any."""
    request = _request.get()
    if request is None:
        return None
    ambient = Actor.of_request(request)
    return None if ambient is ANONYMOUS else ambient


def actor_resolve(actor) -> Actor:
    """Who an event names: an ``Actor`` as given; otherwise the request being served (its
    API key, with the key's person and role, or the signed-in person), so that a change
    made with a key of no person names the key; otherwise ``actor`` (a person, the
    platform operator) or, for None, the system (scheduled work, workers, commands)."""
    if isinstance(actor, Actor):
        return actor
    request = _request.get()
    if request is not None:
        ambient = Actor.of_request(request)
        if ambient is not ANONYMOUS:
            return ambient
    return Actor.coerce(actor)


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an event landed in the chain."""

    seq: int
    hash: str


def _event_fields(tenant: Tenant, actor, kind: str, object_type: str, object_id, data, at: datetime) -> dict:
    actor = actor_resolve(actor)
    if not kind or "." not in kind:
        raise ValueError(f"audit kind {kind!r}: dotted, e.g. output.received")
    return {
        "tenant": tenant.slug,
        "at": at,
        "kind": kind,
        "actor_person": actor.person_id,
        "actor_key": actor.key_id,
        "actor_role": actor.role or "system",
        "object_type": object_type,
        "object_id": "" if object_id is None else str(object_id),
        "data": None if data is None else _data_of(data),
    }


def text_digest(text: str | None) -> str | None:
    """What an audit event holds of free text a person or a user wrote (a comment, a
    correction, a final output): its SHA-256, never the text. The text lives in its own row,
    which retention may blank; the append-only chain keeps proof of what was written without
    keeping the words. None stays None and "" stays "" (nothing was written)."""
    if not text:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def jsonable(value):
    """Python values services hold as JSON: times in the chain's UTC form, UUIDs, decimals and
    model instances (their pk) as strings or ids, sets as sorted lists."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(jsonable(item) for item in value)
    if isinstance(value, datetime):
        return auditchain.format_time(value)
    if isinstance(value, uuid.UUID | Decimal | date):
        return str(value)
    if hasattr(value, "_meta") and hasattr(value, "pk"):  # a model instance: its id
        return jsonable(value.pk)
    return value


def _data_of(value):
    """``auditchain.json_normalize(jsonable(value))`` in one walk (an event's data is walked on
    every review and claim): services' values as JSON, numbers in their canonical form. The
    exact built-in types first, by identity (the walk's common case: a subclass, such as a
    choices enum, goes the general way)."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is dict:
        return {key if type(key) is str else str(key): _data_of(item) for key, item in value.items()}
    if kind is list:
        return [_data_of(item) for item in value]
    if isinstance(value, bool | str | int):
        return value
    if isinstance(value, dict):
        return {str(key): _data_of(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_data_of(item) for item in value]
    if isinstance(value, float):
        return auditchain.json_normalize(value)
    return auditchain.json_normalize(jsonable(value))


def audit_record(*, tenant: Tenant, actor, kind: str, object_type: str, object_id, data=None) -> Appended | None:
    """Append one event to the tenant's chain, in the caller's transaction (which must be open).

    ``actor``: an ``Actor``, or what the service was handed (a person, the platform
    operator, None), resolved by :func:`actor_resolve`. ``data`` is a JSON object:
    before/after values where something changed (:func:`changes`). The
    tenant's counter row stays locked until the caller commits: call this last.

    On PostgreSQL, when the caller's ``atomic`` block is the outermost one, the append is
    sent with its ``COMMIT`` (:func:`_append_at_commit`) and None is returned: the event's
    seq and hash exist once the transaction commits (a failed append fails the commit, and
    nothing of the transaction is kept). Otherwise the event is appended at once and its
    ``Appended`` returned.
    """
    db = connections[DEFAULT_DB_ALIAS]  # (once: each use of the proxy is a thread-local lookup)
    if not db.in_atomic_block:
        raise RuntimeError("audit_record runs inside the transaction of the change it records")
    now = timezone.now()
    fields = _event_fields(tenant, actor, kind, object_type, object_id, data, now)
    body = _body(fields)
    if db.vendor == "postgresql" and _append_at_commit(db, tenant, fields, body):
        return None  # appended with the COMMIT: its seq and hash are known once committed
    appended = _append(tenant, fields, body)
    if appended is None:  # the tenant's first event: its counter row does not exist yet
        _head_ensure(tenant)
        appended = _append(tenant, fields, body)
    return appended


def changes(before: dict, after: dict) -> dict:
    """``{"before": {...}, "after": {...}}`` with only the fields whose value changed."""
    changed = [key for key in after if before.get(key) != after.get(key)]
    return {"before": {key: before.get(key) for key in changed}, "after": {key: after[key] for key in changed}}


def audit_record_batch(
    *, tenant: Tenant, actor, kind: str, object_type: str, digests: Sequence[tuple[object, str]], data=None
) -> Appended | None:
    """One event for a batch: ``digests`` are ``(object id, hex digest)`` pairs in leaf order.

    The event's ``data`` holds ``root`` (the Merkle root over the digests, RFC 6962),
    ``count`` and ``ids`` (the object ids, in leaf order, so that an export finds each
    record's leaf and builds its inclusion proof), beside the caller's ``data``; its
    ``object_id`` is the root.
    """
    root, payload = _batch_event(digests, data)
    return audit_record(tenant=tenant, actor=actor, kind=kind, object_type=object_type, object_id=root, data=payload)


def _batch_event(digests: Sequence[tuple[object, str]], data) -> tuple[str, dict]:
    """A batch event's object id (the Merkle root over ``digests``) and data."""
    ids = [str(object_id) for object_id, _ in digests]
    root = auditchain.merkle_root(item for _, item in digests)
    payload = dict(data or {})
    payload.update({"root": root, "count": len(ids), "ids": ids})
    return root, payload


def audit_record_batch_cte(
    *, tenant: Tenant, actor, kind: str, object_type: str, digests: Sequence[tuple[object, str]], data=None, source: str
) -> tuple[str, list]:
    """PostgreSQL: the event :func:`audit_record_batch` appends, as CTEs (``audit_head``,
    ``audit_event``) of a larger statement that is its own transaction (ingest's one output):
    appended when ``source``, a CTE of that statement yielding at most one row, yields one
    (the write it records happened), and nothing otherwise. A missing counter row fails the
    statement (a null seq) rather than leave the write unrecorded: the caller makes sure of
    it first (:func:`audit_head_ensure`), and calls :func:`audit_chain_row_locking` right before
    running the statement. Returns the CTE text and its parameters, in order.
    """
    root, payload = _batch_event(digests, data)
    fields = _event_fields(tenant, actor, kind, object_type, root, payload, timezone.now())
    sql = f"""
audit_head AS (
    {_PG_HEAD_MOVE} AND EXISTS (SELECT 1 FROM {source})
    RETURNING last_seq, prev_hash, last_hash
),
audit_event AS (
    {_PG_EVENT_INSERT}
    SELECT {_event_values("audit_head")} FROM {source} LEFT JOIN audit_head ON true
    RETURNING seq
)"""  # noqa: S608 (constant text and the caller's CTE name)
    return sql, [_body(fields), tenant.pk, tenant.pk, *_row_values(fields)]


_TABLES = {
    "event": AuditEvent._meta.db_table,
    "head": AuditHead._meta.db_table,
}
# The counter row moved on by one and the event inserted with its seq and hashes (the body
# as a parameter), then the event's columns, in one statement.
_PG_HEAD_MOVE = f"""UPDATE {_TABLES["head"]}
       SET last_seq = last_seq + 1,
           prev_hash = last_hash,
           last_hash = encode(sha256(decode(last_hash, 'hex') || int8send(last_seq + 1) || %s::bytea), 'hex')
     WHERE tenant_id = %s"""  # noqa: S608 (table names from model meta)
_PG_EVENT_INSERT = f"""INSERT INTO {_TABLES["event"]}
    (tenant_id, seq, at, kind, actor_person_id, actor_key_id, actor_role, object_type, object_id, data,
     prev_hash, hash)"""
_PG_APPEND_HEAD = f"""
WITH head AS (
    {_PG_HEAD_MOVE}
    RETURNING last_seq, prev_hash, last_hash
)
{_PG_EVENT_INSERT}
"""


def _event_values(head: str) -> str:
    """The inserted event's values: the tenant, the seq and hashes from the moved counter row
    ``head`` (a CTE), the event's columns between (parameters, in ``_row_values`` order)."""
    return f"%s, {head}.last_seq, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, {head}.prev_hash, {head}.last_hash"


_PG_APPEND = f"""{_PG_APPEND_HEAD}
SELECT {_event_values("head")} FROM head RETURNING seq, hash
"""  # noqa: S608 (constant text)


def _body(fields: dict) -> bytes:
    """The event's canonical bytes (``auditchain.event_body``), its data already normalized by
    ``_event_fields`` (not walked again: an ingest batch's event lists a hundred ids)."""
    return auditchain.body_bytes(*(fields[name] for name in auditchain.EVENT_FIELDS))


# The append sent with the COMMIT: as _PG_APPEND, but a missing counter row is an error
# (a null seq), not zero rows, since nobody reads the result before the transaction commits.
_PG_APPEND_AT_COMMIT = f"""{_PG_APPEND_HEAD}
SELECT {_event_values("head")} FROM (SELECT 1) AS one LEFT JOIN head ON true
"""  # noqa: S608 (constant text)
_PG_HEAD_ENSURE = (
    f"INSERT INTO {_TABLES['head']} (tenant_id, last_seq, last_hash, prev_hash) "  # noqa: S608
    "VALUES (%s, 0, %s, %s) ON CONFLICT (tenant_id) DO NOTHING"
)


# Appenders at commit queue for the tenant's chain on a transaction-scoped advisory lock, taken
# in a statement of its own just before the append: the append's snapshot is then taken once the
# previous appender has committed, so it finds the counter row's newest version unlocked. Queued
# on the row itself instead, every waiter pinned its page, so that no version could be pruned
# while appenders waited (the row grew hundreds of dead versions that every update walked), and
# each woke to re-check the row it had waited for (bench/README.md). Not taken by a transaction
# that already locked the row (an append at once, in a savepoint; ``_CHAIN_ROW_LOCKED``): it
# would wait for the lock while holding the row its holder waits for.
_PG_CHAIN_QUEUE = "SELECT pg_advisory_xact_lock(%s::bigint)"
_CHAIN_ROW_LOCKED = "audit chain row locked"
# Before its turn, an appender at commit runs its deferred constraint checks (Django's foreign
# keys and their tenant twins are DEFERRABLE INITIALLY DEFERRED, so they would run at the COMMIT,
# after the append). A check takes a KEY SHARE lock on the row referenced: checked under the turn,
# it waited, holding the turn, for a transaction that had renamed that row (a judge, a rubric: a
# key update, which conflicts with KEY SHARE) and was itself waiting for the turn to append at its
# commit, a deadlock. Checked first, it waits without holding anything that transaction needs.
_PG_CHECK_DEFERRED = "SET CONSTRAINTS ALL IMMEDIATE"


def chain_turn_key(tenant_id: int) -> int:
    """The advisory lock key of a tenant's chain turn: 64 bits of a hash, whatever the id's size
    (two tenants that shared a key would only take turns with each other)."""
    digest = hashlib.sha256(f"hitl audit chain {tenant_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def audit_chain_row_locking() -> None:
    """Call right before running a statement that moves a chain counter row (one built by
    :func:`audit_append_cte` or :func:`audit_record_batch_cte`): inside a transaction, the row
    is then held until it ends, and its commit must not queue for the chain's turn."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql" and not db.get_autocommit():
        db.hitl_transaction_marks.add(_CHAIN_ROW_LOCKED)


def _append_at_commit(db, tenant: Tenant, fields: dict, body: bytes) -> bool:
    """PostgreSQL, the outermost transaction: hand the append to the commit, which sends it in
    one pipeline with the ``COMMIT`` (``hitl.postgres``). The tenant's counter row is then
    locked for the server's time only (the append, then the WAL flush), where an append
    executed here held it across two round trips and this process's wait for a CPU, and
    every other writer of the tenant's chain queued behind that. Returns False where the
    commit is not this transaction's own (a savepoint): the caller appends at once."""
    pending = db.hitl_at_commit
    ensure = tenant.pk not in _heads_known and not any(  # (once a transaction)
        sql is _PG_HEAD_ENSURE and params[0] == tenant.pk for _, sql, params, _ in pending
    )
    if not any(sql is _PG_CHECK_DEFERRED for _, sql, _, _ in pending) and not db.hitl_execute_at_commit(
        _PG_CHECK_DEFERRED, []
    ):
        return False  # (a savepoint's commit: every check below asks the same question)
    if ensure and not db.hitl_execute_at_commit(_PG_HEAD_ENSURE, [tenant.pk, auditchain.GENESIS, auditchain.GENESIS]):
        return False
    if not db.hitl_execute_at_commit(_PG_CHAIN_QUEUE, [chain_turn_key(tenant.pk)], unless_marked=_CHAIN_ROW_LOCKED):
        return False  # (only reached without ``ensure``: every check asks the same question)
    db.hitl_execute_at_commit(_PG_APPEND_AT_COMMIT, [body, tenant.pk, tenant.pk, *_row_values(fields)])
    db.hitl_commit_then_flush()  # the counter row is locked until the commit: not through the flush
    if ensure:
        transaction.on_commit(lambda: _heads_known.add(tenant.pk))
    return True


def _row_values(fields: dict) -> list:
    # The data as stored: its canonical JSON (normalized once, by ``_event_fields``).
    data = None if fields["data"] is None else auditchain.canonical_json_of_normalized(fields["data"]).decode()
    return [
        fields["at"],
        fields["kind"],
        fields["actor_person"],
        fields["actor_key"],
        fields["actor_role"],
        fields["object_type"],
        fields["object_id"],
        data,
    ]


def _append(tenant: Tenant, fields: dict, body: bytes) -> Appended | None:
    row_values = _row_values(fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            audit_chain_row_locking()
            cursor.execute(_PG_APPEND, [body, tenant.pk, tenant.pk, *row_values])
            row = cursor.fetchone()
            return None if row is None else Appended(row[0], row[1])
        # SQLite (one writer at a time): the UPDATE takes the write lock first, then Python hashes.
        cursor.execute(
            f"UPDATE {_TABLES['head']} SET last_seq = last_seq + 1 WHERE tenant_id = %s "  # noqa: S608
            "RETURNING last_seq, last_hash",
            [tenant.pk],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        seq, prev = row
        new_hash = auditchain.chain_hash(prev, seq, body)
        cursor.execute(
            f"UPDATE {_TABLES['head']} SET prev_hash = last_hash, last_hash = %s WHERE tenant_id = %s",  # noqa: S608
            [new_hash, tenant.pk],
        )
        cursor.execute(
            f"INSERT INTO {_TABLES['event']} (tenant_id, seq, at, kind, actor_person_id, actor_key_id, "  # noqa: S608
            "actor_role, object_type, object_id, data, prev_hash, hash) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [tenant.pk, seq, *_sqlite_values(row_values), prev, new_hash],
        )
        return Appended(seq, new_hash)


# Tenants whose counter row is known to be committed (a row that is never deleted): added
# only once the transaction that made sure of it has committed, never on a hope.
_heads_known: set[int] = set()


def audit_head_ensure(tenant: Tenant) -> None:
    """The tenant's counter row exists (once per process and tenant)."""
    if tenant.pk not in _heads_known:
        _head_ensure(tenant)
        transaction.on_commit(lambda: _heads_known.add(tenant.pk))  # at once in autocommit


def audit_head_doubt(tenant: Tenant) -> None:
    """A statement found no counter row where this process knew one: make sure of it again
    next time (the statement itself failed whole, see :func:`audit_record_batch_cte`)."""
    _heads_known.discard(tenant.pk)


def audit_append_cte(
    *, tenant: Tenant, actor, kind: str, object_type: str, object_id_sql: str, data: dict, data_sql: dict, source: str
) -> tuple[str, list]:
    """PostgreSQL: CTEs that append one event inside another statement, for a hot path that
    must stay one autocommitted statement (the claim): the chain's lock is then held from
    this statement to its own commit, with no round trip to the client in between.

    ``source`` names a CTE of the statement yielding at most one row (no row: nothing is
    appended); ``object_id_sql`` and the values of ``data_sql`` (key -> (SQL expression over
    ``source``, "text" or "int")) are read from it, ``data`` holds the known values. The
    hash is taken over the canonical body built in SQL from the same template
    :func:`tenants.auditchain.body_bytes` writes, the unknown values spliced in (UUIDs and
    integers, which JSON writes as they are). Returns the CTE text (``audit_head`` and
    ``audit_event``, the latter returning ``seq``) and its parameters, in order. The caller
    makes sure the tenant's counter row exists (:func:`audit_head_ensure`), and calls
    :func:`audit_chain_row_locking` right before running the statement.
    """
    resolved = actor_resolve(actor)
    at = timezone.now()
    sql, tokens = _append_cte_sql(source, object_id_sql, tuple(data_sql.items()))
    template_data = _data_of({**data, **{key: f"@@{key}@@" for key in data_sql}})
    who = (resolved.person_id, resolved.key_id, resolved.role or "system")
    body = auditchain.body_bytes(tenant.slug, at, kind, *who, object_type, "@@object_id@@", template_data).decode()
    # The body's text around each unknown value, in the order the body holds them (as
    # _append_cte_sql spliced them); a text value keeps its JSON quotes as literals of their own.
    literal, rest = [], body
    for token, quoted in tokens:
        before, found, rest = rest.partition(token)
        if not found:
            raise ValueError(f"audit_append_cte: {token} is not in the event's body")
        literal += [before + '"', '"'] if quoted else [before]
    literal.append(rest)
    static = {key: value for key, value in template_data.items() if key not in data_sql}
    return sql, [
        *literal,
        tenant.pk,
        tenant.pk,
        at,
        kind,
        *who,
        object_type,
        auditchain.canonical_json_of_normalized(static).decode(),
    ]


@lru_cache(maxsize=32)
def _append_cte_sql(source: str, object_id_sql: str, data_sql: tuple) -> tuple[str, tuple]:
    """:func:`audit_append_cte`'s SQL, and the placeholders its body holds, in order: ``(token,
    quoted)``. The canonical body sorts keys: the data's unknown values come in the order of
    their keys, then the object id (``"data"`` sorts before ``"object_id"``)."""
    expressions = [*sorted(data_sql), ("object_id", (object_id_sql, "text"))]
    sql_parts, tokens = [], []  # each value: the text before it, the value, its closing quote if text
    for name, (expression, value_type) in expressions:
        quoted = value_type == "text"
        tokens.append((f'"@@{name}@@"', quoted))
        sql_parts += ["%s", f"({expression})::text", "%s"] if quoted else ["%s", f"({expression})::text"]
    concatenation = " || ".join([*sql_parts, "%s"])  # and the text after the last
    dynamic = ", ".join(f"'{key}', ({expression})" for key, (expression, _) in data_sql)
    sql = f"""
audit_head AS (
    UPDATE {_TABLES["head"]}
       SET last_seq = last_seq + 1,
           prev_hash = last_hash,
           last_hash = encode(sha256(decode(last_hash, 'hex') || int8send(last_seq + 1) ||
               (SELECT convert_to({concatenation}, 'UTF8') FROM {source})), 'hex')
     WHERE tenant_id = %s AND EXISTS (SELECT 1 FROM {source})
    RETURNING last_seq, prev_hash, last_hash
),
audit_event AS (
    {_PG_EVENT_INSERT}
    SELECT %s, h.last_seq, %s, %s, %s, %s, %s, %s, ({object_id_sql})::text,
           %s::jsonb || jsonb_build_object({dynamic}), h.prev_hash, h.last_hash
      FROM audit_head h, {source}
    RETURNING seq
)"""  # noqa: S608 (names from model meta, expressions from the caller's code)
    return sql, tuple(tokens)


def _sqlite_values(values: list) -> list:
    at = values[0]
    return [connection.ops.adapt_datetimefield_value(at), *values[1:]]


def _head_ensure(tenant: Tenant) -> None:
    """The tenant's counter row (seq 0, the genesis hash), unless it exists."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLES['head']} (tenant_id, last_seq, last_hash, prev_hash) "  # noqa: S608
            "VALUES (%s, 0, %s, %s) ON CONFLICT (tenant_id) DO NOTHING",
            [tenant.pk, auditchain.GENESIS, auditchain.GENESIS],
        )


# --- checkpoints -------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _signing_key(seed: str):
    if getattr(settings, "HITL_AUDIT_SIGNING_KEY_DERIVED", False):
        logger.warning(
            "HITL_AUDIT_SIGNING_KEY is not set: audit checkpoints are signed with a key derived from "
            "SECRET_KEY (development only; such checkpoints prove nothing to an outsider)"
        )
    return auditchain.private_key_from_seed(seed)


def signing_key():
    return _signing_key(settings.HITL_AUDIT_SIGNING_KEY)


def public_key() -> tuple[str, str]:
    """(key id, base64 raw Ed25519 public key) of the configured signing key."""
    raw = auditchain.public_key_raw(signing_key())
    return auditchain.key_id(raw), base64.b64encode(raw).decode()


def audit_checkpoint(tenant: Tenant) -> AuditCheckpoint:
    """Sign the tenant's current chain head (its committed counter row) and store the checkpoint.

    Idempotent: a checkpoint of the same head with the same key is returned, not repeated.
    """
    head = AuditHead.objects.for_tenant(tenant).values_list("last_seq", "last_hash").first()
    seq, head_hash = head if head is not None else (0, auditchain.GENESIS)
    kid, _ = public_key()
    existing = AuditCheckpoint.objects.for_tenant(tenant).filter(seq=seq, key_id=kid).first()
    if existing is not None:
        return existing
    signed_at = timezone.now()
    signature = auditchain.checkpoint_sign(signing_key(), tenant.slug, seq, head_hash, signed_at)
    try:
        with transaction.atomic():
            return AuditCheckpoint.objects.for_tenant(tenant).create(
                seq=seq, head_hash=head_hash, signed_at=signed_at, signature=signature, key_id=kid
            )
    except IntegrityError:  # made meanwhile by another process
        return AuditCheckpoint.objects.for_tenant(tenant).get(seq=seq, key_id=kid)


def audit_checkpoints_due() -> int:
    """A checkpoint for every tenant whose chain grew since its last one (the beat's task)."""
    made = 0
    latest = dict(
        AuditCheckpoint.unscoped.values("tenant_id").annotate(last=Max("seq")).values_list("tenant_id", "last")
    )
    for tenant_id, last_seq in AuditHead.unscoped.values_list("tenant_id", "last_seq"):
        if last_seq > latest.get(tenant_id, -1):
            audit_checkpoint(Tenant.objects.get(pk=tenant_id))
            made += 1
    return made


# --- verification ------------------------------------------------------------------------

VERIFY_FIELDS = (
    "seq",
    "at",
    "kind",
    "actor_person_id",
    "actor_key_id",
    "actor_role",
    "object_type",
    "object_id",
    "data",
    "prev_hash",
    "hash",
)


def audit_events_stream(tenant: Tenant, *, chunk_size: int = 5000):
    """The tenant's events as mappings, in seq order, streamed (a server-side cursor on PostgreSQL)."""
    rows = AuditEvent.objects.for_tenant(tenant).order_by("seq").values_list(*VERIFY_FIELDS).iterator(chunk_size)
    slug = tenant.slug
    for seq, at, kind, person, key, role, object_type, object_id, data, prev_hash, hash_ in rows:
        yield {
            "tenant": slug,
            "seq": seq,
            "at": at,
            "kind": kind,
            "actor_person": person,
            "actor_key": key,
            "actor_role": role,
            "object_type": object_type,
            "object_id": object_id,
            "data": data,
            "prev_hash": prev_hash,
            "hash": hash_,
        }


def audit_verify(tenant: Tenant, *, public_keys: dict[str, str] | None = None) -> auditchain.ChainReport:
    """Check the tenant's whole chain (tenants.auditchain.verify_chain) and its counter row.

    Streams the rows through a server-side cursor on PostgreSQL (constant memory) and
    feeds them to the verifier as tuples. ``public_keys`` (key id -> base64 raw key)
    defaults to the configured signing key's.
    """
    if public_keys is None:
        kid, public = public_key()
        public_keys = {kid: public}
    checkpoints = [
        {"seq": seq, "head_hash": head_hash, "signed_at": signed_at, "signature": signature, "key_id": key_id}
        for seq, head_hash, signed_at, signature, key_id in AuditCheckpoint.objects.for_tenant(tenant)
        .order_by("seq")
        .values_list("seq", "head_hash", "signed_at", "signature", "key_id")
    ]
    builder = auditchain.ReportBuilder(tenant=tenant.slug, checkpoints=checkpoints, public_keys=public_keys)
    for row in _event_rows(tenant):
        if not builder.add_row(*row):
            break
    head = AuditHead.objects.for_tenant(tenant).values_list("last_seq", "last_hash").first()
    return builder.finish(head=head if head is not None else (0, auditchain.GENESIS))


def _loads(text: str):
    """JSON text to Python values: orjson, or the standard library for what orjson refuses
    (integers beyond 64 bits); both give the same values, which the canonical form re-encodes."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _event_rows(tenant: Tenant, chunk_size: int = 5000):
    """The tenant's events in seq order as tuples of ``auditchain.VERIFY_COLUMNS``, streamed.

    Plain SQL rather than the ORM: a million rows through model field converters cost
    more than the verification itself. ``data`` comes as text and is parsed here.
    """
    loads = _loads
    # The time as the chain writes it (auditchain.format_time), by PostgreSQL: no datetime per row.
    at = """to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    columns = f"seq, {at}, kind, actor_person_id, actor_key_id, actor_role, object_type, object_id, data::text"
    sql = f"SELECT {columns}, prev_hash, hash FROM {_TABLES['event']} WHERE tenant_id = %s ORDER BY seq"  # noqa: S608
    if connection.vendor != "postgresql":
        for row in audit_events_stream(tenant, chunk_size=chunk_size):
            yield tuple(row[column] for column in auditchain.VERIFY_COLUMNS)
        return
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, [tenant.pk])
        while rows := cursor.fetchmany(chunk_size):
            for seq, at, kind, person, key, role, object_type, object_id, data, prev, hash_ in rows:
                yield (
                    seq,
                    at,
                    kind,
                    person,
                    key,
                    role,
                    object_type,
                    object_id,
                    None if data is None else loads(data),
                    prev,
                    hash_,
                )
