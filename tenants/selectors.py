"""Reads for tenants and API keys."""

import hashlib
import hmac
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from hitl.errors import NotFoundError
from hitl.tenancy import cross_tenant, no_tenant
from tenants.models import ApiKey, AuditEvent, Membership, Role, Tenant
from tenants.services import API_KEY_PREFIX, KEY_ROLES_BY_MEMBERSHIP_ROLE, api_key_hash


def api_key_account(raw_key: str) -> str | None:
    """The prefix a raw key names (its account, for counting failures), or None if it names none."""
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    prefix, _, _ = raw_key[len(API_KEY_PREFIX) :].partition("_")
    return prefix[:16] or None


def api_key_authenticate(*, raw_key: str, unconfirmed: bool = False) -> ApiKey | None:
    """The active key for ``raw_key`` with its tenant, or None.

    Authentication is the one read that starts without a tenant: the key names it.

    ``unconfirmed``: on PostgreSQL, a key this process looked up in the last
    ``HITL_API_KEY_CACHE_SECONDS`` is answered from memory, marked ``confirmed = False``:
    the caller must confirm it before anything is written or answered, in its own write
    statement (``api_key_guard``) or by looking it up (``TenantApi.confirm_key``). Every
    other call reads the database, and its answer is ``confirmed``.
    """
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    prefix, _, secret = raw_key[len(API_KEY_PREFIX) :].partition("_")
    if not prefix or not secret:
        return None
    api_key = None
    if unconfirmed and connection.vendor == "postgresql":
        values = _KEY_CACHE.get(prefix)
        if values is not None:
            api_key = _key_of(values)
            api_key.confirmed = False
            if not _KEY_CACHE.current(api_key.tenant):
                # This process has seen its tenant's configuration change since: the key's row
                # is read again, so that nothing builds a cache entry for a configuration
                # already replaced (it would evict the current one, hitl/cache.py).
                api_key = None
    if api_key is None:
        if connection.vendor == "postgresql":
            # The lookup function crosses tenants by its own definition (SET hitl.cross_tenant):
            # no scope goes with the statement, so a request pays no set_config for its key.
            with no_tenant():
                values = _api_key_row(prefix)
        else:
            with cross_tenant("api_key_lookup"):
                values = _api_key_row(prefix)
        if values is None:
            _KEY_CACHE.drop(prefix)
            return None
        api_key = _key_of(values)
        api_key.confirmed = True
        _KEY_CACHE.saw(api_key.tenant)
    matches, works = _secret_matches(api_key, raw_key), _key_works(api_key)
    if api_key.confirmed:  # what the lookup read decides the cache entry
        if not works:
            _KEY_CACHE.drop(prefix)
        elif matches:
            _KEY_CACHE.put(prefix, values)
        # (a wrong secret leaves the entry alone: knowing a key's prefix, which is no secret,
        # must not let anyone make its owner's requests slower)
    return api_key if matches and works else None


def _secret_matches(api_key: ApiKey, raw_key: str) -> bool:
    return hmac.compare_digest(api_key.key_hash, api_key_hash(raw_key))


def _key_works(api_key: ApiKey) -> bool:
    if api_key.revoked_at is not None:
        return False
    # A person's key stops when the person left the tenant, was deactivated, or no longer
    # holds a role that allows this key.
    return api_key.user_id is None or api_key.role in KEY_ROLES_BY_MEMBERSHIP_ROLE.get(api_key.member_role, ())


