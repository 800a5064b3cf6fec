"""The quality layer's REST routes, mounted under /api/v1/ by hitl/urls.py."""

from django.urls import path

from quality import apis

urlpatterns = [
    path("golden-sets", apis.GoldenSetCollectionApi.as_view(), name="golden-sets"),
    path("golden-sets/<int:golden_set_id>", apis.GoldenSetDetailApi.as_view(), name="golden-set-detail"),
    path("golden-sets/<int:golden_set_id>/items", apis.GoldItemCollectionApi.as_view(), name="golden-set-items"),
    path(
        "golden-sets/<int:golden_set_id>/items/<uuid:item_id>",
        apis.GoldItemDetailApi.as_view(),
        name="golden-set-item-detail",
    ),
    path("golden-sets/<int:golden_set_id>/import", apis.GoldImportApi.as_view(), name="golden-set-import"),
    path("golden-sets/<int:golden_set_id>/export", apis.GoldExportApi.as_view(), name="golden-set-export"),
    path("certifications", apis.CertificationCollectionApi.as_view(), name="certifications"),
    path(
        "certifications/<int:certification_id>/reinstate",
        apis.CertificationReinstateApi.as_view(),
        name="certification-reinstate",
    ),
    path(
        "certifications/<int:certification_id>/revoke",
        apis.CertificationRevokeApi.as_view(),
        name="certification-revoke",
    ),
    path("exams", apis.ExamCollectionApi.as_view(), name="exams"),
    path("queues/<str:queue_name>/certification", apis.QueueCertificationApi.as_view(), name="queue-certification"),
    path(
        "queues/<str:queue_name>/recertification",
        apis.QueueRecertificationApi.as_view(),
        name="queue-recertification",
    ),
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
    path("metrics", apis.MetricsApi.as_view(), name="metrics"),
    path("datasets/fine-tuning", apis.FineTuningDatasetApi.as_view(), name="datasets-fine-tuning"),
]
