"""``POST /api/otlp/v1/traces``: OpenTelemetry GenAI spans in, outputs out (OTLP over HTTP).

An OpenTelemetry exporter pointed at ``https://HOST/api/otlp`` with the header
``Authorization: Bearer <service key>`` sends here, in protobuf or JSON, gzipped or not.
Each root GenAI span and its children become one output (``reviews/otlp.py``); the
request's outputs are ingested as one batch through the bulk path, under the same policy as
``POST /api/v1/outputs/batch``. The answer is an ``ExportTraceServiceResponse`` in the
request's encoding, whose ``partial_success`` names the spans that were rejected.
"""

import orjson
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from pydantic import ValidationError
from rest_framework.exceptions import UnsupportedMediaType

from hitl.api import TenantApi, error_responses, validate_body
from hitl.api_errors import RequestTooLarge
from hitl.errors import fields_message, pydantic_fields
from reviews import otlp, schemas
from reviews.services import output_ingest_batch
from tenants.audit import Actor
from tenants.models import KeyRoles

MAX_ERRORS_NAMED = 20  # spans named in partial_success's message; the count covers them all


def _content_type(request) -> str:
    media = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if media not in (otlp.PROTOBUF, otlp.JSON) and request.META.get("CONTENT_LENGTH", "0") in ("", "0"):
        return otlp.JSON  # no body at all (a WSGI server may call it text/plain): an empty export
    if media not in (otlp.PROTOBUF, otlp.JSON):
        raise UnsupportedMediaType(media or "(none)", detail="Send application/x-protobuf or application/json.")
    return media


def _raw_body(request) -> bytes:
    """The body, read here (no DRF parser runs), bounded before and after decompression."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(limit)
    raw = request._request.read(limit + 1)
    if len(raw) > limit:
        raise RequestTooLarge(limit)
    return otlp.body_decompressed(raw, request.META.get("HTTP_CONTENT_ENCODING", ""), limit=limit)


class OtlpTracesApi(TenantApi):
    """OTLP/HTTP trace export: each root GenAI span becomes an output, idempotent on its trace and span ids."""

    permission_map = {"POST": KeyRoles.SUBMITTERS}

    @extend_schema(
        operation_id="otlp_traces_export",
        summary="OpenTelemetry GenAI traces (OTLP/HTTP)",
        description=(
            "OTLP over HTTP, as an OpenTelemetry exporter sends it when pointed at `/api/otlp` with the header "
            "`Authorization: Bearer <service key>`: `application/x-protobuf` (an `ExportTraceServiceRequest`) or "
            "`application/json` (OTLP/JSON, documented here), optionally `Content-Encoding: gzip`. Each root LLM "
            "or agent span (OpenTelemetry GenAI conventions, OpenLLMetry, OpenInference) becomes an output with "
            "its children as trace steps; `external_id` is `otel:<trace id>:<span id>`, so spans sent again make "
            "no second output; `application` is `service.name` (or the attribute `hitl.application`). The answer "
            "is an `ExportTraceServiceResponse` in the request's encoding; `partialSuccess` names rejected spans."
        ),
        request={otlp.JSON: schemas.OtlpTraceRequest},
        responses={
            200: OpenApiResponse(schemas.OtlpTraceResponse, description="Accepted (rejected spans, if any, named)."),
            **error_responses(400, 401, 403, 415),
        },
    )
    def post(self, request):
        content_type = _content_type(request)
        raw = _raw_body(request)
        if content_type == otlp.PROTOBUF:
            export = otlp.request_from_protobuf(raw)
        else:
            try:
                document = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError as error:
                raise otlp.OtlpBodyError(f"Malformed JSON: {error}") from None
            parsed = validate_body(schemas.OtlpTraceRequest, document)
            export = otlp.request_from_json(parsed.model_dump(exclude_none=True))

        converted = otlp.spans_to_submissions(export)
        rejected: list[tuple[otlp.Converted, str]] = []
        valid: list[tuple[otlp.Converted, schemas.OutputSubmission]] = []
        for item in converted:
            try:
                valid.append((item, schemas.OutputSubmission.model_validate(item.submission)))
            except ValidationError as error:
                rejected.append((item, fields_message(pydantic_fields(error))))
        if valid:  # one batch for the whole request, never one per span
            results = output_ingest_batch(
                tenant=self.tenant,
                submissions=[submission for _, submission in valid],
                actor=Actor.of_key(self.api_key),  # the event names the key that sent the spans
            )
            for (item, _), result in zip(valid, results, strict=True):
                if result.outcome == "conflict":
                    rejected.append((item, "received before with different content (spans are not updated)"))
        message = "; ".join(f"span {item.span_key}: {reason}" for item, reason in rejected[:MAX_ERRORS_NAMED])
        if len(rejected) > MAX_ERRORS_NAMED:
            message += f"; and {len(rejected) - MAX_ERRORS_NAMED} more"
        body = otlp.response_body(sum(item.spans for item, _ in rejected), message, content_type)
        return HttpResponse(body, content_type=content_type, status=200)
