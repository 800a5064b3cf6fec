"""Routes under ``/api/otlp/``: where an OpenTelemetry exporter sends (``<endpoint>/v1/traces``)."""

from django.urls import path

from reviews.apis.otlp import OtlpTracesApi

urlpatterns = [
    path("v1/traces", OtlpTracesApi.as_view(), name="otlp-traces"),
]
