from django.urls import path

from reviews.apis.audit import (
    AuditExportApi,
    AuditExportCollectionApi,
    AuditExportDetailApi,
    AuditExportDownloadApi,
)
from reviews.apis.judges import JudgeAgreementApi
from reviews.apis.outputs import OutputBatchApi, OutputCollectionApi, OutputDetailApi, OutputFeedbackApi
from reviews.apis.sessions import SessionDetailApi
from reviews.apis.tasks import TaskClaimApi, TaskReleaseApi, TaskReviewApi
from reviews.apis.webhooks import WebhookCollectionApi, WebhookDetailApi, WebhookReplayApi

urlpatterns = [
    path("outputs", OutputCollectionApi.as_view(), name="outputs"),
    path("outputs/batch", OutputBatchApi.as_view(), name="outputs-batch"),
    path("outputs/<uuid:output_id>", OutputDetailApi.as_view(), name="output-detail"),
    path("outputs/<uuid:output_id>/feedback", OutputFeedbackApi.as_view(), name="output-feedback"),
    path("sessions/<path:session_id>", SessionDetailApi.as_view(), name="session-detail"),
    path("tasks/claim", TaskClaimApi.as_view(), name="tasks-claim"),
    path("tasks/<uuid:task_id>/release", TaskReleaseApi.as_view(), name="task-release"),
    path("tasks/<uuid:task_id>/review", TaskReviewApi.as_view(), name="task-review"),
    path("judges/<int:judge_id>/agreement", JudgeAgreementApi.as_view(), name="judge-agreement"),
    path("audit/export", AuditExportApi.as_view(), name="audit-export"),
    path("audit/exports", AuditExportCollectionApi.as_view(), name="audit-exports"),
    path("audit/exports/<uuid:export_id>", AuditExportDetailApi.as_view(), name="audit-export-detail"),
    path("audit/exports/<uuid:export_id>/download", AuditExportDownloadApi.as_view(), name="audit-export-download"),
    path("webhooks", WebhookCollectionApi.as_view(), name="webhooks"),
    path("webhooks/<int:webhook_id>", WebhookDetailApi.as_view(), name="webhook-detail"),
    path("webhooks/deliveries/<uuid:delivery_id>/replay", WebhookReplayApi.as_view(), name="webhook-replay"),
]
