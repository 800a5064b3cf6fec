"""Failed authentications are counted, and brute force slowed, per client and per account.

Counters live in Django's cache (Redis when ``REDIS_CACHE_URL`` is set, so that every
web process sees the same counts; per-process memory otherwise). A counter's window
opens at its first failure and lasts a minute; ``HITL_AUTH_FAILURES_PER_MINUTE``
failures in it slow down:

- the **client** (its address; an IPv6 client by its /64): once it has failed that many
  times, every attempt it makes is refused with 429 before the credential is checked,
  until its window ends. Refusing before the check is what slows guessing.
- the **account** (an API key's prefix, a login's username): once it has that many
  failures from anywhere, failed attempts on it are answered 429, and a client that has
  itself failed on it is refused before the check. A client that has not, with the
  right credential, still gets in: knowing a key's prefix or a person's username is not
  enough to lock them out.

Successful attempts are never counted, and cost one cache read. If the cache cannot be
reached, nothing is counted or refused (and a warning is logged): losing the brake must
not take the API or the sign-in page down with it.
"""

import hashlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache, wraps

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.shortcuts import render

WINDOW_SECONDS = 60

logger = logging.getLogger(__name__)


def client_address(request) -> str:
    """The client's address: ``REMOTE_ADDR``, or behind ``HITL_TRUSTED_PROXY_COUNT``
    proxies the address the outermost of them saw (from the right of X-Forwarded-For).

    An IPv6 client is counted by its /64, which one host usually holds whole.
    """
    address = request.META.get("REMOTE_ADDR", "")
    proxies = settings.HITL_TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            address = forwarded[-proxies]
    # (a process sees the same few addresses again and again: their form is remembered; anything
    # longer than an address is not, so that no header can fill the memory)
    return _counted_as(address) if len(address) <= _LONGEST_ADDRESS else _counted_as.__wrapped__(address)


_LONGEST_ADDRESS = 45  # characters of an IPv6 address written out with an IPv4 tail


@lru_cache(maxsize=4096)
def _counted_as(address: str) -> str:
    """The form an address is counted by."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))


@dataclass(frozen=True)
class Attempt:
    """One authentication attempt: who tries (the client) and which account (None if unnamed)."""

    client: str
    account: str | None


_REMEMBERED_PARTS = 80  # an address and a key's prefix fit; nothing a client could make large is kept


@lru_cache(maxsize=4096)
def _counter_key(scope: str, kind: str, parts: tuple[str, ...]) -> str:
    # Hashed: cache keys stay short and the cache holds no usernames or addresses.
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]
    return f"hitl:authfail:{scope}:{kind}:{digest}"


def _now() -> float:
    return time.time()


class FailureLimit:
    """Counts failed attempts of one kind (``scope``: API keys, logins) and says when to wait.

    ``remember_keys``: the counters' cache keys of an attempt are computed once per process (every
    request checks its client's and its account's), for accounts that are no personal data and
    short (an API key's prefix); never for usernames, which would stay in the process's memory.
    """

    def __init__(self, scope: str, *, remember_keys: bool = False):
        self.scope = scope
        self.remember_keys = remember_keys

    def _key(self, kind: str, *parts: str) -> str:
        if self.remember_keys and sum(len(part) for part in parts) <= _REMEMBERED_PARTS:
            return _counter_key(self.scope, kind, parts)
        return _counter_key.__wrapped__(self.scope, kind, parts)

    def _keys(self, attempt: Attempt) -> dict[str, str]:
        keys = {"client": self._key("client", attempt.client)}
        if attempt.account:
            keys["account"] = self._key("account", attempt.account)
            keys["pair"] = self._key("pair", attempt.client, attempt.account)
        return keys

    @staticmethod
    def _limit() -> int:
        return settings.HITL_AUTH_FAILURES_PER_MINUTE

    def retry_after(self, attempt: Attempt) -> int | None:
        """Before checking the credential: seconds this client must wait, or None to go ahead."""
        keys = self._keys(attempt)
        try:
            counts = cache.get_many([f"{key}:n" for key in keys.values()])
        except Exception:  # the cache backend's own errors (Redis down): fail open, loudly
            logger.warning("Failure counters unreadable; %s attempts are not limited", self.scope, exc_info=True)
            return None
        limit = self._limit()

        def count(name: str) -> int:
            return counts.get(f"{keys[name]}:n", 0) if name in keys else 0

        if count("client") >= limit:
            return self._remaining(keys["client"])
        if count("account") >= limit and count("pair") >= 1:
            return self._remaining(keys["account"])
        return None

    def failed(self, attempt: Attempt) -> int | None:
        """Count a failed attempt; seconds to wait if the client or account is now past its limit."""
        keys = self._keys(attempt)
        try:
            counts = {name: self._increment(key) for name, key in keys.items()}
        except Exception:  # as in retry_after
            logger.warning("Failure counters unwritable; %s attempts are not limited", self.scope, exc_info=True)
            return None
        limit = self._limit()
        if counts.get("account", 0) > limit:
            return self._remaining(keys["account"])
        if counts["client"] > limit:
            return self._remaining(keys["client"])
        return None

    def _increment(self, key: str) -> int:
        """Add one to a counter, opening its window (count and start time) on the first failure."""
        now = _now()
        cache.add(f"{key}:t", now, timeout=WINDOW_SECONDS)
        cache.add(f"{key}:n", 0, timeout=WINDOW_SECONDS)
        try:
            return cache.incr(f"{key}:n")
        except ValueError:  # the window closed between add and incr: this failure opens the next one
            cache.set(f"{key}:t", now, timeout=WINDOW_SECONDS)
            cache.set(f"{key}:n", 1, timeout=WINDOW_SECONDS)
            return 1

    @staticmethod
    def _remaining(key: str) -> int:
        try:
            started = cache.get(f"{key}:t")
        except Exception:  # as in retry_after; the count said to wait, so wait a whole window
            return WINDOW_SECONDS
        if started is None:
            return 1
        return max(1, math.ceil(started + WINDOW_SECONDS - _now()))


LOGIN_FAILURES = FailureLimit("login")


def login_rate_limited(view):
    """Wrap a login view (the admin's today; ``/login/`` when people's pages land) so that
    failed sign-ins are counted per client and per username, and past the limit the page
    answers 429 with Retry-After instead of checking the password.

    A POST that leaves the request without a signed-in person and shows the form again
    (200) is a failure; a successful sign-in redirects. Only the outcome is read, so any
    ``LoginView`` (or the admin's) works unchanged.
    """

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username = request.POST.get(get_user_model().USERNAME_FIELD, "")
        attempt = Attempt(client=client_address(request), account=username.strip().casefold() or None)
        wait = LOGIN_FAILURES.retry_after(attempt)
        if wait is not None:
            return _too_many_attempts(request, wait)
        response = view(request, *args, **kwargs)
        if response.status_code == 200 and not request.user.is_authenticated:
            wait = LOGIN_FAILURES.failed(attempt)
            if wait is not None:
                return _too_many_attempts(request, wait)
        return response

    return wrapped


def _too_many_attempts(request, wait: int):
    response = render(request, "too_many_attempts.html", {"retry_after": wait}, status=429)
    response["Retry-After"] = str(wait)
    return response
