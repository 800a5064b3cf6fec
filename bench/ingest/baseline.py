"""The single-output baseline: a minimal plain Django view, for bench/ingest only.

It parses the same JSON body and inserts one row into the same table with the ORM,
and nothing else: no DRF, no API key, no validation, no idempotency, no policy. The
benchmark serves it from the same gunicorn processes as the real API (same settings,
same middleware), so the ratio between the two is what the API's work costs.

Mounted only by ``bench.ingest.settings`` (the benchmark's ``DJANGO_SETTINGS_MODULE``);
the product's URL conf does not know it.
"""

import json
from functools import cache

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from hitl.tenancy import tenant_scope
from hitl.urls import handler403, handler404, handler500  # noqa: F401  (re-exported)
from hitl.urls import urlpatterns as product_urlpatterns
from reviews.models import Output
from tenants.models import Tenant

PLAIN_TENANT_SLUG = "bench-plain"
PLAIN_PATH = "bench/plain-output"


@cache
def _tenant_id() -> int:
    return Tenant.objects.get(slug=PLAIN_TENANT_SLUG).pk  # tenants are not tenant-owned rows


@csrf_exempt
def plain_output_create(request):
    data = json.loads(request.body)
    with tenant_scope(_tenant_id()):  # row-level security: a tenant's row is written in its scope
        output = _create(data)
    return JsonResponse({"id": str(output.pk), "external_id": output.external_id}, status=201)


def _create(data) -> Output:
    return Output.unscoped.create(
        tenant_id=_tenant_id(),
        external_id=data["external_id"],
        application=data["application"],
        input=data["input"],
        output=data["output"],
        trace=data.get("trace", []),
        metadata=data.get("metadata", {}),
        model=data.get("model", ""),
        confidence=data.get("confidence"),
    )


# After the product's patterns, so that the API's URLs resolve exactly as in production.
urlpatterns = [*product_urlpatterns, path(PLAIN_PATH, plain_output_create)]
