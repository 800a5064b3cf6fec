"""The quality lead's pages, mounted under /quality/ by hitl/urls.py."""

from django.urls import path

from quality.pages import MetricsDashboardPage, QueueDetailPage, ReviewerAnalyticsPage, ReviewerDetailPage

app_name = "quality"
urlpatterns: list = [
    path("", MetricsDashboardPage.as_view(), name="metrics"),
    path("reviewers/", ReviewerAnalyticsPage.as_view(), name="reviewers"),
    path("reviewers/<int:pk>/", ReviewerDetailPage.as_view(), name="reviewer"),
    path("queues/<int:pk>/", QueueDetailPage.as_view(), name="queue"),
]