class _KeyCache:
    """Key rows this process looked up lately, by prefix (the row as the lookup converted it).

    Only ever a hint: a key answered from here is unconfirmed until its request's write
    statement confirms it (``api_key_guard``) or a lookup does. Bounded, and entries
    expire after ``HITL_API_KEY_CACHE_SECONDS`` (0 turns the cache off).
    """

    MAX_ENTRIES = 10_000

    def __init__(self):
        self._entries: dict[str, tuple[float, tuple]] = {}
        self._tokens: dict[int, object] = {}  # tenant id -> the newest configuration token looked up

    def saw(self, tenant: Tenant) -> None:
        """A lookup read ``tenant``'s configuration token: the one current as far as this process knows."""
        if len(self._tokens) >= self.MAX_ENTRIES:
            self._tokens.clear()
        self._tokens[tenant.pk] = tenant.config_token

    def current(self, tenant: Tenant) -> bool:
        return self._tokens.get(tenant.pk) == tenant.config_token

    def get(self, prefix: str) -> tuple | None:
        entry = self._entries.get(prefix)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, prefix: str, values: tuple) -> None:
        seconds = settings.HITL_API_KEY_CACHE_SECONDS
        if seconds <= 0:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[prefix] = (time.monotonic() + seconds, values)

    def drop(self, prefix: str) -> None:
        self._entries.pop(prefix, None)

    def clear(self) -> None:
        self._entries.clear()
        self._tokens.clear()


_KEY_CACHE = _KeyCache()


def api_key_cache_clear() -> None:
    """Forget every key this process looked up (tests; a key that fails its guard is dropped by the caller)."""
    _KEY_CACHE.clear()


def api_key_forget(api_key: ApiKey) -> None:
    """Forget one key (its guard failed: the next request looks it up)."""
    _KEY_CACHE.drop(api_key.prefix)


def api_key_guard(api_key: ApiKey) -> tuple[str, list]:
    """An SQL condition, and its parameters, that holds while ``api_key`` is still what this
    process cached: not revoked, the same hash and role, its person still active with the
    same membership role, and its tenant's configuration token unchanged (so the policy
    and routing the request used are still current).

    A write statement that wants to confirm an unconfirmed key (``api_key_authenticate``)
    writes only where this holds, in the request's tenant scope, in the same snapshot as its
    writes: a key revoked or a policy published before the statement runs writes nothing.
    """
    params = [api_key.pk, api_key.tenant_id, api_key.key_hash, api_key.role, api_key.tenant.config_token]
    if api_key.user_id is None:  # a key of no person (a service's): no membership to check, a smaller plan
        return _guard_sql(False), params
    return _guard_sql(True), [*params, api_key.member_role or ""]


@lru_cache(maxsize=2)
def _guard_sql(with_person: bool) -> str:
    quote = connection.ops.quote_name
    user_model = get_user_model()
    key, tenant, membership, person = (
        quote(model._meta.db_table) for model in (ApiKey, Tenant, Membership, user_model)
    )

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    on_key = f"t.{column(Tenant, 'id')} = k.{column(ApiKey, 'tenant')}"
    key_holds = (
        f"EXISTS (SELECT 1 FROM {key} k JOIN {tenant} t ON {on_key}"  # noqa: S608 (names from model meta)
        f" WHERE k.{column(ApiKey, 'id')} = %s AND k.{column(ApiKey, 'tenant')} = %s"
        f" AND k.{column(ApiKey, 'key_hash')} = %s AND k.{column(ApiKey, 'role')} = %s"
        f" AND k.{column(ApiKey, 'revoked_at')} IS NULL AND t.{column(Tenant, 'config_token')} = %s"
    )
    if not with_person:
        return f"{key_holds} AND k.{column(ApiKey, 'user')} IS NULL)"
    return (
        f"{key_holds} AND k.{column(ApiKey, 'user')} IS NOT NULL AND EXISTS (SELECT 1 FROM {membership} m"  # noqa: S608
        f" JOIN {person} u ON u.{column(user_model, 'id')} = m.{column(Membership, 'user')}"
        f" WHERE m.{column(Membership, 'tenant')} = k.{column(ApiKey, 'tenant')}"
        f" AND m.{column(Membership, 'user')} = k.{column(ApiKey, 'user')}"
        f" AND u.{column(user_model, 'is_active')} AND m.{column(Membership, 'role')} = %s))"
    )


