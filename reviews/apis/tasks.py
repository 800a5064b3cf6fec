"""REST endpoints of the review loop: claim, release and review a task."""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from hitl.api import TenantApi, error_responses, respond, validate_body
from hitl.errors import ForbiddenError
from policies.selectors import rubric_criteria, rubric_scope
from reviews import schemas
from reviews.models import TaskPurpose
from reviews.selectors import adjudication_reviews, output_judgements, session_shown, task_details
from reviews.services.claims import reviewer_for, task_claim, task_release, tasks_release_expired
from reviews.services.review import review_submit
from tenants.models import KeyRoles

REVIEWERS = KeyRoles.REVIEWERS
ADMIN = KeyRoles.ADMIN


def _person(api_key):
    if not api_key.user_id:
        raise ForbiddenError("This key acts for no person; reviewing needs a reviewer's own key.")
    return api_key.user


def task_out(tenant, task: dict, judgements=()) -> schemas.TaskOut:
    """The claimed task: what the reviewer judges, the rubric version to judge it by and, when the
    output belongs to a session, the turns shown with it (one more query)."""
    criteria = rubric_criteria(tenant=tenant, rubric_id=task["rubric_id"], version=task["rubric_version"])
    scope = rubric_scope(tenant=tenant, rubric_id=task["rubric_id"], version=task["rubric_version"])
    session = session_shown(tenant=tenant, output=task["output"], scope=scope)
    adjudication = None
    if task["purpose"] == TaskPurpose.ADJUDICATION:
        adjudication = adjudication_reviews(tenant=tenant, output_id=task["output"]["id"])
    return schemas.TaskOut.of(task, criteria, judgements, session=session, scope=scope, adjudication=adjudication)


class TaskClaimApi(TenantApi):
    """``POST /api/v1/tasks/claim``: lease the most urgent task you may work (204 when there is none)."""

    permission_map = {"POST": REVIEWERS}

    @extend_schema(
        operation_id="tasks_claim",
        request=schemas.ClaimRequest,
        responses={
            200: OpenApiResponse(schemas.TaskOut, description="The leased task."),
            204: OpenApiResponse(description="Nothing to claim."),
            **error_responses(400, 401, 403, 409, 422),
        },
    )
    def post(self, request):
        claim = validate_body(schemas.ClaimRequest, request.data)  # no body: {} (a JSON null is refused)
        if settings.CELERY_TASK_ALWAYS_EAGER:
            # No broker, so no beat to return expired leases: do it here (production runs the periodic task).
            tasks_release_expired()
        reviewer = reviewer_for(tenant=self.tenant, user=_person(self.api_key), queue_name=claim.queue)
        task = task_claim(tenant=self.tenant, reviewer=reviewer)
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        # The reviewer sees what the judges said (one more query, outside the claim statement).
        return respond(
            task_out(self.tenant, task, output_judgements(tenant=self.tenant, output_id=task["output"]["id"]))
        )


class TaskReleaseApi(TenantApi):
    """``POST /api/v1/tasks/{id}/release``: give a leased task back to its queue."""

    permission_map = {"POST": REVIEWERS}

    @extend_schema(
        operation_id="tasks_release",
        request=None,
        responses={200: schemas.TaskOut, **error_responses(401, 403, 404, 409)},
    )
    def post(self, request, task_id):
        task = task_release(tenant=self.tenant, user=_person(self.api_key), task_id=task_id)
        details = task_details(tenant=self.tenant, task_id=task.pk)
        judgements = output_judgements(tenant=self.tenant, output_id=details["output"]["id"])
        return respond(task_out(self.tenant, details, judgements))


class TaskReviewApi(TenantApi):
    """``POST /api/v1/tasks/{id}/review``: scores, a decision, an optional correction and comment."""

    permission_map = {"POST": REVIEWERS}

    @extend_schema(
        operation_id="tasks_review",
        request=schemas.ReviewSubmission,
        responses={201: schemas.ReviewResult, **error_responses(400, 401, 403, 404, 409, 422)},
    )
    def post(self, request, task_id):
        submission = validate_body(schemas.ReviewSubmission, request.data)
        outcome = review_submit(
            tenant=self.tenant,
            user=_person(self.api_key),
            task_id=task_id,
            decision=submission.decision,
            scores=submission.scores,
            corrected_output=submission.corrected_output,
            comment=submission.comment,
            time_spent_seconds=submission.time_spent_seconds,
        )
        return respond(schemas.ReviewResult.of(outcome), status=status.HTTP_201_CREATED)
