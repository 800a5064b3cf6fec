"""The quality layer's REST routes, mounted under /api/v1/ by hitl/urls.py."""

from django.urls import path

from quality.apis import FineTuningDatasetApi

urlpatterns: list = [
    path("datasets/fine-tuning", FineTuningDatasetApi.as_view(), name="datasets-fine-tuning"),
]
