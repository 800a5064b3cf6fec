"""The quality lead's pages, mounted under /quality/ by hitl/urls.py."""

from django.urls import path

from quality import gold_pages as pages

app_name = "quality"
urlpatterns: list = [
    path("golden-sets/", pages.GoldenSetsPage.as_view(), name="golden-sets"),
    path("golden-sets/<int:golden_set_id>/", pages.GoldenSetPage.as_view(), name="golden-set"),
    path("golden-sets/<int:golden_set_id>/export.jsonl", pages.GoldenSetExport.as_view(), name="golden-set-export"),
    path("outputs/<uuid:output_id>/", pages.OutputPromotePage.as_view(), name="output"),
    path("certifications/", pages.CertificationsPage.as_view(), name="certifications"),
    path("exams/", pages.ExamsPage.as_view(), name="exams"),
]
