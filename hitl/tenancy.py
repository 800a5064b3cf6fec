"""Whose rows the running code may touch, told to PostgreSQL's row-level security.

Application code scopes every query itself (``Model.objects.for_tenant(t)``); on
PostgreSQL the database enforces the same boundary a second time (``hitl.isolation``
installs the policies). The running code declares its scope with one of three context
managers (each also a decorator):

- ``tenant_scope(tenant)``: the rows of one tenant. The API's base (``hitl.api.TenantApi``),
  the pages' base (``tenants.pages.TenantPage``) and the Celery tasks that act for one
  tenant enter it;
- ``cross_tenant(reason)``: every tenant's rows, for one of the few reasons listed in
  :data:`CROSS_TENANT_REASONS` (the database's policy accepts exactly these names);
- ``no_tenant()``: nothing; what every request starts with (:class:`TenancyMiddleware`),
  and what code that declared nothing gets: 0 rows, and every write refused.

The scope lives in a context variable (per thread and per asyncio task). The database
backend (``hitl.postgres``) calls :func:`apply_scope` around every statement: when the
transaction does not hold the scope of the running code yet, a
``set_config('hitl.tenant', ..., true)`` (transaction-local, so safe behind a
transaction pooler) goes in the same round trip as the statement (a psycopg pipeline).
On SQLite nothing of this runs: the scopes are context variables that nobody reads.
"""

from __future__ import annotations

import contextvars
import threading
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# The one list of reasons to cross tenants. The policy ``hitl_cross_tenant`` of every
# tenant-owned table accepts these names and no other (hitl/isolation.py), so a new
# reason is a line here and a ``migrate``, and a review of why it is needed.
CROSS_TENANT_REASONS: dict[str, str] = {
    "api_key_lookup": "authenticating an API key: the key's row names the tenant (tenants/selectors.py)",
    "person_memberships": "a signed-in person's memberships in every tenant (sign-in, the pages' tenant picker)",
    "admin": "the Django admin: the platform operator sees every tenant; a tenant admin's rows are "
    "restricted to the tenants they administer by tenants/admin_scoping.py",
    "beat_sweep": "the periodic sweeps over every tenant's due work (expired leases, webhooks due, late judges)",
    "task_routing": "a Celery task reading which tenant the row it was sent belongs to, before acting in it",
    "management_command": "the operator's management commands (create_tenant, create_api_key, rotate_secrets, demo)",
    "owner_maintenance": "migrations and the test database's flush, run as the owner (hitl.tenancy.as_owner)",
    "test_harness": "the test suite's own set-up and assertions (never a request or a task under test)",
}

# A scope as the database is told it: (hitl.tenant, hitl.cross_tenant), '' for unset.
NOTHING = ("", "")
UNKNOWN = ("?", "?")  # what the transaction holds is not known (a savepoint rolled back): send it again

_scope: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("hitl_tenancy_scope")
_default = NOTHING  # the scope of code that entered none (the test suite sets "test_harness")

SET_SCOPE_SQL = "SELECT set_config('hitl.tenant', %s, true), set_config('hitl.cross_tenant', %s, true)"
# Settings an autocommitted statement asks for, sent with the scope (see statement_settings).
_settings: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("hitl_statement_settings", default=())


def current() -> tuple[str, str]:
    """The scope of the running code, as the database is told it."""
    return _scope.get(_default)


def set_default(scope: tuple[str, str]) -> None:
    """The scope of code that entered none (the test suite's harness; never used by the application)."""
    global _default
    _default = scope


@contextmanager
def _entered(scope: tuple[str, str]):
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)


def tenant_scope(tenant):
    """Code inside sees and writes the rows of ``tenant`` (a Tenant or its id) only."""
    tenant_id = getattr(tenant, "pk", tenant)
    if tenant_id is None or isinstance(tenant_id, bool) or not isinstance(tenant_id, int):
        raise ValueError(f"tenant_scope needs a saved tenant or its id, not {tenant!r}")
    return _entered((str(tenant_id), ""))


def cross_tenant(reason: str):
    """Code inside sees every tenant's rows, for ``reason`` (a key of :data:`CROSS_TENANT_REASONS`)."""
    if reason not in CROSS_TENANT_REASONS:
        raise ValueError(f"{reason!r} is not one of hitl.tenancy.CROSS_TENANT_REASONS")
    return _entered(("", reason))


def no_tenant():
    """Code inside sees no tenant-owned row, and may write none."""
    return _entered(NOTHING)


