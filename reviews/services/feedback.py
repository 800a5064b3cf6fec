"""End-user feedback on an output; a thumbs-down on an output nobody looked at sends it to a
person, one level up when the judges had passed it (signals that disagree)."""

from dataclasses import replace

from django.db import transaction
from django.utils import timezone

from hitl.errors import NotFoundError
from policies.engine import Decision as PolicyDecision
from policies.selectors import compiled_policy
from reviews.models import Feedback, Judgement, JudgementResult, Output, OutputStatus, ReviewTask, TaskPurpose
from reviews.routing import plan_tasks, routing_table
from reviews.services.claims import tasks_create
from tenants.audit import audit_record, text_digest
from tenants.models import Tenant


@transaction.atomic
def output_feedback_add(*, tenant: Tenant, output_id, rating: str, comment: str = "") -> tuple[Feedback, bool]:
    """Store end-user feedback; a thumbs-down on an output no person looked at creates a task."""
    output = Output.objects.for_tenant(tenant).select_for_update(no_key=True).filter(pk=output_id).first()
    if output is None:
        raise NotFoundError("Output not found.")
    feedback = Feedback.objects.for_tenant(tenant).create(output=output, rating=rating, comment=comment)
    audit_record(
        tenant=tenant,
        actor=None,
        kind="feedback.added",
        object_type="output",
        object_id=output.pk,
        data={"feedback": feedback.pk, "rating": rating, "comment_sha256": text_digest(comment)},
    )
    if (
        rating != Feedback.Rating.DOWN
        or output.decision
        or output.status == OutputStatus.BLOCKED  # the stop button is not lifted by a review
        or output.status == OutputStatus.JUDGING  # the judges' completion takes the thumbs-down into account
        or ReviewTask.objects.for_tenant(tenant).filter(output=output).exists()
    ):
        return feedback, False
    policy = compiled_policy(tenant=tenant)
    routing = routing_table(tenant=tenant)
    tier = output.risk_tier if output.risk_tier in policy.tiers else policy.default_tier
    planned = plan_tasks(
        policy=policy,
        routing=routing,
        decision=PolicyDecision(tier, True, output.delivery, OutputStatus.PENDING_REVIEW, "", None, policy.version),
        application=output.application,
        external_id=output.external_id,
        received_at=timezone.now(),
        purpose=TaskPurpose.USER_FEEDBACK,
    )
    if not planned:
        return feedback, False
    why = "user_feedback: thumbs-down"
    verdicts = set(Judgement.objects.for_tenant(tenant).filter(output=output).values_list("result", flat=True))
    if verdicts == {JudgementResult.PASS}:
        # Signals disagree (seed 003: judges positive, the user negative): a level up looks.
        planned = [replace(task, level_required=min(task.level_required + 1, 3)) for task in planned]
        why = (
            f"{why}; signals disagree: the judges passed it, its end user did not: "
            f"a level {planned[0].level_required} reviewer looks"
        )
    tasks_create(tenant=tenant, planned=[(output.pk, task) for task in planned], now=timezone.now())
    kept = output.keep_ingest_classification()  # what the output's audit digest covers
    output.status = OutputStatus.PENDING_REVIEW
    output.review_required = True
    output.decision_reason = f"{output.decision_reason}; {why}".lstrip("; ")
    output.save(update_fields=["status", "review_required", "decision_reason", *kept])
    return feedback, True
