"""The quality lead's pages (issue 13): one base, a section nav, every time in UTC.

Calibration sessions (point 3), agreement over production overlap reviews (point 4) and
judges against people with their flags (point 7). People invited to a calibration session
(reviewers too) score it and read its results on their own pages here.
"""

from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from hitl.errors import ApplicationError, NotFoundError
from policies.selectors import judge_flags, rubric_list
from policies.services import judge_flag_clear
from quality.agreement import queue_agreement, reviewer_pair_agreement
from quality.analytics import queue_rows, reviewer_rows
from quality.apis.agreement import judge_rows
from quality.metrics import DAY, MAX_DAYS, dimension_names, metrics_report
from quality.models import CalibrationStatus
from quality.selectors import (
    calibration_criteria,
    calibration_participants,
    calibration_results,
    calibration_session_get,
    calibration_sessions,
    calibration_work,
)
from quality.services import (
    CALIBRATION_ROLES,
    calibration_answer_submit,
    calibration_session_close,
    calibration_session_create,
    judge_flag_settings,
)
from quality.templatetags.quality_figures import FORMATS
from reviews.models import Output, Queue
from reviews.pages import criteria_view, scores_from_form
from tenants.models import Role
from tenants.pages import TenantPage, form_errors_from
from tenants.selectors import members_of

QUALITY = frozenset({Role.QUALITY_LEAD, Role.ADMIN})


class QualityPage(TenantPage):
    """Base of the quality pages: quality leads and admins of the current tenant.

    Subclasses set ``quality_section`` (the nav entry shown as current) and read and write
    only through the quality layer's selectors and services, which take ``self.tenant``.
    """

    roles = QUALITY
    quality_section = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("quality_section", self.quality_section)
        return context


CALIBRATING = frozenset(CALIBRATION_ROLES)


class CalibrationListPage(QualityPage):
    """``/quality/calibration/``: every session of the tenant, newest first."""

    template_name = "quality/calibration_list.html"
    quality_section = "calibration"

    def get_context_data(self, **kwargs):
        sessions = calibration_sessions(tenant=self.tenant)
        rows = [
            {"session": s, "participants": calibration_participants(tenant=self.tenant, session=s)} for s in sessions
        ]
        return super().get_context_data(rows=rows, **kwargs)


class CalibrationForm(forms.Form):
    name = forms.CharField(max_length=200)
    rubric = forms.ChoiceField()
    outputs = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    extra_outputs = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="More output ids, one a line."
    )
    participants = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, tenant, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["rubric"].choices = [
            (r.name, f"{r.name} (version {r.version})") for r in rubric_list(tenant=tenant)
        ]
        recent = (
            Output.objects.for_tenant(tenant)
            .filter(reviews__isnull=False)
            .distinct()
            .order_by("-received_at")
            .values_list("pk", "external_id", "application", "decision")[:50]
        )
        self.fields["outputs"].choices = [
            (str(pk), f"{external_id} ({application}{', ' + decision if decision else ''})")
            for pk, external_id, application, decision in recent
        ]
        self.fields["participants"].choices = [
            (str(m.user_id), f"{m.user.get_username()} ({m.get_role_display()})")
            for m in members_of(tenant=tenant)
            if m.role in CALIBRATING
        ]


class CalibrationNewPage(QualityPage):
    """``/quality/calibration/new/``: pick outputs (recently reviewed ones, or any by id), a rubric
    (its current version) and the people to invite."""

    template_name = "quality/calibration_new.html"
    quality_section = "calibration"

    def get(self, request):
        return self.render_to_response(self.get_context_data(form=CalibrationForm(tenant=self.tenant)))

    def post(self, request):
        form = CalibrationForm(request.POST, tenant=self.tenant)
        if form.is_valid():
            extra = [line.strip() for line in form.cleaned_data["extra_outputs"].splitlines() if line.strip()]
            try:
                session = calibration_session_create(
                    tenant=self.tenant,
                    user=self.person,
                    name=form.cleaned_data["name"],
                    rubric_name=form.cleaned_data["rubric"],
                    output_ids=[*form.cleaned_data["outputs"], *extra],
                    participant_ids=[int(value) for value in form.cleaned_data["participants"]],
                )
            except ApplicationError as error:
                form_errors_from(form, error)
            else:
                messages.success(request, f"Session {session.name} started: the people invited can score it now.")
                return redirect("quality:calibration-session", session_id=session.pk)
        return self.render_to_response(self.get_context_data(form=form), status=400)


