"""The reviewer's workbench, under /review/."""

from django.urls import path

from reviews import pages

app_name = "review"

urlpatterns = [
    path("", pages.WorkbenchPage.as_view(), name="workbench"),
    path("claim", pages.ClaimAction.as_view(), name="claim"),
    path("exams", pages.ExamStartAction.as_view(), name="exam-start"),
    path("mine/", pages.MyReviewsPage.as_view(), name="mine"),
    path("tasks/<uuid:task_id>/", pages.TaskPage.as_view(), name="task"),
    path("tasks/<uuid:task_id>/release", pages.ReleaseAction.as_view(), name="release"),
    path("tasks/<uuid:task_id>/renew", pages.LeaseRenewAction.as_view(), name="renew"),
]
