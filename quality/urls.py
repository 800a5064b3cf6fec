"""The quality layer's REST routes, mounted under /api/v1/ by hitl/urls.py."""

from django.urls import path

from quality.apis import MetricsApi

urlpatterns: list = [
    path("metrics", MetricsApi.as_view(), name="metrics"),
]
