"""The quality lead's pages, mounted under /quality/ by hitl/urls.py."""

from django.urls import path

from quality import dataset_pages, gold_pages, pages

app_name = "quality"
urlpatterns = [
    path("golden-sets/", gold_pages.GoldenSetsPage.as_view(), name="golden-sets"),
    path("golden-sets/<int:golden_set_id>/", gold_pages.GoldenSetPage.as_view(), name="golden-set"),
    path(
        "golden-sets/<int:golden_set_id>/export.jsonl", gold_pages.GoldenSetExport.as_view(), name="golden-set-export"
    ),
    path("outputs/<uuid:output_id>/", gold_pages.OutputPromotePage.as_view(), name="output"),
    path("certifications/", gold_pages.CertificationsPage.as_view(), name="certifications"),
    path("exams/", gold_pages.ExamsPage.as_view(), name="exams"),
    path("calibration/", pages.CalibrationListPage.as_view(), name="calibration"),
    path("calibration/new/", pages.CalibrationNewPage.as_view(), name="calibration-new"),
    path("calibration/mine/", pages.MyCalibrationPage.as_view(), name="calibration-mine"),
    path("calibration/<int:session_id>/", pages.CalibrationSessionPage.as_view(), name="calibration-session"),
    path("calibration/<int:session_id>/score/", pages.CalibrationScorePage.as_view(), name="calibration-score"),
    path("calibration/<int:session_id>/results/", pages.CalibrationResultsPage.as_view(), name="calibration-results"),
    path("agreement/", pages.AgreementPage.as_view(), name="agreement"),
    path("judges/<int:judge_id>/clear/", pages.JudgeFlagClearAction.as_view(), name="judge-flag-clear"),
    path("", pages.MetricsDashboardPage.as_view(), name="metrics"),
    path("reviewers/", pages.ReviewerAnalyticsPage.as_view(), name="reviewers"),
    path("reviewers/<int:pk>/", pages.ReviewerDetailPage.as_view(), name="reviewer"),
    path("queues/<int:pk>/", pages.QueueDetailPage.as_view(), name="queue"),
    path("datasets/", dataset_pages.DatasetsPage.as_view(), name="datasets"),
    path("datasets/download", dataset_pages.DatasetDownload.as_view(), name="datasets-download"),
]
