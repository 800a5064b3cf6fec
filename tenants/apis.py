"""REST endpoints of the tenants layer: the audit log (read-only) and the key that signs its checkpoints."""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView

from hitl.api import TenantApi, error_responses, respond
from hitl.pagination import TimeCursorPagination, cursor_parameters
from tenants import schemas
from tenants.audit import public_key
from tenants.filters import AuditEventFilter
from tenants.models import AuditEvent, KeyRoles
from tenants.selectors import audit_events

MAX_ID = 2**63 - 1


class AuditPublicKeyApi(TenantApi):
    """``GET /api/v1/audit/public-key``: the Ed25519 public key of audit checkpoints (any key)."""

    permission_map = {"GET": KeyRoles.EVERYONE}

    @extend_schema(
        operation_id="audit_public_key", responses={200: schemas.AuditPublicKeyOut, **error_responses(401, 403)}
    )
    def get(self, request):
        key_id, public = public_key()
        return respond(schemas.AuditPublicKeyOut(algorithm="Ed25519", key_id=key_id, public_key=public))


class AuditEventPagination(TimeCursorPagination):
    ordering = ("-seq",)


class AuditEventCollectionApi(TenantApi, GenericAPIView):
    """``GET /api/v1/audit/events``: the tenant's audit log, newest first, cursor-paginated (admin, auditor)."""

    permission_map = {"GET": KeyRoles.AUDIT}
    pagination_class = AuditEventPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = AuditEventFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no tenant
            return AuditEvent.objects.none()
        return audit_events(tenant=self.tenant)

    @extend_schema(
        operation_id="audit_events_list",
        filters=True,
        parameters=[
            *cursor_parameters(),
            OpenApiParameter(
                "kind",
                {"type": "string", "minLength": 1, "maxLength": 64},
                description="An event kind (task.claimed), or a prefix ending in a dot (task.).",
            ),
            OpenApiParameter(
                "person", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, description="Events of this person."
            ),
            OpenApiParameter(
                "key",
                {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                description="Events made with this API key.",
            ),
            OpenApiParameter(
                "object_type",
                {"type": "string", "minLength": 1, "maxLength": 64},
                description="Events about objects of this type (output, task, policy, ...).",
            ),
            OpenApiParameter(
                "object_id",
                {"type": "string", "minLength": 1, "maxLength": 255},
                description="Events about the object with this id.",
            ),
        ],
        responses={200: schemas.AuditEventPage, **error_responses(400, 401, 403, 422)},
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response([schemas.AuditEventOut.of(event).model_dump(mode="json") for event in page])
