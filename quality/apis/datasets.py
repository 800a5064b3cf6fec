"""``GET /api/v1/datasets/fine-tuning``: reviewed outputs as fine-tuning datasets, streamed (issue 13, point 8)."""

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pydantic import ValidationError

from hitl.api import TenantApi, error_responses
from hitl.errors import (
    pydantic_error,
    pydantic_fields,
)
from quality.datasets import CONTENT_TYPE, DatasetFilter, dataset_file_name, dataset_lines
from quality.schemas import DatasetQuery
from quality.services import (
    dataset_export_record,
)
from reviews.apis.audit import JsonErrorsOnly
from tenants.audit import Actor
from tenants.models import KeyRoles


def dataset_filter_of(query: DatasetQuery) -> DatasetFilter:
    return DatasetFilter(
        format=query.format,
        as_of=timezone.now(),
        start=query.start,
        end=query.end,
        applications=tuple(query.application),
        tiers=tuple(query.tier),
        decisions=tuple(query.decision) or ("corrected",),
    )


def dataset_query_parse(params) -> DatasetQuery:
    """The query string as a :class:`DatasetQuery` (lists from repeated parameters); errors name the parameter."""
    data = {}
    for name in ("format", "from", "to"):
        if name in params:
            data[name] = params.get(name)
    for name in ("application", "tier", "decision"):
        values = [value for value in params.getlist(name) for value in value.split(",") if value]
        if values:
            data[name] = values
    unknown = sorted(set(params) - {"format", "from", "to", "application", "tier", "decision"})
    for name in unknown:
        data[name] = params.get(name)  # refused by the model, naming it
    try:
        return DatasetQuery.model_validate(data)
    except ValidationError as error:  # the API's 400, naming each parameter
        raise pydantic_error(error, pydantic_fields(error)) from error


class FineTuningDatasetApi(TenantApi):
    """``GET /api/v1/datasets/fine-tuning``: reviewed outputs as a fine-tuning dataset, streamed.

    Quality leads and admins. The export is recorded in the audit trail (who, which filter, how
    many lines) before the first line is sent.
    """

    permission_map = {"GET": KeyRoles.QUALITY}
    content_negotiation_class = JsonErrorsOnly

    @extend_schema(
        operation_id="datasets_fine_tuning",
        parameters=[
            OpenApiParameter(
                "format",
                {"type": "string", "enum": ["chat", "preference"], "default": "chat"},
                description='`chat`: OpenAI\'s supervised fine-tuning lines, `{"messages": [...]}` with the corrected '
                "(or approved) output as the last assistant turn; `preference`: OpenAI's preference (DPO) lines, "
                '`{"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}`.',
            ),
            OpenApiParameter(
                "from", {"type": "string", "format": "date-time"}, description="Received at or after (RFC 3339)."
            ),
            OpenApiParameter("to", {"type": "string", "format": "date-time"}, description="Received before."),
            OpenApiParameter(
                "application",
                {"type": "array", "items": {"type": "string"}},
                description="Only these applications (repeat the parameter or separate by commas).",
            ),
            OpenApiParameter(
                "tier", {"type": "array", "items": {"type": "string"}}, description="Only these risk tiers."
            ),
            OpenApiParameter(
                "decision",
                {"type": "array", "items": {"type": "string", "enum": ["approved", "corrected"]}},
                description="Final decisions to include (chat: default corrected; preference: corrected only).",
            ),
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="JSON Lines, streamed: one training example per line."
            ),
            **error_responses(400, 401, 403, 422),
        },
    )
    def get(self, request):
        dataset = dataset_filter_of(dataset_query_parse(request.query_params))
        dataset_export_record(tenant=self.tenant, dataset=dataset, actor=Actor.of_key(self.api_key))
        response = StreamingHttpResponse(dataset_lines(tenant=self.tenant, dataset=dataset), content_type=CONTENT_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{dataset_file_name(dataset)}"'
        response["Cache-Control"] = "no-store"
        return response
