"""The quality layer's REST routes, mounted under /api/v1/ by hitl/urls.py."""

from django.urls import path

from quality import apis

urlpatterns = [
    path("calibration/sessions", apis.CalibrationSessionCollectionApi.as_view(), name="calibration-sessions"),
    path(
        "calibration/sessions/<int:calibration_id>",
        apis.CalibrationSessionDetailApi.as_view(),
        name="calibration-session",
    ),
    path("calibration/sessions/<int:calibration_id>/work", apis.CalibrationWorkApi.as_view(), name="calibration-work"),
    path(
        "calibration/sessions/<int:calibration_id>/answers",
        apis.CalibrationAnswerApi.as_view(),
        name="calibration-answers",
    ),
    path(
        "calibration/sessions/<int:calibration_id>/close", apis.CalibrationCloseApi.as_view(), name="calibration-close"
    ),
    path(
        "calibration/sessions/<int:calibration_id>/results",
        apis.CalibrationResultsApi.as_view(),
        name="calibration-results",
    ),
    path("agreement", apis.AgreementApi.as_view(), name="agreement"),
    path("agreement/pairs", apis.AgreementPairsApi.as_view(), name="agreement-pairs"),
    path("agreement/judges", apis.JudgeAgreementListApi.as_view(), name="agreement-judges"),
    path("judges/<int:judge_id>/flag/clear", apis.JudgeFlagClearApi.as_view(), name="judge-flag-clear"),
]
