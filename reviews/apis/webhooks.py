"""REST endpoints for webhooks: register, list and remove endpoints; replay a delivery."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from hitl.api import TenantApi, error_responses, respond, validate_body
from reviews import schemas
from reviews.selectors import webhook_list
from reviews.services.webhooks import webhook_delivery_replay, webhook_endpoint_create, webhook_endpoint_delete
from tenants.models import KeyRoles

ADMIN = KeyRoles.ADMIN


class WebhookCollectionApi(TenantApi):
    """``GET /api/v1/webhooks`` lists endpoints; ``POST`` registers one (the secret is never shown back)."""

    permission_map = {"GET": ADMIN, "POST": ADMIN}

    @extend_schema(operation_id="webhooks_list", responses={200: schemas.WebhookList, **error_responses(401, 403)})
    def get(self, request):
        endpoints = [schemas.WebhookOut.model_validate(endpoint) for endpoint in webhook_list(tenant=self.tenant)]
        return respond(schemas.WebhookList(results=endpoints))

    @extend_schema(
        operation_id="webhooks_create",
        request=schemas.WebhookIn,
        responses={201: schemas.WebhookOut, **error_responses(400, 401, 403, 422)},
    )
    def post(self, request):
        data = validate_body(schemas.WebhookIn, request.data)
        endpoint = webhook_endpoint_create(
            tenant=self.tenant, url=data.url, secret=data.secret, description=data.description
        )
        return respond(schemas.WebhookOut.model_validate(endpoint), status=status.HTTP_201_CREATED)


class WebhookDetailApi(TenantApi):
    """``DELETE /api/v1/webhooks/{id}``: stop sending to an endpoint (its delivery log stays)."""

    permission_map = {"DELETE": ADMIN}

    @extend_schema(operation_id="webhooks_delete", responses={204: None, **error_responses(401, 403, 404)})
    def delete(self, request, webhook_id: int):
        webhook_endpoint_delete(tenant=self.tenant, endpoint_id=webhook_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookReplayApi(TenantApi):
    """``POST /api/v1/webhooks/deliveries/{id}/replay``: send a delivery again, with the same id."""

    permission_map = {"POST": ADMIN}

    @extend_schema(
        operation_id="webhooks_replay",
        request=None,
        responses={
            202: OpenApiResponse(description="Queued for sending again."),
            **error_responses(401, 403, 404, 409),
        },
    )
    def post(self, request, delivery_id):
        webhook_delivery_replay(tenant=self.tenant, delivery_id=delivery_id)
        return Response(status=status.HTTP_202_ACCEPTED)
