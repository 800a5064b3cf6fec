"""Every service that writes governance state appends an audit event: checked on every call in the test suite.

At the start of the session each public function of the services modules is replaced,
wherever a module of the project or of the tests holds it, by a wrapper that watches
the SQL its outermost call sends (``connection.execute_wrapper``, no query of its own).
A call that returned normally and wrote to a table of the tenants, policies or reviews
apps without inserting into ``tenants_auditevent`` fails the test that made it, naming
the function and the tables. So a new service, or a new write in an old one, without
its audit row fails the suite wherever a test exercises it, and ``EXEMPT`` lists, with
the reason, the few functions whose writes are operational bookkeeping.
"""

import importlib
import inspect
import pkgutil
import re
import sys
import threading
from functools import wraps

from django.db import connection

SERVICE_MODULES = (
    "tenants.services",
    "policies.services",
    "reviews.services.claims",
    "reviews.services.feedback",
    "reviews.services.ingest",
    "reviews.services.judging",
    "reviews.services.onboarding",
    "reviews.services.queues",
    "reviews.services.review",
    "reviews.services.sla",
    "reviews.services.webhooks",
    "policies.retention",
    "reviews.services.retention",
    "reviews.services.signals",
    "tenants.verification",
    "quality.services",
)
PROJECT_PACKAGES = ("hitl", "tenants", "policies", "reviews", "quality", "tests", "bench")

EXEMPT = {
    "tenants.services.api_key_touch": "operational: when a key was last used, at most once a minute",
    "tenants.services.tenant_config_changed": "a cache token, renewed inside audited changes",
    "tenants.services.people_rights_changed": "renews cache tokens after Django's group changes",
    "tenants.services.user_get_or_create": "people are global, no tenant's; memberships are audited",
    "reviews.services.judging.judges_enqueue": "operational: when the judges were enqueued",
    "reviews.services.judging.judges_enqueue_deferred": "operational: when the judges were enqueued",
    "reviews.services.judging.judges_reconcile": "operational: re-enqueues late judges",
    "policies.retention.retention_watermark_set": "operational: how far the retention job got",
    "reviews.services.retention.retention_apply": "one output.redacted event per batch; a run with nothing "
    "to redact only moves its watermark",
    "reviews.services.retention.retention_apply_all": "retention_apply for every tenant",
    "reviews.services.signals.signal_statistics_refresh": "operational: running statistics; each decision stores "
    "the figures it read (its signal_snapshot, committed to by its reason)",
    "reviews.services.signals.signal_statistics_refresh_all": "signal_statistics_refresh for every tenant",
}

# The tables of the apps that hold governance state; history tables accompany audited writes.
DOMAIN_TABLE = re.compile(r"^(tenants|policies|reviews)_(?!historical)(?!audit)\w+$")
WRITE = re.compile(r'(?<!FOR )\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)
NOT_TABLES = {"SET", "SKIP", "OF", "NOWAIT"}

_state = threading.local()


class MissingAuditEvent(AssertionError):
    pass


def writes_of(sql: str) -> tuple[set[str], bool]:
    """(domain tables written, whether an audit event was inserted) by one statement."""
    tables, audited = set(), False
    for verb, table in WRITE.findall(sql):
        if table.upper() in NOT_TABLES:
            continue
        if table == "tenants_auditevent" and verb.upper().startswith("INSERT"):
            audited = True
        elif DOMAIN_TABLE.match(table):
            tables.add(table)
    return tables, audited


def watched(function, name: str):
    """``function`` checked: its outermost call must append an audit event if it writes."""

    @wraps(function)
    def wrapper(*args, **kwargs):
        if getattr(_state, "depth", 0):
            return function(*args, **kwargs)
        written: set[str] = set()
        audited = []

        def observe(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            tables, appended = writes_of(sql)
            if tables and context["cursor"].rowcount != 0:  # an INSERT that skipped every row wrote nothing
                written.update(tables)
            if appended:
                audited.append(True)
            return result

        _state.depth = 1
        _state.handed = audited  # an append handed to the commit (hitl.postgres) counts as one made
        # Outermost of the connection's wrappers: hitl.tenancy.apply_scope may run the
        # statement in a psycopg pipeline, where its rowcount is known only once it returns.
        wrappers = connection.execute_wrappers
        wrappers.insert(0, observe)
        try:
            result = function(*args, **kwargs)
        finally:
            _state.depth = 0
            _state.handed = None
            wrappers.remove(observe)
        if written and not audited:
            raise MissingAuditEvent(
                f"{name} wrote {', '.join(sorted(written))} without an audit event "
                "(tenants.audit.audit_record in the same transaction; or EXEMPT in tests/audit_watch.py, with why)"
            )
        return result

    wrapper.__audit_watched__ = name
    return wrapper


def service_functions() -> dict[str, object]:
    """Every public function defined in the services modules, by dotted name."""
    found = {}
    for module_name in SERVICE_MODULES:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            value = getattr(value, "__wrapped_service__", value)
            if name.startswith("_") or not inspect.isfunction(value) or value.__module__ != module_name:
                continue
            found[f"{module_name}.{name}"] = value
    return found


def _import_project() -> None:
    """Import every module that may hold a service (views load lazily with the URL conf)."""
    import hitl.urls  # noqa: F401  (every app's apis, pages and console)

    for package_name in ("hitl", "tenants", "policies", "reviews"):
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            if ".migrations" in info.name or info.name.endswith(("wsgi", "asgi")):
                continue
            importlib.import_module(info.name)


def _watch_commit_appends() -> None:
    """PostgreSQL's backend sends some statements with the COMMIT (``hitl_execute_at_commit``),
    past the execute wrappers: an audit insert handed to it counts for the running service."""
    from hitl.postgres.base import DatabaseWrapper

    hand = DatabaseWrapper.hitl_execute_at_commit
    if getattr(hand, "__audit_watched__", False):
        return

    @wraps(hand)
    def watched_hand(self, sql, params, **options):
        taken = hand(self, sql, params, **options)
        handed = getattr(_state, "handed", None)
        if taken and handed is not None and writes_of(sql)[1]:
            handed.append(True)
        return taken

    watched_hand.__audit_watched__ = True
    DatabaseWrapper.hitl_execute_at_commit = watched_hand


def install() -> dict[str, object]:
    """Replace every service function, in every loaded project module, by its watched form."""
    _watch_commit_appends()
    _import_project()
    functions = service_functions()
    wrappers = {}
    for name, function in functions.items():
        if name in EXEMPT:
            continue
        wrapper = watched(function, name)
        wrapper.__wrapped_service__ = function
        wrappers[id(function)] = wrapper
    for module_name, module in list(sys.modules.items()):
        if module is None or not module_name.startswith(PROJECT_PACKAGES):
            continue
        for attribute, value in list(vars(module).items()):
            wrapper = wrappers.get(id(value))
            if wrapper is not None:
                setattr(module, attribute, wrapper)
    return {name: wrappers[id(function)] for name, function in functions.items() if id(function) in wrappers}
