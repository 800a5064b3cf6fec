"""Shared fixtures. Cheap by design: no autouse fixture touches the database."""

import os
import tempfile
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from hitl import tenancy
from tenants.services import PLATFORM_OPERATOR, api_key_create, membership_create
from tests.factories import TenantFactory, UserFactory
from tests.fake_network import fake_dns_fixture, loopback_only_fixture  # noqa: F401 (fixtures, for every test)
from tests.judge_server import judge_server_fixture  # noqa: F401 (the judge_server fixture, for every test)

REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"
REQUIRE_REDIS = os.environ.get("REQUIRE_REDIS") == "1"
# What appending one audit event costs (tenants/audit.py): one statement on PostgreSQL; on
# SQLite, the counter UPDATE, the hash written back and the INSERT.
AUDIT_APPEND_QUERIES = 1 if connection.vendor == "postgresql" else 3
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def pytest_configure(config):
    from django.conf import settings

    # A cheap hasher keeps user creation fast.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Many tests send bad keys from the test client's one address; the tests of the
    # brute-force limit (tests/hitl/test_ratelimit.py) set their own limit and addresses.
    settings.HITL_AUTH_FAILURES_PER_MINUTE = 1_000_000
    # Compliance bundles built by tests go to a scratch directory, never the checkout's var/.
    settings.HITL_EXPORT_DIR = tempfile.mkdtemp(prefix="hitl-test-exports-")
    # The suite's own set-up and assertions read and write any tenant's rows; what runs
    # under test (requests, tasks, commands) enters its own scope (hitl/tenancy.py).
    tenancy.set_default(("", "test_harness"))
    if REQUIRE_POSTGRES and settings.DATABASES["default"]["ENGINE"] != "hitl.postgres":
        raise pytest.UsageError("REQUIRE_POSTGRES=1 but DATABASE_URL does not point at PostgreSQL")


def pytest_collection_modifyitems(config, items):
    if connection.vendor != "postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL=postgres://...)")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)
    if any("redis" in item.keywords for item in items) and not redis_available():
        if REQUIRE_REDIS:
            raise pytest.UsageError(f"REQUIRE_REDIS=1 but Redis at {REDIS_URL} does not answer")
        skip = pytest.mark.skip(reason=f"needs Redis at {REDIS_URL}")
        for item in items:
            if "redis" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _forget_api_keys():
    """Each test starts with no key in the process's key cache (its database is new: ids repeat)."""
    from tenants.selectors import api_key_cache_clear

    api_key_cache_clear()


@pytest.fixture(scope="session", autouse=True)
def audit_watch():
    """Every service's writes must come with an audit event (tests/audit_watch.py); touches no database."""
    from tests import audit_watch as watch

    return watch.install()


@pytest.fixture
def tenant(db):
    return TenantFactory()


@pytest.fixture
def other_tenant(db):
    return TenantFactory()


def make_client(tenant, role: str, user=None) -> APIClient:
    """An API client holding a fresh key of ``role`` in ``tenant``."""
    if role in ("reviewer", "admin") and user is None:
        # People hold these keys: a member of the tenant with the same role.
        user = UserFactory()
        membership_create(tenant=tenant, user=user, role=role)
    api_key, raw_key = api_key_create(
        tenant=tenant, role=role, name=f"test {role}", user=user, actor=user or PLATFORM_OPERATOR
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    client.api_key = api_key
    client.raw_key = raw_key
    return client


@pytest.fixture
def client_for():
    return make_client


@pytest.fixture
def service_client(tenant):
    return make_client(tenant, "service")


@pytest.fixture
def other_service_client(other_tenant):
    return make_client(other_tenant, "service")


@pytest.fixture
def anonymous_client():
    return APIClient()


@pytest.fixture
def assert_work_queries(db):
    """Like django_assert_num_queries, but blind to SAVEPOINT bookkeeping.

    Tests run inside a transaction, so each service's ``atomic`` adds a SAVEPOINT
    and a RELEASE that production (a top-level transaction) does not issue.
    """

    @contextmanager
    def _assert(expected: int):
        with CaptureQueriesContext(connection) as captured:
            yield captured
        work = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"].upper()]
        assert len(work) == expected, f"expected {expected} queries, ran {len(work)}:\n" + "\n".join(work)

    return _assert


@pytest.fixture
def predictable_policy(tenant):
    """A policy whose sampling does not depend on draws: application 'held' is always
    reviewed (critical, rate 1); everything else never (medium at rate 0)."""
    from policies.defaults import DEFAULT_POLICY
    from policies.services import policy_publish

    tiers = [{**tier, "review_rate": 0.0} if tier["name"] == "medium" else tier for tier in DEFAULT_POLICY["tiers"]]
    rules = [{"name": "always", "tier": "critical", "match": {"application": "held"}}]
    return policy_publish(tenant=tenant, document={**DEFAULT_POLICY, "tiers": tiers, "rules": rules})