# PostgreSQL: the key lookup as a function that crosses tenants by definition
# (``SET hitl.cross_tenant = 'api_key_lookup'``, restored when it returns), installed after
# every migrate from the same statement as below (``api_key_lookup_install``). PL/pgSQL keeps
# its plan for the session; SECURITY INVOKER: it runs as the application's role, under the
# same policies, with only this one reason to cross.
API_KEY_LOOKUP_FUNCTION = "hitl_api_key_lookup"


def api_key_lookup_install(connection) -> None:
    """Create (or re-create, if the tables changed) the key lookup function (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        return
    lookup = _key_lookup(connection.vendor)
    # Positional output names: a PL/pgSQL output name that equals a column would be ambiguous.
    columns = ", ".join(f"c{index} {kind}" for index, kind in enumerate(lookup.column_types(connection)))
    body = lookup.sql.replace("%s", "key_prefix")
    definition = (
        f"CREATE FUNCTION {API_KEY_LOOKUP_FUNCTION}(key_prefix text) RETURNS TABLE ({columns})"
        " LANGUAGE plpgsql STABLE SECURITY INVOKER SET hitl.cross_tenant = 'api_key_lookup'"
        f" AS $fn$ BEGIN RETURN QUERY {body}; END $fn$"
    )
    fingerprint = hashlib.sha256(definition.encode()).hexdigest()[:32]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p"
            " WHERE p.proname = %s AND p.pronamespace = current_schema()::regnamespace",
            [API_KEY_LOOKUP_FUNCTION],
        )
        if cursor.fetchone() == (fingerprint,):
            return  # installed as is (every test flush lands here)
        cursor.execute(f"DROP FUNCTION IF EXISTS {API_KEY_LOOKUP_FUNCTION}(text)")
        cursor.execute(definition)
        cursor.execute(f"COMMENT ON FUNCTION {API_KEY_LOOKUP_FUNCTION}(text) IS '{fingerprint}'")


@dataclass(frozen=True)
class _KeyLookup:
    sql: str
    fields: tuple  # the model fields of the columns, in order
    key_fields: tuple[str, ...]  # attnames, in column order
    tenant_fields: tuple[str, ...]
    converters: tuple[tuple, ...]  # (column index, its (converter, expression) pairs), for columns that have any

    def column_types(self, connection) -> list[str]:
        return [field.db_type(connection) for field in self.fields]


def _api_key_row(prefix: str) -> tuple | None:
    """The key of ``prefix`` with its tenant (and so the configuration token that keys
    the policy caches) and its person's membership role, in one statement, as the values
    the ORM would load (converters applied); ``_key_of`` makes the instances. The key's
    person is not joined (loaded lazily when a view asks).

    This runs on every API request that is not answered from the key cache, so the
    statement is written once per process rather than built by the ORM each time: building
    and compiling the equivalent queryset (``select_related`` plus a membership subquery)
    cost more CPU than storing the output itself (bench/README.md).
    """
    lookup = _key_lookup(connection.vendor)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SELECT * FROM {API_KEY_LOOKUP_FUNCTION}(%s)", [prefix])  # noqa: S608 (a constant)
        else:
            cursor.execute(lookup.sql, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, converters in lookup.converters:
        for converter, expression in converters:
            values[index] = converter(values[index], expression, connection)
    return tuple(values)


def _key_of(values: tuple) -> ApiKey:
    """Fresh model instances for a key row (never shared between requests)."""
    lookup = _key_lookup(connection.vendor)
    key_end = len(lookup.key_fields)
    api_key = ApiKey.from_db(connection.alias, lookup.key_fields, values[:key_end])
    tenant = Tenant.from_db(connection.alias, lookup.tenant_fields, values[key_end:-1])
    ApiKey._meta.get_field("tenant").set_cached_value(api_key, tenant)
    api_key.member_role = values[-1]
    return api_key


@lru_cache(maxsize=4)
def _key_lookup(vendor: str) -> _KeyLookup:
    """The statement and the converters the ORM would use (they differ by ``vendor``, the cache key)."""
    quote = connection.ops.quote_name
    user_model = get_user_model()
    key_fields = ApiKey._meta.concrete_fields
    tenant_fields = Tenant._meta.concrete_fields
    columns = [("k", field) for field in key_fields] + [("t", field) for field in tenant_fields]
    columns.append(("m", Membership._meta.get_field("role")))
    converters = []
    for index, (alias, field) in enumerate(columns):
        expression = field.get_col(alias)
        found = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
        if found:
            converters.append((index, tuple((converter, expression) for converter in found)))

    def column(alias, name):
        return f"{alias}.{quote(name)}"

    key_tenant = column("k", ApiKey._meta.get_field("tenant").column)
    key_user = column("k", ApiKey._meta.get_field("user").column)
    sql = (
        f"SELECT {', '.join(column(alias, field.column) for alias, field in columns)}"  # noqa: S608 (names from model meta)
        f" FROM {quote(ApiKey._meta.db_table)} k"
        f" INNER JOIN {quote(Tenant._meta.db_table)} t ON t.{quote(Tenant._meta.pk.column)} = {key_tenant}"
        # (tenant, user) is unique: at most one membership row joins.
        f" LEFT OUTER JOIN {quote(Membership._meta.db_table)} m"
        f" ON m.{quote(Membership._meta.get_field('tenant').column)} = {key_tenant}"
        f" AND m.{quote(Membership._meta.get_field('user').column)} = {key_user}"
        # A deactivated person has no role anywhere, so their keys stop at the next request.
        f" AND EXISTS (SELECT 1 FROM {quote(user_model._meta.db_table)} u"
        f" WHERE u.{quote(user_model._meta.pk.column)} = {key_user}"
        f" AND u.{quote(user_model._meta.get_field('is_active').column)})"
        f" WHERE {column('k', ApiKey._meta.get_field('prefix').column)} = %s"
    )
    return _KeyLookup(
        sql=sql,
        fields=tuple(field for _, field in columns),
        key_fields=tuple(field.attname for field in key_fields),
        tenant_fields=tuple(field.attname for field in tenant_fields),
        converters=tuple(converters),
    )


def tenant_get_by_slug(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()


def tenants_administered_by(*, user) -> list[int]:
    """Ids of the tenants a person administers (for the Django admin's scoping)."""
    with cross_tenant("person_memberships"):
        return list(Membership.unscoped.filter(user=user, role=Role.ADMIN).values_list("tenant_id", flat=True))


def memberships_of(*, user) -> list[Membership]:
    """A person's memberships in every tenant, by tenant slug.

    Crosses tenants by design: it lists the tenants a person may switch between.
    """
    with cross_tenant("person_memberships"):
        return list(Membership.unscoped.filter(user=user).select_related("tenant").order_by("tenant__slug"))


def api_keys_of(*, tenant: Tenant, user) -> list[ApiKey]:
    """The keys acting for one person in one tenant, newest first (revoked ones too)."""
    return list(ApiKey.objects.for_tenant(tenant).filter(user=user).order_by("-created_at"))


def members_of(*, tenant: Tenant) -> list[Membership]:
    """A tenant's memberships with their people, by username."""
    return list(Membership.objects.for_tenant(tenant).select_related("user").order_by("user__username"))


def membership_get_for_tenant(*, tenant: Tenant, membership_id) -> Membership:
    """One membership of the tenant, or NotFoundError: missing and foreign look the same."""
    membership = Membership.objects.for_tenant(tenant).select_related("user", "tenant").filter(pk=membership_id).first()
    if membership is None:
        raise NotFoundError("Member not found.")
    return membership


def admins_count(*, tenant: Tenant) -> int:
    return Membership.objects.for_tenant(tenant).filter(role=Role.ADMIN).count()


def audit_events(*, tenant: Tenant):
    """The tenant's audit events (the API pages them newest first, by seq)."""
    return AuditEvent.objects.for_tenant(tenant)
