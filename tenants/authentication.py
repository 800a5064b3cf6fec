"""``Authorization: Bearer <api key>`` for the REST API."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from rest_framework import authentication, exceptions

from tenants.selectors import api_key_authenticate
from tenants.services import api_key_touch


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Resolves the key (and so the tenant); a bad or revoked key is a 401."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not raw_key.strip():
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'.")
        api_key = api_key_authenticate(raw_key=raw_key.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > timedelta(
            seconds=settings.HITL_API_KEY_TOUCH_SECONDS
        ):
            api_key_touch(api_key=api_key, now=now)
        # The key's person (if any) is loaded only when a view asks for request.user.
        user = SimpleLazyObject(lambda: api_key.user) if api_key.user_id else None
        return (user, api_key)

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'
