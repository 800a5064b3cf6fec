"""The quality lead's pages, mounted under /quality/ by hitl/urls.py."""

from django.urls import path

from quality.dataset_pages import DatasetDownload, DatasetsPage

app_name = "quality"
urlpatterns: list = [
    path("datasets/", DatasetsPage.as_view(), name="datasets"),
    path("datasets/download", DatasetDownload.as_view(), name="datasets-download"),
]
