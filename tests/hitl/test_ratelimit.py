"""Brute force is slowed: failed API key checks and failed sign-ins, per client and per account.

Each test uses addresses and keys of its own, so that counters (kept in the cache for a
minute) never carry over from one test to another in the same process.
"""

import random
import time

import pytest
from django.test import Client
from django.test.utils import override_settings
from rest_framework.test import APIClient

from hitl.ratelimit import client_address
from tests.conftest import REDIS_URL
from tests.factories import UserFactory

LIMIT = 3


@pytest.fixture
def limit(settings):
    settings.HITL_AUTH_FAILURES_PER_MINUTE = LIMIT
    return LIMIT


def an_address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def api_client(address: str, raw_key: str) -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def a_wrong_key() -> str:
    return f"hitl_{random.randbytes(6).hex()}_{random.randbytes(16).hex()}"


def test_a_client_that_fails_too_often_gets_429_with_retry_after(tenant, client_for, limit):
    address = an_address()
    for _ in range(LIMIT):
        assert api_client(address, a_wrong_key()).get("/api/v1/outputs").status_code == 401

    response = api_client(address, a_wrong_key()).get("/api/v1/outputs")

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    body = response.json()
    assert body["code"] == "throttled"
    assert "Too many failed API key attempts" in body["message"]


def test_a_blocked_client_is_refused_before_its_key_is_checked(tenant, client_for, limit):
    good = client_for(tenant, "service")
    address = an_address()
    for _ in range(LIMIT):
        api_client(address, a_wrong_key()).get("/api/v1/outputs")

    # Even the right key gets no answer from a blocked client: guessing learns nothing.
    assert api_client(address, good.raw_key).get("/api/v1/outputs").status_code == 429
    # The same key from another client works.
    assert api_client(an_address(), good.raw_key).get("/api/v1/outputs").status_code == 200


def test_failures_on_one_key_from_many_clients_slow_that_key_but_not_its_owner(tenant, client_for, limit):
    good = client_for(tenant, "service")
    prefix = good.raw_key.split("_")[1]
    wrong_secret = f"hitl_{prefix}_{'x' * 43}"
    attackers = [an_address() for _ in range(LIMIT)]
    for address in attackers:
        assert api_client(address, wrong_secret).get("/api/v1/outputs").status_code == 401

    fresh_attacker = api_client(an_address(), wrong_secret).get("/api/v1/outputs")
    assert fresh_attacker.status_code == 429
    assert int(fresh_attacker["Retry-After"]) >= 1
    # A client that failed on this key is refused before the check, even with the right secret...
    assert api_client(attackers[0], good.raw_key).get("/api/v1/outputs").status_code == 429
    # ...while the owner, from their own client, is not locked out.
    assert api_client(an_address(), good.raw_key).get("/api/v1/outputs").status_code == 200


def test_successful_requests_are_never_counted(tenant, client_for, limit):
    good = client_for(tenant, "service")
    client = api_client(an_address(), good.raw_key)

    statuses = {client.get("/api/v1/outputs").status_code for _ in range(LIMIT * 3)}

    assert statuses == {200}


def test_the_window_ends_a_minute_after_the_first_failure(tenant, client_for, limit, monkeypatch):
    good = client_for(tenant, "service")
    address = an_address()
    start = time.time()
    for _ in range(LIMIT):
        api_client(address, a_wrong_key()).get("/api/v1/outputs")

    monkeypatch.setattr(time, "time", lambda: start + 30)
    halfway = api_client(address, good.raw_key).get("/api/v1/outputs")
    assert halfway.status_code == 429
    assert 29 <= int(halfway["Retry-After"]) <= 31

    monkeypatch.setattr(time, "time", lambda: start + 61)  # the cache's expiry reads the same clock
    assert api_client(address, good.raw_key).get("/api/v1/outputs").status_code == 200


def test_a_revoked_or_deactivated_key_is_a_failure_like_any_other(tenant, client_for, limit):
    from tenants.services import api_key_revoke

    good = client_for(tenant, "service")
    api_key_revoke(api_key=good.api_key)
    address = an_address()

    statuses = [api_client(address, good.raw_key).get("/api/v1/outputs").status_code for _ in range(LIMIT + 1)]

    assert statuses == [401] * LIMIT + [429]


@pytest.mark.redis
def test_counters_are_shared_through_redis(tenant, client_for, limit):
    """With REDIS_CACHE_URL set, every web process sees the same counts."""
    caches = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    with override_settings(CACHES=caches):
        good = client_for(tenant, "service")
        address = an_address()
        statuses = [api_client(address, a_wrong_key()).get("/api/v1/outputs").status_code for _ in range(LIMIT + 1)]
        other_client = api_client(an_address(), good.raw_key).get("/api/v1/outputs").status_code

    assert statuses == [401] * LIMIT + [429]
    assert other_client == 200


# Sign-in: people's /login/ and the admin's login page share the same brake.

SIGN_IN_PAGES = pytest.mark.parametrize("page", ["/login/", "/admin/login/"])


