"""The compliance export over REST: streamed at once, or as a background job giving a bundle."""

import re
from datetime import datetime

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation

from hitl.api import TenantApi, error_responses
from hitl.errors import DomainValidationError, RuleViolationError
from reviews.export import CSV_CONTENT_TYPE, FORMATS, JSONL_CONTENT_TYPE, export_chunks
from tenants.models import KeyRoles

# RFC 3339 date-time (what OpenAPI's ``format: date-time`` means): an offset is required.
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def period_parse(params) -> tuple[datetime, datetime]:
    """``from`` and ``to`` of a query string: RFC 3339 date-times, ``from`` before ``to``.

    Malformed or missing is a 400; well formed but not a real instant (a leap second, an
    offset past 23:59) or ``to`` not after ``from`` is a 422.
    """
    values = {}
    for name in ("from", "to"):
        raw = params.get(name)
        if raw is None or not _DATETIME.fullmatch(raw):
            message = "Required: an RFC 3339 date-time with an offset, e.g. 2026-01-01T00:00:00Z."
            raise DomainValidationError(f"{name}: {message}", fields={name: [message]})
        try:
            values[name] = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
        except ValueError as error:
            raise RuleViolationError(f"{name}: not a valid instant ({error})", fields={name: [str(error)]}) from error
    if values["to"] <= values["from"]:
        message = "Must be later than `from`."
        raise RuleViolationError(f"to: {message}", fields={"to": [message]})
    return values["from"], values["to"]


class JsonErrorsOnly(BaseContentNegotiation):
    """Errors are JSON whatever the client accepts; a successful export is streamed apart.

    (DRF's default would also read the ``format`` query parameter as a renderer's name.)
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


PERIOD_PARAMETERS = [
    OpenApiParameter(
        "from",
        {"type": "string", "format": "date-time"},
        required=True,
        description="Start of the period (inclusive), RFC 3339 with an offset; outputs by their time of receipt.",
    ),
    OpenApiParameter(
        "to",
        {"type": "string", "format": "date-time"},
        required=True,
        description="End of the period (exclusive), later than `from`.",
    ),
]


class AuditExportApi(TenantApi):
    """``GET /api/v1/audit/export?from=&to=&format=csv|jsonl``: one record per output received
    in the period, streamed as it is read (constant memory whatever the period)."""

    permission_map = {"GET": KeyRoles.AUDIT}
    content_negotiation_class = JsonErrorsOnly

    @extend_schema(
        operation_id="audit_export",
        parameters=[
            *PERIOD_PARAMETERS,
            OpenApiParameter(
                "format",
                {"type": "string", "enum": list(FORMATS), "default": "csv"},
                description="`csv` (UTF-8 with BOM, one row per output, nested parts as JSON cells) or "
                "`jsonl` (one JSON object per line).",
            ),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="The CSV, streamed: a header row, then one row per output."
            ),
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="JSON Lines, streamed: one object per output."
            ),
            **error_responses(400, 401, 403, 422),
        },
    )
    def get(self, request):
        start, end = period_parse(request.query_params)
        kind = request.query_params.get("format", "csv")
        if kind not in FORMATS:
            message = "One of: csv, jsonl."
            raise DomainValidationError(f"format: {message}", fields={"format": [message]})
        chunks = export_chunks(tenant=self.tenant, start=start, end=end, format=kind)
        response = StreamingHttpResponse(chunks, content_type=CSV_CONTENT_TYPE if kind == "csv" else JSONL_CONTENT_TYPE)
        name = f"outputs-{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}.{kind}"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["Cache-Control"] = "no-store"
        return response
