"""``GET /api/v1/metrics``: the metrics of seed 001 Table 1 from the rollups (issue 13, point 6)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema

from hitl.api import TenantApi, error_responses, respond
from quality import schemas
from quality.metrics import GROUP_BY, MAX_DAYS, metrics_report
from quality.params import metrics_group_by, metrics_period
from tenants.models import ApiKeyRole, KeyRoles

# A date, or a date-time on a whole hour (an offset that moves it off the hour is a 422).
PERIOD_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:00:00(Z|[+-][0-9]{2}:[0-9]{2}))?$"

# Quality leads and admins; auditors too: the figures (SLA compliance, what was stopped before
# delivery) belong in a compliance review, and they read every review's story anyway.
METRICS_READERS = KeyRoles.QUALITY | {ApiKeyRole.AUDITOR}


class MetricsApi(TenantApi):
    """``GET /api/v1/metrics?from=&to=&group_by=``: the metrics of seed 001 Table 1 for a period,
    read from the rollups (never from the outputs), in total and per group."""

    permission_map = {"GET": METRICS_READERS}

    @extend_schema(
        operation_id="metrics",
        parameters=[
            OpenApiParameter(
                "from",
                {"type": "string", "pattern": PERIOD_PATTERN},
                required=True,
                description="Start (inclusive): a date (midnight UTC) or an RFC 3339 date-time on a whole hour.",
            ),
            OpenApiParameter(
                "to",
                {"type": "string", "pattern": PERIOD_PATTERN},
                required=True,
                description=f"End (exclusive), as `from`, later than it and at most {MAX_DAYS} days after.",
            ),
            OpenApiParameter(
                "group_by",
                {"type": "string", "pattern": rf"^({'|'.join(GROUP_BY)})(,({'|'.join(GROUP_BY)}))?$"},
                description="One or two dimensions, comma-separated: "
                + ", ".join(f"`{name}`" for name in GROUP_BY)
                + ". Outputs group by tier, application, model, prompt_version (metadata), category (metadata) "
                "and day; reviews by reviewer, queue, category and day; judges by judge and day.",
            ),
        ],
        responses={200: schemas.MetricsReport, **error_responses(400, 401, 403, 422)},
    )
    def get(self, request):
        start, end = metrics_period(request.query_params)
        group_by = metrics_group_by(request.query_params.get("group_by"))
        report = metrics_report(tenant=self.tenant, start=start, end=end, group_by=group_by)
        return respond(schemas.MetricsReport.of(report))
