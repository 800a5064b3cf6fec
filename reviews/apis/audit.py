"""The compliance export over REST: streamed at once, or as a background job giving a bundle."""

import re
from datetime import datetime

from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import BaseContentNegotiation

from hitl.api import TenantApi, error_responses, respond, validate_body
from hitl.errors import DomainValidationError, RuleViolationError
from hitl.pagination import TimeCursorPagination, cursor_parameters
from reviews import schemas
from reviews.bundle import (
    compliance_export_archive,
    compliance_export_get,
    compliance_export_list,
    compliance_export_request,
)
from reviews.export import CSV_CONTENT_TYPE, FORMATS, JSONL_CONTENT_TYPE, export_chunks
from reviews.models import ComplianceExport, ExportStatus
from tenants.audit import Actor
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


def _export_out(job) -> schemas.ComplianceExportOut:
    return schemas.ComplianceExportOut(
        id=job.pk,
        status=job.status,
        from_=job.period_start,
        to=job.period_end,
        requested_role=job.requested_role,
        outputs_done=job.outputs_done,
        outputs_total=job.outputs_total,
        files=job.files,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        download=f"/api/v1/audit/exports/{job.pk}/download" if job.status == ExportStatus.DONE else None,
    )


class ExportPagination(TimeCursorPagination):
    ordering = ("-created_at", "-id")


class AuditExportCollectionApi(TenantApi, GenericAPIView):
    """``POST /api/v1/audit/exports`` starts a bundle of a period (a background job);
    ``GET`` lists the tenant's exports, newest first, cursor-paginated."""

    permission_map = {"GET": KeyRoles.AUDIT, "POST": KeyRoles.AUDIT}
    pagination_class = ExportPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no tenant
            return ComplianceExport.objects.none()
        return compliance_export_list(tenant=self.tenant)

    @extend_schema(
        operation_id="audit_exports_list",
        parameters=cursor_parameters(),
        responses={200: schemas.ComplianceExportList, **error_responses(400, 401, 403, 422)},
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        body = self.paginator.get_paginated_response([_export_out(job) for job in page]).data
        return respond(schemas.ComplianceExportList(**body))

    @extend_schema(
        operation_id="audit_exports_create",
        request=schemas.ComplianceExportIn,
        responses={
            202: OpenApiResponse(schemas.ComplianceExportOut, description="Accepted: follow its progress."),
            **error_responses(400, 401, 403, 422),
        },
    )
    def post(self, request):
        data = validate_body(schemas.ComplianceExportIn, request.data)
        start, end = period_parse({"from": data.from_, "to": data.to})
        job = compliance_export_request(tenant=self.tenant, start=start, end=end, actor=Actor.of_key(self.api_key))
        job.refresh_from_db()  # built already when tasks run in-process
        return respond(_export_out(job), status=202)


class AuditExportDetailApi(TenantApi):
    """``GET /api/v1/audit/exports/{id}``: the job's status and progress."""

    permission_map = {"GET": KeyRoles.AUDIT}

    @extend_schema(
        operation_id="audit_exports_get", responses={200: schemas.ComplianceExportOut, **error_responses(401, 403, 404)}
    )
    def get(self, request, export_id):
        return respond(_export_out(compliance_export_get(tenant=self.tenant, export_id=export_id)))


class AuditExportDownloadApi(TenantApi):
    """``GET /api/v1/audit/exports/{id}/download``: the bundle, a zip (404 until it is done)."""

    permission_map = {"GET": KeyRoles.AUDIT}
    content_negotiation_class = JsonErrorsOnly

    @extend_schema(
        operation_id="audit_exports_download",
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The bundle."),
            **error_responses(401, 403, 404),
        },
    )
    def get(self, request, export_id):
        path = compliance_export_archive(tenant=self.tenant, export_id=export_id)
        name = f"compliance-{self.tenant.slug}-{export_id}.zip"
        return FileResponse(open(path, "rb"), as_attachment=True, filename=name, content_type="application/zip")