class CalibrationSessionPage(QualityPage):
    """``/quality/calibration/{id}/``: who answered how much (answers stay blind), close it; once
    closed, the results side by side."""

    template_name = "quality/calibration_session.html"
    quality_section = "calibration"

    def _session(self, session_id):
        try:
            return calibration_session_get(tenant=self.tenant, session_id=session_id)
        except NotFoundError:
            raise Http404 from None

    def get(self, request, session_id):
        session = self._session(session_id)
        context = {"session": session, "participants": calibration_participants(tenant=self.tenant, session=session)}
        if session.status == CalibrationStatus.CLOSED:
            context["results"] = calibration_results(tenant=self.tenant, session=session)
        return self.render_to_response(self.get_context_data(**context))

    def post(self, request, session_id):
        session = self._session(session_id)
        try:
            calibration_session_close(tenant=self.tenant, user=self.person, session_id=session.pk)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, "Session closed: everyone invited sees the results.")
        return redirect("quality:calibration-session", session_id=session.pk)


class MyCalibrationPage(TenantPage):
    """``/quality/calibration/mine/``: the sessions a person is invited to (reviewers too)."""

    roles = CALIBRATING
    template_name = "quality/calibration_mine.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(sessions=calibration_sessions(tenant=self.tenant, user=self.person), **kwargs)


class _InvitedPage(TenantPage):
    roles = CALIBRATING

    def _session(self, session_id):
        try:
            return calibration_session_get(tenant=self.tenant, session_id=session_id, user=self.person)
        except NotFoundError:
            raise Http404 from None


class CalibrationScorePage(_InvitedPage):
    """``/quality/calibration/{id}/score/``: score the items one by one, blind (only your own
    answers show), keyboard first: a, r, c pick the decision, the digits a criterion's choice,
    Ctrl+Enter saves and opens the next item."""

    template_name = "quality/calibration_score.html"

    def _context(self, session, position: int, **extra):
        work = calibration_work(tenant=self.tenant, session=session, user=self.person)
        if not work:
            raise Http404
        position = min(max(position, 1), len(work))
        current = work[position - 1]
        answer = current["answer"]
        values = extra.pop("values", None)
        if values is None and answer is not None:
            values = {f"score-{key}": _form_value(value) for key, value in answer.scores.items()}
            values.update(decision=answer.decision, comment=answer.comment)
        criteria = calibration_criteria(tenant=self.tenant, session=session)
        return self.get_context_data(
            session=session,
            work=work,
            current=current,
            position=position,
            answered=sum(1 for row in work if row["answer"] is not None),
            criteria=criteria_view(criteria, values, extra.pop("errors", None) or {}),
            values=values or {},
            **extra,
        )

    def get(self, request, session_id):
        session = self._session(session_id)
        if session.status == CalibrationStatus.CLOSED:
            return redirect("quality:calibration-results", session_id=session.pk)
        return self.render_to_response(self._context(session, _int(request.GET.get("item"), 1)))

    def post(self, request, session_id):
        session = self._session(session_id)
        position = _int(request.POST.get("position"), 1)
        work = calibration_work(tenant=self.tenant, session=session, user=self.person)
        if not work or not 1 <= position <= len(work):
            raise Http404
        criteria = calibration_criteria(tenant=self.tenant, session=session)
        try:
            calibration_answer_submit(
                tenant=self.tenant,
                user=self.person,
                session_id=session.pk,
                item_id=work[position - 1]["item"].pk,
                decision=request.POST.get("decision", ""),
                scores=scores_from_form(criteria, request.POST),
                comment=request.POST.get("comment", "").strip(),
            )
        except ApplicationError as error:
            context = self._context(session, position, values=request.POST, errors=error.fields, error=error.message)
            return self.render_to_response(context, status=error.http_status if error.http_status != 404 else 400)
        messages.success(request, f"Item {position} saved.")
        following = position + 1 if position < len(work) else position
        return redirect(reverse("quality:calibration-score", args=[session.pk]) + f"?item={following}")


class CalibrationResultsPage(_InvitedPage):
    """``/quality/calibration/{id}/results/``: once closed, everyone's answers side by side, for every
    person invited (quality leads and admins see them on the session's page)."""

    template_name = "quality/calibration_results.html"

    def get(self, request, session_id):
        session = self._session(session_id)
        if session.status != CalibrationStatus.CLOSED:
            messages.info(request, "The results show once the quality lead closes the session.")
            return redirect("quality:calibration-score", session_id=session.pk)
        results = calibration_results(tenant=self.tenant, session=session)
        return self.render_to_response(self.get_context_data(session=session, results=results))


