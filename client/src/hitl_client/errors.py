"""Exceptions: every API error carries the API's error body (``code``, ``message``, ``fields``)."""

from __future__ import annotations

from typing import Any


class HitlError(Exception):
    """Base of everything this client raises."""


class HitlApiError(HitlError):
    """The API answered with an error status; ``body`` is its JSON error body (or the raw text)."""

    def __init__(self, status_code: int, body: Any, *, retry_after: float | None = None):
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after
        if isinstance(body, dict):
            self.code: str = str(body.get("code", ""))
            self.message: str = str(body.get("message", ""))
            self.fields: dict[str, list[str]] | None = body.get("fields")
        else:
            self.code, self.message, self.fields = "", str(body)[:1000], None
        super().__init__(f"HTTP {status_code} {self.code}: {self.message}".replace(" : ", ": "))


class ValidationError(HitlApiError):
    """400 or 422: the request broke the schema or a rule; ``fields`` names what."""


class AuthenticationError(HitlApiError):
    """401: no key, or a bad or revoked one."""


class PermissionDeniedError(HitlApiError):
    """403: the key's role may not do this."""


class NotFoundError(HitlApiError):
    """404 (also for anything of another tenant)."""


class ConflictError(HitlApiError):
    """409: this external_id was submitted before with a different body."""


class RateLimitedError(HitlApiError):
    """429 after the retries ran out; ``retry_after`` is what the server last asked for."""


class ServerError(HitlApiError):
    """5xx after the retries ran out."""


class DecisionTimeout(HitlError):
    """``wait_for_decision`` gave up; ``output`` is the last state read."""

    def __init__(self, output):
        self.output = output
        super().__init__(f"output {output.id} still {output.status} (delivery {output.delivery})")


class WebhookSignatureError(HitlError):
    """The webhook's ``X-HITL-Signature`` is missing or does not match the body."""


_BY_STATUS = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitedError,
}


def api_error(status_code: int, body: Any, retry_after: float | None = None) -> HitlApiError:
    cls = _BY_STATUS.get(status_code, ServerError if status_code >= 500 else HitlApiError)
    return cls(status_code, body, retry_after=retry_after)
