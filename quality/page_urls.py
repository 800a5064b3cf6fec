"""The quality lead's pages, mounted under /quality/ by hitl/urls.py."""

from django.urls import path

from quality import pages

app_name = "quality"
urlpatterns = [
    path("calibration/", pages.CalibrationListPage.as_view(), name="calibration"),
    path("calibration/new/", pages.CalibrationNewPage.as_view(), name="calibration-new"),
    path("calibration/mine/", pages.MyCalibrationPage.as_view(), name="calibration-mine"),
    path("calibration/<int:session_id>/", pages.CalibrationSessionPage.as_view(), name="calibration-session"),
    path("calibration/<int:session_id>/score/", pages.CalibrationScorePage.as_view(), name="calibration-score"),
    path("calibration/<int:session_id>/results/", pages.CalibrationResultsPage.as_view(), name="calibration-results"),
    path("agreement/", pages.AgreementPage.as_view(), name="agreement"),
    path("judges/<int:judge_id>/clear/", pages.JudgeFlagClearAction.as_view(), name="judge-flag-clear"),
]
