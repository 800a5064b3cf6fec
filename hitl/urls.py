from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from hitl import views
from hitl.ratelimit import login_rate_limited

api_v1 = [
    path("", include("reviews.urls")),
    path("", include("quality.urls")),
    path("", include("policies.urls")),
    path("", include("tenants.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI and ReDoc load their assets from our static files (drf-spectacular-sidecar);
    # the split view serves Swagger UI's start-up script from docs/?script rather than inline.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    # Anything else under /api/ answers in the API's JSON error shape, DEBUG or not.
    re_path(r"^.*$", views.api_not_found),
]

# The API first: its paths are the hot ones (every output, claim and review), and Django tries
# patterns in order, walking every include before it (tenants.urls, with no prefix, pattern by
# pattern): /api/v1/outputs resolved in 27 us behind the pages, 14 us ahead of them.
urlpatterns = [
    path("api/v1/", include(api_v1)),
    # OpenTelemetry exporters append /v1/traces to the endpoint they are given (/api/otlp).
    path("api/otlp/", include("reviews.otlp_urls")),
    path("", views.home, name="home"),
    # Ahead of the admin's own route: failed sign-ins are counted and slowed (hitl/ratelimit.py).
    path("admin/login/", login_rate_limited(admin.site.login)),
    path("", include("tenants.urls")),
    path("review/", include("reviews.page_urls")),
    path("console/", include("reviews.console_urls")),
    path("audit/", include("reviews.audit_urls")),
    path("quality/", include("quality.page_urls")),
    path("admin/", admin.site.urls),
]

handler403 = "tenants.pages.forbidden"  # (the header's links for the person's role)
handler404 = "hitl.views.not_found"
handler500 = "hitl.views.server_failure"
