"""The quality lead's pages (issue 13): one base, a section nav, every time in UTC."""

from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.http import Http404
from django.utils import timezone

from quality.analytics import queue_rows, reviewer_rows
from quality.metrics import DAY, MAX_DAYS, dimension_names, metrics_report
from quality.templatetags.quality_figures import FORMATS
from tenants.models import Role
from tenants.pages import TenantPage

QUALITY = frozenset({Role.QUALITY_LEAD, Role.ADMIN})
DEFAULT_DAYS = 30
PRESETS = (7, 30, 90)


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
            return metrics_report(tenant=tenant, start=start, end=end, group_by=group_by, totals=not group_by)

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
        key = kwargs["pk"]
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
        return [row for row in reviewer_rows(tenant=self.tenant, start=self.start, end=self.end) if row.name == name]


class QueueDetailPage(_DetailPage):
    """``/quality/queues/<id>/``: one queue over time."""

    dimension, column = "queue", "queue_id"
