"""Routes of the tenants layer's API (included under /api/v1/ by hitl/urls.py)."""

from django.urls import path

from tenants.apis import AuditEventCollectionApi, AuditPublicKeyApi

urlpatterns = [
    path("audit/public-key", AuditPublicKeyApi.as_view(), name="audit-public-key"),
    path("audit/events", AuditEventCollectionApi.as_view(), name="audit-events"),
]