class TenancyMiddleware:
    """Every request starts with no tenant, whatever the thread ran before; its view enters its scope."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with no_tenant():
            return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        """The Django admin crosses tenants (its own scoping, tenants/admin_scoping.py, narrows a
        tenant admin to the tenants they administer); ``__call__``'s ``no_tenant`` undoes this after."""
        match = request.resolver_match
        if match is not None and match.app_name == "admin":
            _scope.set(("", "admin"))


@contextmanager
def statement_settings(**settings: str):
    """Autocommitted statements inside run with these PostgreSQL settings (transaction-local).

    For a hot statement that is its own transaction (the claim). The settings go with the
    scope in the same round trip and end with the statement; inside a caller's transaction
    they are not sent (that transaction keeps its own). Names are PostgreSQL's settings,
    given by the code, never by a request.
    """
    token = _settings.set(tuple(value for pair in sorted(settings.items()) for value in pair))
    try:
        yield
    finally:
        _settings.reset(token)


def scope_sql(extra: int) -> str:
    """The scope's ``set_config`` statement with ``extra`` more settings (name, value) after it."""
    return SET_SCOPE_SQL + ", set_config(%s, %s, true)" * extra


def apply_scope(execute, sql, params, many, context):
    """The ``execute_wrapper`` of every PostgreSQL connection (``hitl.postgres``).

    Sends the running code's scope with the statement when the transaction does not hold
    it yet: once per transaction inside ``atomic`` (and again after the scope changes), and
    with every statement that wants a scope in autocommit mode, where each statement is a
    transaction of its own. The ``set_config`` and the statement share one round trip.
    """
    connection = context["connection"]
    wanted = current()
    in_transaction = not connection.get_autocommit()
    held = connection.hitl_scope_held if in_transaction else NOTHING
    extra = () if in_transaction else _settings.get()
    if (wanted == held and not extra) or sql.lstrip()[:15].upper() == "SET TRANSACTION":
        # SET TRANSACTION must be a transaction's first statement and reads no rows: the
        # scope goes with the next one.
        return execute(sql, params, many, context)
    raw = connection.connection
    connection.hitl_scopes_sent += 1
    with connection.wrap_database_errors:
        if _server_side(context["cursor"]):  # a named cursor cannot join a pipeline
            connection.hitl_scope_cursor.execute(SET_SCOPE_SQL, wanted)
            result = execute(sql, params, many, context)
        else:
            with raw.pipeline():
                connection.hitl_scope_cursor.execute(scope_sql(len(extra) // 2), (*wanted, *extra))
                result = execute(sql, params, many, context)
    if in_transaction:
        connection.hitl_scope_held = wanted
    return result


def _server_side(cursor) -> bool:
    return getattr(getattr(cursor, "cursor", None), "name", None) is not None


# The role switch: the application runs as DATABASE_APP_ROLE, migrations as the owner.

_owner = threading.local()


def app_role() -> str:
    return getattr(settings, "DATABASE_APP_ROLE", "") or ""


def _quoted(role: str) -> str:
    return '"' + role.replace('"', '""') + '"'


def enter_app_role(connection) -> None:
    """On a new connection: ``SET ROLE`` to the application's role (not while the owner works)."""
    role = app_role()
    if not role or connection.alias == "__no_db__" or getattr(_owner, "depth", 0):
        return
    try:
        with connection.connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {_quoted(role)}")
    except Exception as error:
        raise ImproperlyConfigured(
            f"DATABASE_APP_ROLE={role!r}: cannot SET ROLE to it ({error}). Run `manage.py migrate` as the "
            "database's owner (it creates the role), or set DATABASE_APP_ROLE='' to run as the connecting user."
        ) from error


@contextmanager
def as_owner(connection=None):
    """Run as the connecting user (the tables' owner): migrations and the test database's flush."""
    from django.db import connection as default_connection

    connection = connection or default_connection
    role = app_role() and connection.vendor == "postgresql"
    _owner.depth = getattr(_owner, "depth", 0) + 1
    try:
        if role and connection.connection is not None:
            with connection.connection.cursor() as cursor:
                cursor.execute("RESET ROLE")
            connection.hitl_flush_wait_allowed = None  # (a right of the role: asked again)
        with cross_tenant("owner_maintenance"):
            yield
    finally:
        _owner.depth -= 1
        if role and not _owner.depth and connection.connection is not None and not connection.connection.closed:
            enter_app_role(connection)
            connection.hitl_flush_wait_allowed = None
