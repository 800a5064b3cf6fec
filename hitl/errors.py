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


class RuleViolationError(DomainValidationError):
    """Well formed (it matches the published schema) but against a rule a JSON Schema cannot
    state: one field against another, a reference to other configuration, a regular expression
    that does not compile. A 422, so that a client tells it from a malformed request (400)."""

    http_status = 422


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


class StaleVersionError(ConflictError):
    """An update made to a copy that is no longer current: someone else changed it meanwhile."""

    code = "stale_version"


def version_check(*, what: str, current: int | None, expected: int | None) -> None:
    """Optimistic concurrency: refuse an update made to a version that is no longer current.

    ``expected`` is the version the client's copy is of (None: it did not say); ``current``
    is the version in force, read under the write's lock (None: there is none).
    """
    if expected is None or expected == current:
        return
    now = f"it is now version {current}" if current is not None else "it does not exist"
    message = (
        f"Your copy of {what} is version {expected}, but {now}: it changed since you read it. "
        "Read it again, reapply your change and send that."
    )
    raise StaleVersionError(f"version: {message}", fields={"version": [message]})


def pydantic_fields(error: PydanticValidationError) -> dict[str, list[str]]:
    """Field path (``items.3.confidence``) to messages, from a pydantic error."""
    fields: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"]) or "body"
        fields.setdefault(path, []).append(item["msg"])
    return fields


# pydantic error types raised by a model's own validators: rules beyond the published schema.
_RULE_ERROR_TYPES = frozenset({"value_error", "assertion_error"})


def pydantic_error(error: PydanticValidationError, fields: dict[str, list[str]]) -> DomainValidationError:
    """The domain error for a failed pydantic validation: a 400 when the data breaks the published
    schema (types, lengths, patterns, ranges, required fields), a 422 when it breaks only the
    model's own rules."""
    kinds = {item["type"] for item in error.errors(include_url=False)}
    cls = RuleViolationError if kinds <= _RULE_ERROR_TYPES else DomainValidationError
    return cls(fields_message(fields), fields=fields)


def fields_message(fields: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items())


class KeyUnconfirmed(Exception):
    """A write guarded by an unconfirmed API key (``TenantApi.key_guard``) wrote nothing: the
    key was revoked or changed, or its tenant's configuration changed, since this process
    cached it. The view looks the key up (``TenantApi.confirm_key``) and tries again, or
    answers 401."""
