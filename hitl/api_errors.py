"""The API's single error contract.

:func:`exception_handler` turns the domain errors of :mod:`hitl.errors`, DRF's own
exceptions, Django's 404 and pydantic validation errors into one JSON shape, the
:class:`ErrorResponse` that the OpenAPI document publishes::

    {"code": "validation_error", "message": "confidence: ...", "fields": {"confidence": ["..."]}}
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from pydantic import BaseModel
from rest_framework import exceptions, status
from rest_framework.response import Response

from hitl.errors import ApplicationError, fields_message


class ErrorResponse(BaseModel):
    """The one JSON shape of every error."""

    code: str
    message: str
    fields: dict[str, list[str]] | None = None


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "request_too_large"

    def __init__(self, limit: int):
        super().__init__(f"Request body exceeds the limit of {limit} bytes.")


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
    """An error as the documented :class:`ErrorResponse` serializes it (``fields`` only when there are some)."""
    return ErrorResponse(code=code, message=message, fields=fields or None).model_dump(exclude_none=True)


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
