"""The quality layer's REST routes, mounted under /api/v1/ by hitl/urls.py."""

from django.urls import path

from quality.apis import agreement, calibration, datasets, gold, metrics

urlpatterns = [
    path("golden-sets", gold.GoldenSetCollectionApi.as_view(), name="golden-sets"),
    path("golden-sets/<int:golden_set_id>", gold.GoldenSetDetailApi.as_view(), name="golden-set-detail"),
    path("golden-sets/<int:golden_set_id>/items", gold.GoldItemCollectionApi.as_view(), name="golden-set-items"),
    path(
        "golden-sets/<int:golden_set_id>/items/<uuid:item_id>",
        gold.GoldItemDetailApi.as_view(),
        name="golden-set-item-detail",
    ),
    path("golden-sets/<int:golden_set_id>/import", gold.GoldImportApi.as_view(), name="golden-set-import"),
    path("golden-sets/<int:golden_set_id>/export", gold.GoldExportApi.as_view(), name="golden-set-export"),
    path("certifications", gold.CertificationCollectionApi.as_view(), name="certifications"),
    path(
        "certifications/<int:certification_id>/reinstate",
        gold.CertificationReinstateApi.as_view(),
        name="certification-reinstate",
    ),
    path(
        "certifications/<int:certification_id>/revoke",
        gold.CertificationRevokeApi.as_view(),
        name="certification-revoke",
    ),
    path("exams", gold.ExamCollectionApi.as_view(), name="exams"),
    path("queues/<str:queue_name>/certification", gold.QueueCertificationApi.as_view(), name="queue-certification"),
    path(
        "queues/<str:queue_name>/recertification",
        gold.QueueRecertificationApi.as_view(),
        name="queue-recertification",
    ),
    path("calibration/sessions", calibration.CalibrationSessionCollectionApi.as_view(), name="calibration-sessions"),
    path(
        "calibration/sessions/<int:calibration_id>",
        calibration.CalibrationSessionDetailApi.as_view(),
        name="calibration-session",
    ),
    path(
        "calibration/sessions/<int:calibration_id>/work",
        calibration.CalibrationWorkApi.as_view(),
        name="calibration-work",
    ),
    path(
        "calibration/sessions/<int:calibration_id>/answers",
        calibration.CalibrationAnswerApi.as_view(),
        name="calibration-answers",
    ),
    path(
        "calibration/sessions/<int:calibration_id>/close",
        calibration.CalibrationCloseApi.as_view(),
        name="calibration-close",
    ),
    path(
        "calibration/sessions/<int:calibration_id>/results",
        calibration.CalibrationResultsApi.as_view(),
        name="calibration-results",
    ),
    path("agreement", agreement.AgreementApi.as_view(), name="agreement"),
    path("agreement/pairs", agreement.AgreementPairsApi.as_view(), name="agreement-pairs"),
    path("agreement/judges", agreement.JudgeAgreementListApi.as_view(), name="agreement-judges"),
    path("judges/<int:judge_id>/flag/clear", agreement.JudgeFlagClearApi.as_view(), name="judge-flag-clear"),
    path("metrics", metrics.MetricsApi.as_view(), name="metrics"),
    path("datasets/fine-tuning", datasets.FineTuningDatasetApi.as_view(), name="datasets-fine-tuning"),
]
