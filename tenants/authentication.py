"""``Authorization: Bearer <api key>`` for the REST API."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from rest_framework import authentication, exceptions

from hitl.ratelimit import Attempt, FailureLimit, client_address
from tenants.selectors import api_key_account, api_key_authenticate, api_key_forget, api_key_guard
from tenants.services import api_key_touch

# Failed key checks, per client address and per key prefix (hitl/ratelimit.py).
KEY_FAILURES = FailureLimit("apikey", remember_keys=True)  # (an account is a key's prefix, 16 characters at most)
THROTTLED = "Too many failed API key attempts from this client or for this key."  # DRF adds the wait


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Resolves the key (and so the tenant); a bad or revoked key is a 401, and too many
    of them a 429 with Retry-After."""

    keyword = "Bearer"

    def authenticate(self, request, *, confirm: bool = False):
        """``(person or None, key)``; on a method the view lists in ``key_confirmed_by_write``
        (and unless ``confirm``), possibly an unconfirmed key from this process's cache
        (``tenants.selectors.api_key_authenticate``), which the view confirms."""
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not raw_key.strip():
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'.")
        raw_key = raw_key.strip()
        attempt = Attempt(client=client_address(request), account=api_key_account(raw_key))
        wait = KEY_FAILURES.retry_after(attempt)
        if wait is not None:  # refused before the key is checked: guessing gets no answer
            raise exceptions.Throttled(wait, detail=THROTTLED)
        view = (getattr(request, "parser_context", None) or {}).get("view")
        unconfirmed = not confirm and request.method in getattr(view, "key_confirmed_by_write", ())
        api_key = api_key_authenticate(raw_key=raw_key, unconfirmed=unconfirmed)
        if api_key is None:
            wait = KEY_FAILURES.failed(attempt)
            if wait is not None:
                raise exceptions.Throttled(wait, detail=THROTTLED)
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        now = timezone.now()
        if api_key.confirmed and (
            api_key.last_used_at is None
            or now - api_key.last_used_at > timedelta(seconds=settings.HITL_API_KEY_TOUCH_SECONDS)
        ):
            api_key_touch(api_key=api_key, now=now)
        # The key's person (if any) is loaded only when a view asks for request.user.
        user = SimpleLazyObject(lambda: api_key.user) if api_key.user_id else None
        return (user, api_key)

    def confirm(self, request, cached):
        """Look the request's key up again (``cached`` came from the cache and its guard
        failed, or the response comes before any write confirmed it): ``(person, key)``
        confirmed, or AuthenticationFailed / Throttled as on a first check."""
        api_key_forget(cached)
        return self.authenticate(request, confirm=True)

    def guard(self, api_key) -> tuple[str, list]:
        """The SQL condition under which a write may confirm ``api_key`` (``api_key_guard``)."""
        return api_key_guard(api_key)

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'