def _form_value(value) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def _int(raw, default: int) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return default


class AgreementFilterForm(forms.Form):
    """The agreement page's filters: days (UTC) from and to (inclusive), a queue."""

    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    queue = forms.ChoiceField(required=False)

    def __init__(self, *args, tenant, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["queue"].choices = [("", "every queue")] + [
            (q.name, q.name) for q in Queue.objects.for_tenant(tenant).order_by("name")
        ]


class AgreementPage(QualityPage):
    """``/quality/agreement/``: agreement per criterion over production overlap reviews (low ones
    flagged), per reviewer pair, and each judge version against people (flags, and clearing them)."""

    template_name = "quality/agreement.html"
    quality_section = "agreement"

    def get(self, request):
        form = AgreementFilterForm(request.GET or None, tenant=self.tenant)
        today = timezone.now().date()
        start_day, end_day, queue = today - timedelta(days=29), today, None
        if form.is_bound and form.is_valid():
            start_day = form.cleaned_data["start"] or start_day
            end_day = form.cleaned_data["end"] or end_day
            name = form.cleaned_data["queue"]
            queue = Queue.objects.for_tenant(self.tenant).filter(name=name).first() if name else None
        start = datetime.combine(start_day, time.min, tzinfo=UTC)
        end = datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=UTC)
        queue_id = queue.pk if queue else None
        report = queue_agreement(tenant=self.tenant, start=start, end=end, queue_id=queue_id)
        pairs = reviewer_pair_agreement(tenant=self.tenant, start=start, end=end, queue_id=queue_id)[:50]
        ids = {p.reviewer_a for p in pairs} | {p.reviewer_b for p in pairs}
        names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
        return self.render_to_response(
            self.get_context_data(
                form=form,
                start_day=start_day,
                end_day=end_day,
                queue=queue,
                report=report,
                pairs=[{"a": names.get(p.reviewer_a), "b": names.get(p.reviewer_b), "pair": p} for p in pairs],
                judges=judge_rows(self.tenant, start, end),
                judge_threshold=judge_flag_settings()["threshold"],
                open_flags=list(judge_flags(tenant=self.tenant, open_only=True)),
            )
        )


class JudgeFlagClearAction(QualityPage):
    """POST ``/quality/judges/{id}/clear/``: a person looked at a flagged judge."""

    http_method_names = ["post"]

    def post(self, request, judge_id):
        try:
            judge_flag_clear(
                tenant=self.tenant, judge_id=judge_id, user=self.person, note=request.POST.get("note", "").strip()
            )
        except NotFoundError:
            raise Http404 from None
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, "Flag cleared: the judge's passes are sampled at the tier's rate again.")
        return redirect("quality:agreement")


DEFAULT_DAYS = 30
PRESETS = (7, 30, 90)


class PeriodForm(forms.Form):
    """The period picker: whole UTC days, ``to`` inclusive."""

    start = forms.DateField(label="From", required=False)
    end = forms.DateField(label="To (inclusive)", required=False)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if end < start:
                self.add_error("end", "Must not be before the start.")
            elif (end - start).days + 1 > MAX_DAYS:
                self.add_error("end", f"At most {MAX_DAYS} days.")
        return cleaned


class PeriodMixin:
    """The period a page shows: from the picker, else the last 30 days (today included)."""

    http_method_names = ["get", "head", "options"]

    def get(self, request, *args, **kwargs):
        # The page's few dozen reads in one transaction: every figure of the page is of the same
        # moment (one snapshot), and the tenant's scope goes to PostgreSQL once, not with each read.
        with transaction.atomic():
            return super().get(request, *args, **kwargs)

    def period(self) -> tuple[datetime, datetime, PeriodForm]:
        today = timezone.now().astimezone(UTC).date()
        form = PeriodForm(self.request.GET or None)
        first, last = today - timedelta(days=DEFAULT_DAYS - 1), today
        days = self.request.GET.get("days")
        if days and days.isdigit() and 1 <= int(days) <= MAX_DAYS:
            first = today - timedelta(days=int(days) - 1)
        elif form.is_bound and form.is_valid():
            first = form.cleaned_data.get("start") or first
            last = form.cleaned_data.get("end") or last
        if not form.is_bound:
            form = PeriodForm(initial={"start": first, "end": last})
        return _midnight(first), _midnight(last) + DAY, form

    def period_context(self):
        start, end, form = self.period()
        self.start, self.end = start, end
        return {
            "period_form": form,
            "period_start": start,
            "period_last": end - DAY,
            "period_days": (end - start).days,
            "presets": PRESETS,
        }


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _epoch(day_label: str) -> int:
    return int(_midnight(date.fromisoformat(day_label)).timestamp())


