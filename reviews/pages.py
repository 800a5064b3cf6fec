"""The reviewer's workbench: the queues they may work, the task they hold, their own reviews.

Pages go through ``tenants.pages.TenantPage`` (the person, the current tenant, the role)
and call the same services as the API: ``task_claim``, ``review_submit``, ``task_release``.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone

from hitl.errors import ApplicationError, NotFoundError
from policies.selectors import compiled_policy, rubric_criteria, rubric_scope
from reviews.models import Review, TaskPurpose
from reviews.selectors import (
    adjudication_reviews,
    my_review,
    output_judgements,
    queues_overview,
    reviews_by,
    session_shown,
    task_held_by,
    workbench_certifications,
)
from reviews.services.claims import reviewer_for, task_claim, task_lease_renew, task_release
from reviews.services.gold import exam_start
from reviews.services.review import escalation_allowed, review_submit
from reviews.trace import LONG, input_view, trace_steps
from tenants.models import Role
from tenants.pages import TenantPage

REVIEWING = Role.reviewing()
SHORTCUTS = [
    ("1 … 9", "pick a score for the focused criterion (binary: 1 yes, 2 no)"),
    ("↑ ↓", "move between criteria"),
    ("a", "approve"),
    ("r", "reject"),
    ("c", "correct: edit the output, see the diff"),
    ("e", "escalate (a comment is required)"),
    ("Ctrl+Enter", "submit and open the next task"),
    ("?", "show or hide these shortcuts"),
]


def scores_from_form(criteria: list[dict] | None, data) -> dict:
    """The rubric form's fields as the scores ``review_submit`` checks (empty ones left out)."""
    scores = {}
    for criterion in criteria or ():
        raw = data.get(f"score-{criterion['key']}", "").strip()
        if raw == "":
            continue
        kind = criterion["kind"]
        if kind == "binary":
            scores[criterion["key"]] = {"yes": True, "no": False}.get(raw, raw)
        elif kind == "graded":
            try:
                scores[criterion["key"]] = int(raw)
            except ValueError:
                scores[criterion["key"]] = raw
        else:
            scores[criterion["key"]] = raw
    return scores


def criteria_view(criteria: list[dict] | None, values, errors: dict) -> list[dict]:
    """The rubric as the form shows it: each choice with its anchor, what was picked, its error."""
    shown = []
    for criterion in criteria or ():
        key, kind = criterion["key"], criterion["kind"]
        picked = values.get(f"score-{key}", "") if values else ""
        if kind == "binary":
            choices = [("yes", "Yes", ""), ("no", "No", "")]
        elif kind == "graded":
            anchors = criterion.get("anchors") or {}
            choices = [
                (str(point), str(point), anchors.get(str(point), ""))
                for point in range(criterion["min"], criterion["max"] + 1)
            ]
        elif kind == "categorical":
            choices = [(option, option, "") for option in criterion["options"]]
        else:
            choices = []
        shown.append(
            {
                **criterion,
                "value": picked,
                "choices": [
                    {"value": value, "label": label, "anchor": anchor, "checked": value == picked}
                    for value, label, anchor in choices
                ],
                "error": " ".join(errors.get(f"scores.{key}", [])),
            }
        )
    return shown


SESSION_OPEN_UP_TO = 3  # earlier turns shown open; more are collapsed behind a summary


def session_view(shown) -> dict | None:
    """The session as the task page shows it: each turn's input as a conversation or text, its output."""
    if shown is None:
        return None
    turns = [
        {
            **turn,
            "input_view": input_view(turn["input"]),
            "output_long": len(turn["output"]) > LONG,
        }
        for turn in shown.turns
    ]
    earlier = [turn for turn in turns if not turn["current"]]
    return {
        "session_id": shown.session_id,
        "whole": shown.scope == "session",
        "turns": turns,
        "earlier_count": len(earlier),
        "omitted": shown.omitted,
        "limit": shown.limit,
        "collapsed": len(turns) > SESSION_OPEN_UP_TO,
    }


def _claim_and_open(request, page: TenantPage, queue_name: str | None):
    """Claim the most urgent task (of one queue, or of any) and open it; say so when none waits."""
    try:
        reviewer = reviewer_for(tenant=page.tenant, user=page.person, queue_name=queue_name or None)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("review:workbench")
    task = task_claim(tenant=page.tenant, reviewer=reviewer)
    if task is None:
        where = f"the queue {queue_name}" if queue_name else "your queues"
        messages.info(request, f"No task is waiting for you in {where}.")
        return redirect("review:workbench")
    return redirect("review:task", task_id=task["id"])


class WorkbenchPage(TenantPage):
    """``/review/``: the queues the reviewer may work, most urgent first."""

    roles = REVIEWING
    template_name = "reviews/workbench.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        reviewer = reviewer_for(tenant=self.tenant, user=self.person)
        now = timezone.now()
        certifications = workbench_certifications(
            tenant=self.tenant, user=self.person, queue_ids=reviewer.queue_ids, now=now
        )
        gated = {item["queue"].pk: item for item in certifications if item["queue"].pk in reviewer.gated_queue_ids}
        queues = queues_overview(tenant=self.tenant, queue_ids=reviewer.queue_ids, level=reviewer.level, now=now)
        for item in queues:  # a queue requiring certification: claimable only with a valid one
            item["certification"] = gated.get(item["queue"].pk)
            item["locked"] = item["certification"] is not None and not item["certification"]["valid"]
        context.update(queues=queues, certifications=certifications, level=reviewer.level, now=now)
        return context


