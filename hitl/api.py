"""The one choke point every tenant API goes through.

:class:`TenantApi` authenticates the API key, checks the key's role against the
view's per-method ``permission_map`` and hands the handler ``self.tenant``. A
view without a map for a method refuses it: access is granted, never assumed.
"""

from drf_spectacular.utils import OpenApiResponse
from pydantic import BaseModel, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from hitl.api_errors import ErrorResponse
from hitl.errors import (
    DomainValidationError,
    NotFoundError,
    StaleVersionError,
    pydantic_error,
    pydantic_fields,
)
from hitl.permissions import TenantRolePermission
from hitl.tenancy import tenant_scope


class TenantApi(APIView):
    """Base of every ``/api/v1`` endpoint that acts inside one tenant.

    Subclasses declare ``permission_map = {"GET": {"admin", ...}, ...}`` and use
    ``self.tenant`` (and ``self.api_key``) in their handlers.
    """

    permission_classes = [TenantRolePermission]
    permission_map: dict[str, frozenset[str] | set[str]] = {}
    # Methods whose handler confirms the key in its own write statement (``key_guard``): for
    # them the key may come from the process's cache, unconfirmed, saving the lookup's round
    # trip. Whatever the handler does, a key still unconfirmed when the response is ready is
    # looked up then, and a bad one turns the response into its 401 (``finalize_response``).
    key_confirmed_by_write: frozenset[str] = frozenset()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if any("\x00" in str(value) for value in kwargs.values()):
            # No name holds a NUL character, and PostgreSQL refuses one in a query.
            raise NotFoundError("Not found.")
        self._enter_tenant(request.auth)

    def _enter_tenant(self, api_key) -> None:
        self._leave_tenant()
        self.api_key = api_key
        self.tenant = api_key.tenant
        # From here to the response, the database shows this tenant's rows only (hitl/tenancy.py).
        self._tenant_scope = tenant_scope(self.tenant)
        self._tenant_scope.__enter__()

    def _leave_tenant(self) -> None:
        scope = self.__dict__.pop("_tenant_scope", None)
        if scope is not None:
            scope.__exit__(None, None, None)

    def key_guard(self) -> tuple[str, list] | None:
        """For a write that confirms the key: the SQL condition under which it may write
        (``tenants.selectors.api_key_guard``), or None when the key is confirmed already."""
        if getattr(self.api_key, "confirmed", True):
            return None  # (a confirmed key, or the SQLite path, which never caches)
        return self.request._authenticator.guard(self.api_key)

    def key_confirmed(self) -> None:
        """The handler's write statement held ``key_guard``: the key is confirmed."""
        self.api_key.confirmed = True

    def confirm_key(self) -> None:
        """Look the key up (its guard failed: revoked, or the tenant's configuration changed
        since it was cached): from here the request runs with the fresh key and tenant, or
        answers 401 (AuthenticationFailed) if the key no longer works."""
        request = self.request
        cached = request._auth
        # Nothing answers for the cached key (or its person) any more, whatever the lookup says.
        request.user, request.auth = None, None
        user, api_key = request._authenticator.confirm(request, cached)
        request.user, request.auth = user, api_key
        self._enter_tenant(api_key)
        self.check_permissions(request)  # (a key's role never changes: this holds, but is cheap to know)

    def _key_unconfirmed(self) -> bool:
        # (``_auth``, not ``auth``: reading ``auth`` would authenticate a request that failed before it.)
        return not getattr(getattr(self.request, "_auth", None), "confirmed", True)

    def handle_exception(self, exc):
        if self._key_unconfirmed():  # whatever failed (even a 500), a revoked key gets its 401 instead
            try:
                self.confirm_key()
            except Exception as error:  # the lookup's 401 or 429
                exc = error
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        if self._key_unconfirmed():
            try:  # nothing answers for an unconfirmed key: a revoked one gets its 401, not this response
                self.confirm_key()
            except Exception as error:
                response = self.handle_exception(error)
        return super().finalize_response(request, response, *args, **kwargs)

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            self._leave_tenant()


def json_object(data) -> dict:
    """The parsed body if it is a JSON object, else the API's 400 naming ``body``."""
    if not isinstance(data, dict):
        raise DomainValidationError("body: must be a JSON object", fields={"body": ["Must be a JSON object."]})
    return data


def validate_body(model: type[BaseModel], data):
    """Validate a request body with a pydantic model; errors name each field (400, or 422 for the model's own rules)."""
    json_object(data)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise pydantic_error(error, pydantic_fields(error)) from error


def take(model: type[BaseModel], body: dict):
    """Remove from ``body`` the fields ``model`` declares, and validate them with it."""
    return validate_body(model, {name: body.pop(name) for name in list(body) if name in model.model_fields})


def read_only_check(sent: BaseModel, current: BaseModel, *, what: str) -> int | None:
    """Read-only fields a client sent back (what a GET showed it) against the resource now.

    A client may send a resource back as it read it: the read-only fields it set in
    ``sent`` are ignored when they match ``current``; when they do not, its copy is not
    the current version (someone changed it since), and that is a 409. Returns the version
    the write must still find under its lock, or None when the client sent none of them.
    """
    # The version first: when it is stale, that is the news, whatever else differs.
    for name in sorted(sent.model_fields_set, key=lambda name: (name != "version", name)):
        value, now = getattr(sent, name), getattr(current, name)
        if value != now:
            message = (
                f"{value} is not the current value ({now}) of {what}: your copy is stale or of another object. "
                "Read it again, reapply your change and send that."
            )
            if name == "version":
                message = (
                    f"Your copy of {what} is version {value}, but it is now version {now}: it changed since you "
                    "read it. Read it again, reapply your change and send that."
                )
            raise StaleVersionError(f"{name}: {message}", fields={name: [message]})
    return getattr(current, "version", None) if sent.model_fields_set else None


def respond(body: BaseModel, *, status: int = 200) -> Response:
    """A response whose body is the documented model, serialized (house style rule 20).

    Handlers build the very model that ``extend_schema`` publishes for the status, so
    that a key the document does not list cannot be sent, nor a listed one left out.
    """
    return Response(body.model_dump(mode="json", by_alias=True), status=status)


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
        422: "Well formed and as the schema says, but against a rule it cannot state (the message names the "
        "field and the rule), such as a number beyond +/-(2^53 - 1) inside free-form JSON.",
        415: "The body's Content-Type is not one this endpoint reads (the message says which it does).",
        429: "Too many failed API key attempts from this client or for this key; retry after `Retry-After` seconds.",
    }
    return {code: OpenApiResponse(ErrorResponse, description=descriptions[code]) for code in statuses}