def day_labels(start: datetime, end: datetime) -> list[str]:
    days = []
    moment = start
    while moment < end:
        days.append(moment.date().isoformat())
        moment += DAY
    return days


def chart(chart_id: str, title: str, *, fmt: str, series: dict[str, list], x: list[str], kind: str = "time") -> dict:
    """A chart's data (read by quality/charts.js from a json_script) and the table view of the same
    numbers: ``x`` day labels (kind ``time``) or category labels (kind ``bars``), one list of
    values per series (None: no data)."""
    rows = [
        {
            "label": label,
            "cells": [
                {"raw": "" if values[i] is None else repr(float(values[i])), "text": FORMATS[fmt](values[i])}
                for values in series.values()
            ],
        }
        for i, label in enumerate(x)
    ]
    data = {
        "title": title,
        "kind": kind,
        "format": fmt,
        "x": [_epoch(label) for label in x] if kind == "time" else list(range(len(x))),
        "labels": x,
        "series": [{"label": label, "values": values} for label, values in series.items()],
    }
    return {
        "id": chart_id,
        "json_id": f"{chart_id}-data",
        "title": title,
        "data": data,
        "columns": list(series),
        "rows": rows,
        "kind": kind,
        "x_label": "Day (UTC)" if kind == "time" else "",
    }


def _series(report, dimension: str, days: list[str], value) -> dict[str, list]:
    """One series per value of ``dimension``, a point per day, from a (dimension, day) report."""
    lines: dict[str, dict[str, float | None]] = {}
    for group in report.groups:
        lines.setdefault(group.key[dimension] or "(none)", {})[group.key["day"]] = value(group)
    return {name: [points.get(day) for day in days] for name, points in sorted(lines.items())}


class MetricsDashboardPage(PeriodMixin, QualityPage):
    """``/quality/``: the tenant's metrics of seed 001 Table 1 for a period; the quality lead's home."""

    template_name = "quality/metrics.html"
    quality_section = "metrics"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(self.period_context())
        tenant, start, end = self.tenant, self.start, self.end
        days = day_labels(start, end)

        def report(*group_by):
            # Time quantiles are shown for the whole period and per day only: no other grouping merges histograms.
            shown = group_by in ((), ("day",))
            return metrics_report(
                tenant=tenant, start=start, end=end, group_by=group_by, totals=not group_by, quantiles=shown
            )

        totals = report().totals
        by_tier, by_application, by_model, by_judge = (
            report("tier"),
            report("application"),
            report("model"),
            report("judge"),
        )
        by_day, by_category, by_reviewer = report("day"), report("category"), report("reviewer")
        model_days, prompt_days = report("model", "day"), report("prompt_version", "day")
        daily = {group.key["day"]: group for group in by_day.groups}

        def per_day(value, missing=None):
            return [value(daily[day]) if day in daily else missing for day in days]

        charts = [
            chart(
                "error-by-tier",
                "Error rate by risk tier",
                fmt="percent",
                kind="bars",
                x=[g.key["tier"] or "(none)" for g in by_tier.groups],
                series={"Error rate": [g.outputs.error_rate for g in by_tier.groups]},
            ),
            chart(
                "reviews-per-day",
                "Reviews per day",
                fmt="number",
                x=days,
                series={
                    "Reviews": per_day(lambda g: g.reviews.reviews if g.reviews else 0, 0),
                    "Escalations": per_day(lambda g: g.reviews.escalates if g.reviews else 0, 0),
                },
            ),
            chart(
                "review-time",
                "Time spent per review (median and p90)",
                fmt="seconds",
                x=days,
                series={
                    "Median": per_day(lambda g: g.reviews.time_median if g.reviews else None),
                    "90th percentile": per_day(lambda g: g.reviews.time_p90 if g.reviews else None),
                },
            ),
            chart(
                "sla-per-day",
                "SLA compliance by day of receipt",
                fmt="percent",
                x=days,
                series={"SLA compliance": per_day(lambda g: g.outputs.sla_compliance if g.outputs else None)},
            ),
            chart(
                "error-by-model",
                "Learning: error rate per model over time",
                fmt="percent",
                x=days,
                series=_series(model_days, "model", days, lambda g: g.outputs.error_rate if g.outputs else None),
            ),
            chart(
                "error-by-prompt",
                "Learning: error rate per prompt version over time",
                fmt="percent",
                x=days,
                series=_series(
                    prompt_days, "prompt_version", days, lambda g: g.outputs.error_rate if g.outputs else None
                ),
            ),
        ]
        context.update(
            totals=totals,
            by_tier=by_tier.groups,
            by_application=by_application.groups,
            by_model=by_model.groups,
            by_judge=by_judge.groups,
            by_category=by_category.groups,
            by_reviewer=by_reviewer.groups,
            charts={c["id"].replace("-", "_"): c for c in charts},
            watermark=by_day.watermark,
        )
        return context


