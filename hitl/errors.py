"""Domain errors: what services raise for their caller to show.

They know nothing of HTTP frameworks; ``http_status`` is the status the API layer
(:mod:`hitl.api_errors`) answers with, and pages show the message.
"""

from pydantic import ValidationError as PydanticValidationError


class ApplicationError(Exception):
    """Base of errors a service raises for its caller to show."""

    code = "error"
    http_status = 400

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
    http_status = 403


class NotFoundError(ApplicationError):
    """Missing and belonging to another tenant look the same."""

    code = "not_found"
    http_status = 404


class ConflictError(ApplicationError):
    code = "conflict"
    http_status = 409


def pydantic_fields(error: PydanticValidationError) -> dict[str, list[str]]:
    """Field path (``items.3.confidence``) to messages, from a pydantic error."""
    fields: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"]) or "body"
        fields.setdefault(path, []).append(item["msg"])
    return fields


def fields_message(fields: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items())
