"""``GET /api/v1/sessions/{session_id}``: the outputs of one conversation or agent run, in order."""

from drf_spectacular.utils import OpenApiParameter, extend_schema

from hitl.api import TenantApi, error_responses, respond
from hitl.errors import NotFoundError
from hitl.pagination import TimeCursorPagination, cursor_parameters
from reviews import schemas
from reviews.selectors import session_outputs
from tenants.models import KeyRoles


class SessionCursorPagination(TimeCursorPagination):
    """Oldest first, the order the turns were received (outputs of one batch: in submission order)."""

    ordering = ("received_at", "id")
    page_size = 100


class SessionDetailApi(TenantApi):
    """A session's outputs, oldest first, 100 a page (``page_size`` up to 500); 404 when the tenant
    has no output with this ``session_id``."""

    permission_map = {"GET": KeyRoles.EVERYONE}

    @extend_schema(
        operation_id="sessions_retrieve",
        parameters=[
            OpenApiParameter(
                "session_id",
                {"type": "string", "minLength": 1, "maxLength": 255},
                OpenApiParameter.PATH,
                description="The session_id the outputs were submitted with.",
            ),
            *cursor_parameters(SessionCursorPagination, "Outputs"),
        ],
        responses={200: schemas.SessionPage, **error_responses(400, 401, 403, 404, 422)},
    )
    def get(self, request, session_id):
        paginator = SessionCursorPagination()
        page = paginator.paginate_queryset(session_outputs(tenant=self.tenant, session_id=session_id), request, self)
        if not page and not request.query_params.get("cursor"):
            raise NotFoundError("Session not found.")
        body = schemas.SessionPage(
            session_id=session_id,
            next=paginator.get_next_link(),
            previous=paginator.get_previous_link(),
            results=[schemas.SessionTurn.of(output.__dict__) for output in page],
        )
        return respond(body)