class ReviewerAnalyticsPage(PeriodMixin, QualityPage):
    """``/quality/reviewers/``: every reviewer's and queue's figures for the period, with drift."""

    template_name = "quality/reviewers.html"
    quality_section = "reviewers"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(self.period_context())
        reviewers = reviewer_rows(tenant=self.tenant, start=self.start, end=self.end)
        queues = queue_rows(tenant=self.tenant, start=self.start, end=self.end)
        context.update(
            reviewers=reviewers,
            queues=queues,
            charts={
                "reviews_by_reviewer": chart(
                    "reviews-by-reviewer",
                    "Reviews by reviewer",
                    fmt="number",
                    kind="bars",
                    x=[row.name for row in reviewers],
                    series={"Reviews": [row.figures.reviews for row in reviewers]},
                ),
                "time_by_reviewer": chart(
                    "time-by-reviewer",
                    "Median time spent by reviewer",
                    fmt="seconds",
                    kind="bars",
                    x=[row.name for row in reviewers],
                    series={"Median": [row.figures.time_median for row in reviewers]},
                ),
            },
        )
        return context


class _DetailPage(PeriodMixin, QualityPage):
    """One reviewer's or queue's figures per day of the period."""

    template_name = "quality/analytics_detail.html"
    quality_section = "reviewers"
    dimension = ""
    column = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(self.period_context())
        key = self.key = kwargs["pk"]
        name = dimension_names(self.tenant, (self.dimension,))[self.dimension].get(key)
        if name is None:
            raise Http404  # not of this tenant (or no such one): missing and foreign look the same
        days = day_labels(self.start, self.end)
        only = {self.column: key}
        daily = {
            g.key["day"]: g.reviews
            for g in metrics_report(
                tenant=self.tenant, start=self.start, end=self.end, group_by=("day",), reviews_of=only
            ).groups
        }
        total = metrics_report(tenant=self.tenant, start=self.start, end=self.end, reviews_of=only).totals.reviews

        def per_day(value, missing=None):
            return [value(daily[day]) if day in daily else missing for day in days]

        charts = [
            chart(
                "detail-reviews",
                f"Reviews per day: {name}",
                fmt="number",
                x=days,
                series={
                    "Reviews": per_day(lambda f: f.reviews, 0),
                    "SLA misses": per_day(lambda f: f.late, 0),
                },
            ),
            chart(
                "detail-time",
                f"Time spent per review: {name}",
                fmt="seconds",
                x=days,
                series={"Median": per_day(lambda f: f.time_median), "90th percentile": per_day(lambda f: f.time_p90)},
            ),
            chart(
                "detail-rates",
                f"Modification and escalation rates: {name}",
                fmt="percent",
                x=days,
                series={
                    "Modification rate": per_day(lambda f: f.modification_rate),
                    "Escalation rate": per_day(lambda f: f.escalation_rate),
                },
            ),
        ]
        context.update(
            subject=name,
            subject_kind=self.dimension,
            total=total,
            charts={c["id"].replace("-", "_"): c for c in charts},
            rows=self.rows(name),
        )
        return context

    def rows(self, name):
        return []


class ReviewerDetailPage(_DetailPage):
    """``/quality/reviewers/<id>/``: one reviewer over time, with gold accuracy, agreement and drift."""

    dimension, column = "reviewer", "reviewer_id"

    def rows(self, name):
        return reviewer_rows(tenant=self.tenant, start=self.start, end=self.end, reviewer_id=self.key)


class QueueDetailPage(_DetailPage):
    """``/quality/queues/<id>/``: one queue over time."""

    dimension, column = "queue", "queue_id"