@pytest.fixture
def staff(db):
    return UserFactory(username=f"staff-{random.randbytes(4).hex()}", password="right", is_staff=True)


def sign_in(page: str, address: str, username: str, password: str):
    return Client(REMOTE_ADDR=address).post(page, {"username": username, "password": password})


@SIGN_IN_PAGES
def test_failed_sign_ins_from_one_client_are_slowed(staff, limit, page):
    address = an_address()
    for _ in range(LIMIT):
        assert sign_in(page, address, staff.username, "wrong").status_code == 200  # the form, with its error

    blocked = sign_in(page, address, staff.username, "right")

    assert blocked.status_code == 429
    assert 1 <= int(blocked["Retry-After"]) <= 60
    assert "Too many failed sign-in attempts" in blocked.content.decode()
    assert sign_in(page, an_address(), staff.username, "right").status_code == 302  # another client signs in


@SIGN_IN_PAGES
def test_failed_sign_ins_on_one_account_from_many_clients_are_slowed(staff, limit, page):
    attackers = [an_address() for _ in range(LIMIT)]
    for address in attackers:
        assert sign_in(page, address, staff.username, "wrong").status_code == 200

    assert sign_in(page, an_address(), staff.username.upper(), "wrong").status_code == 429
    assert sign_in(page, attackers[0], staff.username, "right").status_code == 429
    assert sign_in(page, an_address(), staff.username, "right").status_code == 302  # the person is not locked out


@SIGN_IN_PAGES
def test_signing_in_and_showing_the_page_are_not_counted(staff, limit, page):
    address = an_address()
    client = Client(REMOTE_ADDR=address)
    for _ in range(LIMIT * 2):
        assert client.get(page).status_code == 200
    for _ in range(LIMIT * 2):
        assert sign_in(page, address, staff.username, "right").status_code == 302


# The client's address.


class FakeRequest:
    def __init__(self, remote: str, forwarded: str | None = None):
        self.META = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            self.META["HTTP_X_FORWARDED_FOR"] = forwarded


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "192.0.2.1", "203.0.113.9", "192.0.2.1"),  # no proxy trusted: the header is the client's word
        (1, "10.0.0.2", "203.0.113.9", "203.0.113.9"),
        (1, "10.0.0.2", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a forged left part is ignored
        (2, "10.0.0.2", "6.6.6.6, 203.0.113.9, 10.0.0.1", "203.0.113.9"),
        (1, "10.0.0.2", None, "10.0.0.2"),  # no header: the connection's address
        (0, "2001:db8:1:2:3:4:5:6", None, "2001:db8:1:2::/64"),  # one IPv6 host holds a /64
        (0, "::ffff:192.0.2.7", None, "192.0.2.7"),
    ],
)
def test_client_address(settings, proxies, remote, forwarded, expected):
    settings.HITL_TRUSTED_PROXY_COUNT = proxies

    assert client_address(FakeRequest(remote, forwarded)) == expected


def test_an_unreachable_cache_limits_nothing_and_breaks_nothing(tenant, client_for, limit, caplog):
    """Losing the brake must not take the API down: with the cache gone, keys still work."""
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
    }
    good = client_for(tenant, "service")
    address = an_address()
    with override_settings(CACHES=caches):
        statuses = [api_client(address, a_wrong_key()).get("/api/v1/outputs").status_code for _ in range(LIMIT + 1)]
        works = api_client(address, good.raw_key).get("/api/v1/outputs").status_code

    assert statuses == [401] * (LIMIT + 1)
    assert works == 200
    assert "not limited" in caplog.text


def test_counter_keys_are_remembered_for_key_prefixes_and_never_for_usernames_or_long_input():
    from hitl import ratelimit
    from hitl.ratelimit import LOGIN_FAILURES, Attempt
    from tenants.authentication import KEY_FAILURES

    ratelimit._counter_key.cache_clear()
    ratelimit._counted_as.cache_clear()
    LOGIN_FAILURES.retry_after(Attempt(client="10.0.0.1", account="alice"))
    LOGIN_FAILURES.retry_after(Attempt(client="10.0.0.1", account="x" * 100_000))
    assert ratelimit._counter_key.cache_info().currsize == 0  # no username stays in memory

    KEY_FAILURES.retry_after(Attempt(client="10.0.0.1", account="abcdef12"))
    assert ratelimit._counter_key.cache_info().currsize == 3  # client, account, the pair
    KEY_FAILURES.retry_after(Attempt(client="z" * 10_000, account="abcdef12"))
    assert ratelimit._counter_key.cache_info().currsize == 3  # (the account's key was remembered already)

    class Request:
        META = {"REMOTE_ADDR": "y" * 10_000}

    assert client_address(Request()) == "y" * 10_000
    assert ratelimit._counted_as.cache_info().currsize == 0
    Request.META = {"REMOTE_ADDR": "2001:db8::1"}
    assert client_address(Request()) == "2001:db8::/64"
    assert ratelimit._counted_as.cache_info().currsize == 1
