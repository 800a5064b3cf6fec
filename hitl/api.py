"""The one choke point every tenant API goes through.

:class:`TenantApi` authenticates the API key, checks the key's role against the
view's per-method ``permission_map`` and hands the handler ``self.tenant``. A
view without a map for a method refuses it: access is granted, never assumed.
"""

from drf_spectacular.utils import OpenApiResponse
from pydantic import BaseModel, ValidationError
from rest_framework.views import APIView

from hitl.api_errors import ErrorResponse
from hitl.errors import DomainValidationError, NotFoundError, fields_message, pydantic_fields
from hitl.permissions import TenantRolePermission


class TenantApi(APIView):
    """Base of every ``/api/v1`` endpoint that acts inside one tenant.

    Subclasses declare ``permission_map = {"GET": {"admin", ...}, ...}`` and use
    ``self.tenant`` (and ``self.api_key``) in their handlers.
    """

    permission_classes = [TenantRolePermission]
    permission_map: dict[str, frozenset[str] | set[str]] = {}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if any("\x00" in str(value) for value in kwargs.values()):
            # No name holds a NUL character, and PostgreSQL refuses one in a query.
            raise NotFoundError("Not found.")
        self.api_key = request.auth
        self.tenant = request.auth.tenant


def json_object(data) -> dict:
    """The parsed body if it is a JSON object, else the API's 400 naming ``body``."""
    if not isinstance(data, dict):
        raise DomainValidationError("body: must be a JSON object", fields={"body": ["Must be a JSON object."]})
    return data


def validate_body(model: type[BaseModel], data):
    """Validate a request body with a pydantic model; errors become the API's 400 naming each field."""
    json_object(data)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        fields = pydantic_fields(error)
        raise DomainValidationError(fields_message(fields), fields=fields) from error


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """OpenAPI entries for the error statuses an endpoint can answer with.

    Every endpoint that checks a key (401) can also slow down a client that fails too often (429).
    """
    if 401 in statuses and 429 not in statuses:
        statuses = (*statuses, 429)
    descriptions = {
        400: "Invalid request: malformed JSON, a missing or wrongly typed field, or an oversized body.",
        401: "No API key, or a bad or revoked key.",
        403: "The key's role may not do this.",
        404: "Not found (also for anything of another tenant).",
        409: "Conflicts with the existing record.",
        429: "Too many failed API key attempts from this client or for this key; retry after `Retry-After` seconds.",
    }
    return {code: OpenApiResponse(ErrorResponse, description=descriptions[code]) for code in statuses}
