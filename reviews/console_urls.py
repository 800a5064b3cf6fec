"""The tenant admin's console under /console/: one prefix, sections from the apps that own their data.

This module sits in the top layer, so it may hand the lower apps' pages what only
``reviews`` knows: the latest outputs (the policy preview), the applications seen in
outputs (the stop buttons) and judges' agreement with people.
"""

from django.urls import path

from policies.console import applications, judges, policy, retention, rubrics
from reviews import console
from reviews.selectors import applications_seen, judge_agreements, outputs_for_preview
from tenants import console as tenants_console

app_name = "console"

urlpatterns = [
    path("", console.ConsoleHome.as_view(), name="home"),
    path("policy/", policy.PolicyPage.as_view(recent_outputs=outputs_for_preview), name="policy"),
    path(
        "applications/",
        applications.ApplicationsPage.as_view(applications_seen=applications_seen),
        name="applications",
    ),
    path(
        "applications/<str:name>/stop",
        applications.ApplicationStopPage.as_view(applications_seen=applications_seen),
        name="application-stop",
    ),
    path("members/", tenants_console.MembersPage.as_view(), name="members"),
    path("members/<int:membership_id>/", tenants_console.MemberPage.as_view(), name="member"),
    path("queues/", console.QueuesPage.as_view(), name="queues"),
    path("queues/<int:queue_id>/", console.QueuePage.as_view(), name="queue"),
    path("rubrics/", rubrics.RubricsPage.as_view(), name="rubrics"),
    path("rubrics/<str:name>/", rubrics.RubricPage.as_view(), name="rubric"),
    path("judges/", judges.JudgesPage.as_view(agreements=judge_agreements), name="judges"),
    path("judges/new/", judges.JudgeCreatePage.as_view(agreements=judge_agreements), name="judge-new"),
    path("judges/<int:judge_id>/", judges.JudgePage.as_view(agreements=judge_agreements), name="judge"),
    path("webhooks/", console.WebhooksPage.as_view(), name="webhooks"),
    path("retention/", retention.RetentionPage.as_view(), name="retention"),
    path("webhooks/<int:endpoint_id>/", console.WebhookPage.as_view(), name="webhook"),
]