class ExamStartAction(TenantPage):
    """``POST /review/exams``: start the qualification exam of a queue, and open its first item."""

    roles = REVIEWING
    http_method_names = ["post"]

    def post(self, request):
        try:
            queue_id = int(request.POST.get("queue", ""))
        except ValueError:
            raise Http404 from None
        try:
            exam = exam_start(tenant=self.tenant, user=self.person, queue_id=queue_id)
        except NotFoundError:
            raise Http404 from None
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("review:workbench")
        messages.info(
            request,
            f"Exam for {exam.queue.name} started: {exam.items_total} tasks, answered as any other. "
            f"You pass at {exam.pass_mark:.0%}.",
        )
        return _claim_and_open(request, self, exam.queue.name)


class ClaimAction(TenantPage):
    """``POST /review/claim``: "Start reviewing" (optionally one queue)."""

    roles = REVIEWING
    http_method_names = ["post"]

    def post(self, request):
        return _claim_and_open(request, self, request.POST.get("queue", ""))


class TaskPage(TenantPage):
    """``/review/tasks/{id}/``: the trace, the verdicts, the rubric form; POST submits a decision."""

    roles = REVIEWING
    template_name = "reviews/task.html"

    def _task(self, task_id):
        try:
            return task_held_by(tenant=self.tenant, task_id=task_id, user=self.person)
        except NotFoundError:
            raise Http404 from None

    def _may_escalate(self, task) -> bool:
        """The tier allows it (as review_submit reads it), and someone ranks above both the
        task's level and the reviewer's."""
        tier_allows = escalation_allowed(tenant=self.tenant, output=task.output)
        return tier_allows and max(task.level_required, self.membership.reviewer_level) < 3

    def _context(self, task, **extra) -> dict:
        output = task.output
        criteria = rubric_criteria(tenant=self.tenant, rubric_id=task.rubric_id, version=task.rubric_version)
        policy = compiled_policy(tenant=self.tenant)
        tier = policy.tiers.get(output.risk_tier)
        scope = rubric_scope(tenant=self.tenant, rubric_id=task.rubric_id, version=task.rubric_version)
        turn = {"id": output.pk, "session_id": output.session_id, "received_at": output.received_at}
        context = self.get_context_data(
            session=session_view(session_shown(tenant=self.tenant, output=turn, scope=scope)),
            task=task,
            output=output,
            steps=trace_steps(output.trace),
            input=input_view(output.input),
            judgements=output_judgements(tenant=self.tenant, output_id=output.pk),
            adjudicated=adjudication_reviews(tenant=self.tenant, output_id=output.pk)
            if task.purpose == TaskPurpose.ADJUDICATION
            else [],
            criteria=criteria_view(criteria, extra.get("values"), extra.get("errors") or {}),
            tier=tier,
            escalation_allowed=self._may_escalate(task),
            shortcuts=SHORTCUTS,
            values={},
            errors={},
        )
        context.update(extra)
        return context

    def get(self, request, task_id):
        return self.render_to_response(self._context(self._task(task_id)))

    def post(self, request, task_id):
        task = self._task(task_id)
        criteria = rubric_criteria(tenant=self.tenant, rubric_id=task.rubric_id, version=task.rubric_version)
        decision = request.POST.get("decision", "")
        try:
            seconds = max(0, min(int(request.POST.get("time_spent_seconds") or 0), 24 * 3600))
        except ValueError:
            seconds = None
        try:
            outcome = review_submit(
                tenant=self.tenant,
                user=self.person,
                task_id=task.pk,
                decision=decision,
                scores=scores_from_form(criteria, request.POST),
                corrected_output=request.POST.get("corrected_output") if decision == Review.Verdict.CORRECT else None,
                comment=request.POST.get("comment", "").strip(),
                time_spent_seconds=seconds,
            )
        except ApplicationError as error:
            context = self._context(task, values=request.POST, errors=error.fields, error=error.message)
            return self.render_to_response(context, status=400 if error.http_status == 400 else error.http_status)
        verb = {"approve": "Approved", "reject": "Rejected", "correct": "Corrected", "escalate": "Escalated"}[decision]
        messages.success(request, f"{verb} {outcome.output.external_id}.")
        return _claim_and_open(request, self, task.queue.name if request.POST.get("same_queue") else None)


class ReleaseAction(TenantPage):
    roles = REVIEWING
    http_method_names = ["post"]

    def post(self, request, task_id):
        try:
            task_held_by(tenant=self.tenant, task_id=task_id, user=self.person)
            task_release(tenant=self.tenant, user=self.person, task_id=task_id)
        except NotFoundError:
            raise Http404 from None
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("review:workbench")
        messages.info(request, "Task released: it is back in its queue.")
        return redirect("review:workbench")


class LeaseRenewAction(TenantPage):
    """htmx: extend the lease; answers the lease's countdown partial."""

    roles = REVIEWING
    http_method_names = ["post"]

    def post(self, request, task_id):
        try:
            task = task_lease_renew(tenant=self.tenant, user=self.person, task_id=task_id)
        except NotFoundError:
            raise Http404 from None
        except ApplicationError as error:
            return render(request, "reviews/_lease.html", {"error": error.message}, status=409)
        return render(request, "reviews/_lease.html", {"task": task})


class MyReviewsPage(TenantPage):
    """``/review/mine/``: the reviewer's own history."""

    roles = REVIEWING
    template_name = "reviews/mine.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        page = Paginator(reviews_by(tenant=self.tenant, user=self.person), 50).get_page(self.request.GET.get("page"))
        page.object_list = [my_review(row) for row in page.object_list]
        context.update(page=page)
        return context
