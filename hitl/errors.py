"""Domain errors and the API's single error contract.

Services raise :class:`ApplicationError` subclasses; they know nothing of HTTP.
:func:`exception_handler` turns those, DRF's own exceptions, Django's 404 and
pydantic validation errors into one JSON shape::

    {"code": "validation_error", "message": "confidence: ...", "fields": {"confidence": ["..."]}}
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from pydantic import ValidationError as PydanticValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response


class ApplicationError(Exception):
    """Base of errors a service raises for its caller to show."""

    code = "error"
    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code


class DomainValidationError(ApplicationError):
    code = "validation_error"


class ForbiddenError(ApplicationError):
    """The caller is known but may not do this (a 403)."""

    code = "permission_denied"
    http_status = status.HTTP_403_FORBIDDEN


class NotFoundError(ApplicationError):
    """Missing and belonging to another tenant look the same."""

    code = "not_found"
    http_status = status.HTTP_404_NOT_FOUND


class ConflictError(ApplicationError):
    code = "conflict"
    http_status = status.HTTP_409_CONFLICT


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "request_too_large"

    def __init__(self, limit: int):
        super().__init__(f"Request body exceeds the limit of {limit} bytes.")


def pydantic_fields(error: PydanticValidationError) -> dict[str, list[str]]:
    """Field path (``items.3.confidence``) to messages, from a pydantic error."""
    fields: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"]) or "body"
        fields.setdefault(path, []).append(item["msg"])
    return fields


def fields_message(fields: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items())


def _drf_fields(detail, prefix: str = "") -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "body" if key == "non_field_errors" and not prefix else f"{prefix}{key}"
            fields.update(_drf_fields(value, f"{name}.") if isinstance(value, dict) else {name: _as_list(value)})
    else:
        fields[prefix.rstrip(".") or "body"] = _as_list(detail)
    return fields


def _as_list(value) -> list[str]:
    if isinstance(value, list):
        return [str(item) for item in value]
    return [str(value)]


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict:
    body = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every error leaves the API in the same shape."""
    headers = {}
    if isinstance(exc, ApplicationError):
        body = error_body(exc.code, exc.message, exc.fields)
        return Response(body, status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: let Django's 500 handling report it
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, exceptions.ValidationError):
        fields = _drf_fields(exc.detail)
        body = error_body("validation_error", fields_message(fields), fields)
    else:
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        body = error_body(code, str(exc.detail))
    return Response(body, status=exc.status_code, headers=headers)
