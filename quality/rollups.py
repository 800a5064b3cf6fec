"""The metrics rollups, kept current by a scheduled job (issue 13 point 6).

``metrics_rollup(tenant=...)`` brings one tenant's rollups (``quality.models``) up to date:

1. **What changed** since the tenant's watermark, less ``LAG``: outputs received or decided,
   feedback given, tasks found late, judges' verdicts and people's reviews with a time at or
   after it (each read through an index on ``(tenant, time)``). Each names the hour bucket it
   touches: the hour its *output was received* for the output and judge rollups (a cohort:
   a review today of last week's output changes last week's bucket), the hour the *review
   was made* for the review rollup.
2. **Each such hour is rebuilt whole** from the review loop's rows: its rows are deleted and
   computed again, a day's changed hours in one pass (a statement per rollup and fact, over
   those hours' index ranges) and one transaction. Rebuilding gives the same rows whatever was
   there before, so a run that is retried, repeated, or overlaps another changes nothing;
   the tenant's ``RollupState`` row is locked for each day's transaction, so two runs take
   turns rather than interleave.
3. **Each touched day is summed again** from its hour rows (the day rows pages read), and the
   review rollup's day rows once more into the day's summaries (``ReviewDaySummary``: the
   tenant, each reviewer, each queue, each category), so that a page's figures for a month
   read a few rows rather than every reviewer, queue and category of every day.
4. The watermark moves to the run's start, once every hour is rebuilt. ``LAG`` covers rows
   whose time was taken before the previous run began but which committed after it read
   (a review's transaction in flight); five minutes is far beyond any of the loop's
   transactions.

A tenant's first run rebuilds every hour that holds an output or a review (the backfill).
The job writes derived data only (no governance state): it is not audited.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import BooleanField, Case, Count, Exists, F, OuterRef, Q, Sum, TextField, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, TruncHour
from django.utils import timezone

from hitl.errors import NotFoundError
from hitl.tenancy import tenant_scope
from policies.models import Judge
from policies.selectors import compiled_policy_version
from quality import histograms
from quality.models import (
    Grain,
    JudgeRollup,
    OutputDaySummary,
    OutputRollup,
    OutputSummaryScope,
    ReviewDaySummary,
    ReviewRollup,
    RollupState,
    SummaryScope,
)
from reviews.models import Decision, Feedback, Judgement, Output, Review, ReviewTask, TaskPurpose, TaskStatus
from tenants.models import Tenant

LAG = timedelta(minutes=5)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
ERRORS = (Decision.REJECTED, Decision.CORRECTED)

OUTPUT_SUMS = (
    "outputs",
    "sampled",
    "auto_approved",
    "blocked",
    "decided",
    "approved",
    "rejected",
    "corrected",
    "thumbs_down",
    "caught_by_feedback",
    "tasks",
    "tasks_late",
)
JUDGE_SUMS = (
    "judged",
    "failed",
    "unsure",
    "decided",
    "errors",
    "passed_decided",
    "passed_errors",
    "failed_decided",
    "failed_errors",
)
REVIEW_SUMS = ("reviews", "approves", "rejects", "corrects", "escalates", "late", "timed", "time_total")


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class RollupRun:
    """What one run did, for the task's result and the bench."""

    output_hours: int = 0
    review_hours: int = 0
    days: int = 0
    dirty_days: list = field(default_factory=list)


def metrics_rollup_all(*, now: datetime | None = None) -> int:
    """The scheduled job: every tenant, each in its own scope. Returns the hours rebuilt."""
    total = 0
    for tenant in Tenant.objects.order_by("pk"):
        with tenant_scope(tenant):
            run = metrics_rollup(tenant=tenant, now=now)
            total += run.output_hours + run.review_hours
    return total


def metrics_rollup(*, tenant: Tenant, now: datetime | None = None) -> RollupRun:
    """Bring one tenant's rollups up to date (see the module's docstring)."""
    now = now or timezone.now()
    state = _state(tenant)
    since = state.watermark - LAG if state.watermark else None
    output_hours, review_hours = _dirty_hours(tenant, since)
    days = sorted({day_of(hour) for hour in output_hours | review_hours})
    run = RollupRun(output_hours=len(output_hours), review_hours=len(review_hours), days=len(days), dirty_days=days)
    for day in days:
        with transaction.atomic():
            RollupState.objects.for_tenant(tenant).select_for_update(no_key=True).get(pk=state.pk)
            outputs_today = sorted(hour for hour in output_hours if day_of(hour) == day)
            reviews_today = sorted(hour for hour in review_hours if day_of(hour) == day)
            if outputs_today:
                _rebuild_output_hours(tenant, outputs_today)
                _rebuild_judge_hours(tenant, outputs_today)
            if reviews_today:
                _rebuild_review_hours(tenant, reviews_today)
            if outputs_today:
                _sum_day(tenant, OutputRollup, day, OUTPUT_SUMS)
                _summarise_output_day(tenant, day)
                _sum_day(tenant, JudgeRollup, day, JUDGE_SUMS)
            if reviews_today:
                _sum_review_day(tenant, day)
    with transaction.atomic():
        locked = RollupState.objects.for_tenant(tenant).select_for_update(no_key=True).get(pk=state.pk)
        if locked.watermark is None or locked.watermark < now:
            locked.watermark = now
        locked.updated_at = timezone.now()
        locked.hours_rebuilt = run.output_hours + run.review_hours
        locked.save(update_fields=["watermark", "updated_at", "hours_rebuilt"])
    return run


def _state(tenant: Tenant) -> RollupState:
    state = RollupState.objects.for_tenant(tenant).first()
    if state is None:
        with transaction.atomic():
            RollupState.objects.for_tenant(tenant).bulk_create([RollupState(tenant=tenant)], ignore_conflicts=True)
        state = RollupState.objects.for_tenant(tenant).get()
    return state


def _hours(queryset, path: str) -> set[datetime]:
    return {
        hour_of(hour)
        for hour in queryset.annotate(_hour=TruncHour(path, tzinfo=UTC))
        .order_by()
        .values_list("_hour", flat=True)
        .distinct()
        if hour is not None
    }


def _dirty_hours(tenant: Tenant, since: datetime | None) -> tuple[set[datetime], set[datetime]]:
    """The hours to rebuild: of the output rollups (by receipt) and of the review rollup."""
    outputs = Output.objects.for_tenant(tenant)
    reviews = Review.objects.for_tenant(tenant).filter(task__isnull=False)
    if since is None:
        return _hours(outputs, "received_at"), _hours(reviews, "created_at")
    judges = list(Judge.objects.for_tenant(tenant).values_list("pk", flat=True))
    recent_reviews = reviews.filter(created_at__gte=since)
    output_hours = (
        _hours(outputs.filter(received_at__gte=since), "received_at")
        | _hours(outputs.filter(decided_at__gte=since), "received_at")
        | _hours(Feedback.objects.for_tenant(tenant).filter(created_at__gte=since), "output__received_at")
        | _hours(ReviewTask.objects.for_tenant(tenant).filter(sla_breached_at__gte=since), "output__received_at")
        | _hours(
            Judgement.objects.for_tenant(tenant).filter(judge_id__in=judges, created_at__gte=since),
            "output__received_at",
        )
        | _hours(recent_reviews, "output__received_at")
    )
    return output_hours, _hours(recent_reviews, "created_at")


def _in_hours(path: str, hours: list[datetime]) -> Q:
    """Rows whose ``path`` falls in one of ``hours`` (each an index range scan)."""
    where = Q()
    for hour in hours:
        where |= Q(**{f"{path}__gte": hour, f"{path}__lt": hour + HOUR})
    return where


def _dims(prefix: str = "") -> dict:
    """The output rollup's dimensions as expressions over an output (``prefix``: the path to it).

    A hybrid tier's mode is per output: whether its reason says sequential is grouped too.
    """
    return {
        "d_hour": TruncHour(f"{prefix}received_at", tzinfo=UTC),
        "d_application": F(f"{prefix}application"),
        "d_tier": F(f"{prefix}risk_tier"),
        "d_model": F(f"{prefix}model"),
        "d_prompt_version": Coalesce(
            KeyTextTransform("prompt_version", f"{prefix}metadata"), Value(""), output_field=TextField()
        ),
        "d_category": Coalesce(KeyTextTransform("category", f"{prefix}metadata"), Value(""), output_field=TextField()),
        "d_policy_version": F(f"{prefix}policy_version"),
        "d_hybrid": Case(
            When(**{f"{prefix}decision_reason__contains": "hybrid: sequential"}, then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        ),
    }


def _text(value, length: int) -> str:
    return "" if value is None else str(value)[:length]


class _Modes:
    """Whether a (policy version, tier) held its outputs for a person (sequential mode)."""

    def __init__(self, tenant: Tenant):
        self.tenant, self.cache = tenant, {}

    def held(self, version, tier: str, hybrid_sequential: bool) -> bool:
        if version is None:
            return False
        key = (version, tier)
        if key not in self.cache:
            try:
                spec = compiled_policy_version(tenant=self.tenant, version=version).tiers.get(tier)
            except NotFoundError:
                spec = None
            self.cache[key] = spec.mode if spec is not None else ""
        mode = self.cache[key]
        return mode == "sequential" or (mode == "hybrid" and bool(hybrid_sequential))


def _rebuild_output_hours(tenant: Tenant, hours: list[datetime]) -> None:
    """The output rollup's hour rows of ``hours``, from the outputs received in them."""
    outputs = Output.objects.for_tenant(tenant).filter(_in_hours("received_at", hours))
    people = Q(decided_by__isnull=False)
    queries = [
        (
            outputs,
            "",
            {
                "outputs": Count("pk"),
                "sampled": Count("pk", filter=Q(review_required=True)),
                "auto_approved": Count("pk", filter=Q(status="auto_approved")),
                "blocked": Count("pk", filter=Q(status="blocked", decided_by__isnull=True)),
                "decided": Count("pk", filter=people & ~Q(decision="")),
                "approved": Count("pk", filter=people & Q(decision=Decision.APPROVED)),
                "rejected": Count("pk", filter=people & Q(decision=Decision.REJECTED)),
                "corrected": Count("pk", filter=people & Q(decision=Decision.CORRECTED)),
            },
        ),
        (
            outputs.filter(
                Exists(Feedback.objects.for_tenant(tenant).filter(output=OuterRef("pk"), rating=Feedback.Rating.DOWN))
            ),
            "",
            {"thumbs_down": Count("pk")},
        ),
        (
            outputs.filter(people, decision__in=ERRORS).filter(
                Exists(
                    Review.objects.for_tenant(tenant).filter(
                        output=OuterRef("pk"),
                        purpose=TaskPurpose.USER_FEEDBACK,
                        decision__in=(Review.Verdict.REJECT, Review.Verdict.CORRECT),
                    )
                )
            ),
            "",
            {"caught_by_feedback": Count("pk")},
        ),
        (
            ReviewTask.objects.for_tenant(tenant).filter(_in_hours("output__received_at", hours)),
            "output__",
            {
                # Tasks that counted against the SLA: done, or found late (not those cancelled in time).
                "tasks": Count("pk", filter=Q(status=TaskStatus.DONE) | Q(sla_breached_at__isnull=False)),
                "tasks_late": Count("pk", filter=Q(sla_breached_at__isnull=False)),
            },
        ),
    ]
    modes = _Modes(tenant)
    merged: dict[tuple, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTPUT_SUMS, 0))
    for queryset, prefix, sums in queries:
        dims = _dims(prefix)
        for row in queryset.annotate(**dims).values(*dims).order_by().annotate(**sums):
            key = (
                hour_of(row["d_hour"]),
                _text(row["d_application"], 100),
                _text(row["d_tier"], 50),
                _text(row["d_model"], 200),
                _text(row["d_prompt_version"], 100),
                _text(row["d_category"], 100),
                modes.held(row["d_policy_version"], row["d_tier"], row["d_hybrid"]),
            )
            for name in sums:
                merged[key][name] += row[name] or 0
    OutputRollup.objects.for_tenant(tenant).filter(grain=Grain.HOUR, bucket__in=hours).delete()
    OutputRollup.objects.for_tenant(tenant).bulk_create(
        [
            OutputRollup(
                tenant=tenant,
                grain=Grain.HOUR,
                bucket=key[0],
                application=key[1],
                tier=key[2],
                model=key[3],
                prompt_version=key[4],
                category=key[5],
                held=key[6],
                **counts,
            )
            for key, counts in merged.items()
        ],
        batch_size=1000,
    )


def _rebuild_judge_hours(tenant: Tenant, hours: list[datetime]) -> None:
    people = Q(output__decided_by__isnull=False) & ~Q(output__decision="")
    error = people & Q(output__decision__in=ERRORS)
    passed, failed = Q(result="pass"), Q(result="fail")
    rows = (
        Judgement.objects.for_tenant(tenant)
        .filter(_in_hours("output__received_at", hours))
        .annotate(d_hour=TruncHour("output__received_at", tzinfo=UTC))
        .values("d_hour", "judge_id", "judge_version")
        .order_by()
        .annotate(
            judged=Count("pk"),
            failed=Count("pk", filter=failed),
            unsure=Count("pk", filter=Q(unsure=True)),
            decided=Count("pk", filter=people),
            errors=Count("pk", filter=error),
            passed_decided=Count("pk", filter=passed & people),
            passed_errors=Count("pk", filter=passed & error),
            failed_decided=Count("pk", filter=failed & people),
            failed_errors=Count("pk", filter=failed & error),
        )
    )
    built = []
    for row in rows:
        hour = hour_of(row.pop("d_hour"))
        built.append(JudgeRollup(tenant=tenant, grain=Grain.HOUR, bucket=hour, **row))
    JudgeRollup.objects.for_tenant(tenant).filter(grain=Grain.HOUR, bucket__in=hours).delete()
    JudgeRollup.objects.for_tenant(tenant).bulk_create(built, batch_size=1000)


def _rebuild_review_hours(tenant: Tenant, hours: list[datetime]) -> None:
    """The review rollup's hour rows of ``hours``, from the reviews made in them."""
    reviews = (
        Review.objects.for_tenant(tenant)
        .filter(_in_hours("created_at", hours), task__isnull=False)
        .annotate(
            d_hour=TruncHour("created_at", tzinfo=UTC),
            d_queue=F("task__queue_id"),
            d_category=Coalesce(KeyTextTransform("category", "output__metadata"), Value(""), output_field=TextField()),
        )
        .order_by()
    )
    keys = ("d_hour", "reviewer_id", "d_queue", "d_category")
    verdict = Review.Verdict
    late = Q(task__sla_breached_at__isnull=False, task__sla_breached_at__lte=F("created_at"))

    def key_of(row) -> tuple:
        return (hour_of(row["d_hour"]), row["reviewer_id"], row["d_queue"], _text(row["d_category"], 100))

    merged: dict[tuple, dict] = {}
    for row in reviews.values(*keys).annotate(
        reviews=Count("pk"),
        approves=Count("pk", filter=Q(decision=verdict.APPROVE)),
        rejects=Count("pk", filter=Q(decision=verdict.REJECT)),
        corrects=Count("pk", filter=Q(decision=verdict.CORRECT)),
        escalates=Count("pk", filter=Q(decision=verdict.ESCALATE)),
        late=Count("pk", filter=late),
        timed=Count("time_spent_seconds"),
        time_total=Coalesce(Sum("time_spent_seconds"), 0),
    ):
        merged[key_of(row)] = {name: row[name] for name in REVIEW_SUMS} | {"time_histogram": defaultdict(int)}
    for row in (
        reviews.filter(time_spent_seconds__isnull=False).values(*keys, "time_spent_seconds").annotate(n=Count("pk"))
    ):
        merged[key_of(row)]["time_histogram"][histograms.bin_of(row["time_spent_seconds"])] += row["n"]
    ReviewRollup.objects.for_tenant(tenant).filter(grain=Grain.HOUR, bucket__in=hours).delete()
    ReviewRollup.objects.for_tenant(tenant).bulk_create(
        [
            ReviewRollup(
                tenant=tenant,
                grain=Grain.HOUR,
                bucket=key[0],
                reviewer_id=key[1],
                queue_id=key[2],
                category=key[3],
                **{name: values[name] for name in REVIEW_SUMS},
                time_histogram=histograms.stored(values["time_histogram"]),
            )
            for key, values in merged.items()
        ],
        batch_size=1000,
    )


def _dimension_names(model) -> list[str]:
    skip = {"id", "tenant", "grain", "bucket", "time_histogram"}
    return [
        f.attname
        for f in model._meta.concrete_fields
        if f.name not in skip and f.attname not in skip and f.name not in (*OUTPUT_SUMS, *JUDGE_SUMS, *REVIEW_SUMS)
    ]


def _sum_day(tenant: Tenant, model, day: datetime, sums: tuple[str, ...]) -> None:
    names = _dimension_names(model)
    rows = (
        model.objects.for_tenant(tenant)
        .filter(grain=Grain.HOUR, bucket__gte=day, bucket__lt=day + DAY)
        .values(*names)
        .order_by()
        .annotate(**{f"s_{name}": Sum(name) for name in sums})
    )
    built = [
        model(
            tenant=tenant,
            grain=Grain.DAY,
            bucket=day,
            **{name: row[name] for name in names},
            **{name: row[f"s_{name}"] for name in sums},
        )
        for row in rows
    ]
    model.objects.for_tenant(tenant).filter(grain=Grain.DAY, bucket=day).delete()
    model.objects.for_tenant(tenant).bulk_create(built)


def _sum_review_day(tenant: Tenant, day: datetime) -> None:
    """The review rollup's day rows from its hour rows, then the day's summaries (one row per
    scope key: the tenant, each reviewer, each queue, each category) from those day rows."""
    names = _dimension_names(ReviewRollup)
    merged: dict[tuple, dict] = {}
    for row in (
        ReviewRollup.objects.for_tenant(tenant)
        .filter(grain=Grain.HOUR, bucket__gte=day, bucket__lt=day + DAY)
        .values(*names, *REVIEW_SUMS, "time_histogram")
    ):
        key = tuple(row[name] for name in names)
        into = merged.setdefault(key, dict.fromkeys(REVIEW_SUMS, 0) | {"time_histogram": []})
        for name in REVIEW_SUMS:
            into[name] += row[name]
        into["time_histogram"].append(row["time_histogram"])
    days = {
        key: values | {"time_histogram": histograms.merge(values["time_histogram"])} for key, values in merged.items()
    }
    ReviewRollup.objects.for_tenant(tenant).filter(grain=Grain.DAY, bucket=day).delete()
    ReviewRollup.objects.for_tenant(tenant).bulk_create(
        [
            ReviewRollup(
                tenant=tenant,
                grain=Grain.DAY,
                bucket=day,
                **dict(zip(names, key, strict=True)),
                **{name: values[name] for name in REVIEW_SUMS},
                time_histogram=histograms.stored(values["time_histogram"]),
            )
            for key, values in days.items()
        ]
    )
    _summarise_review_day(tenant, day, [dict(zip(names, key, strict=True)) | values for key, values in days.items()])


SUMMARY_KEYS = {  # scope -> the fine row's columns that make its key
    SummaryScope.ALL: (),
    SummaryScope.REVIEWER: ("reviewer_id",),
    SummaryScope.QUEUE: ("queue_id",),
    SummaryScope.CATEGORY: ("category",),
}


def _summarise_review_day(tenant: Tenant, day: datetime, rows: list[dict]) -> None:
    """One day's ``ReviewDaySummary`` rows from its fine day rows (``rows``: columns, sums, merged histogram)."""
    built = []
    for scope, columns in SUMMARY_KEYS.items():
        sums: dict[tuple, dict] = {}
        for row in rows:
            key = tuple(row[column] for column in columns)
            into = sums.setdefault(key, dict.fromkeys(REVIEW_SUMS, 0) | {"time_histogram": defaultdict(int)})
            for name in REVIEW_SUMS:
                into[name] += row[name]
            for index, count in row["time_histogram"].items():
                into["time_histogram"][index] += count
        for key, values in sums.items():
            built.append(
                ReviewDaySummary(
                    tenant=tenant,
                    scope=scope,
                    bucket=day,
                    **dict(zip(columns, key, strict=True)),
                    **{name: values[name] for name in REVIEW_SUMS},
                    time_histogram=histograms.dense(values["time_histogram"]),
                )
            )
    ReviewDaySummary.objects.for_tenant(tenant).filter(bucket=day).delete()
    ReviewDaySummary.objects.for_tenant(tenant).bulk_create(built, batch_size=1000)


OUTPUT_SUMMARY_SUMS = (*OUTPUT_SUMS, "held_rejected", "held_corrected")


def _summarise_output_day(tenant: Tenant, day: datetime) -> None:
    """One day's ``OutputDaySummary`` rows from its output day rows: one per value of each dimension."""
    rows = list(
        OutputRollup.objects.for_tenant(tenant)
        .filter(grain=Grain.DAY, bucket=day)
        .values("application", "tier", "model", "prompt_version", "category", "held", *OUTPUT_SUMS)
    )
    built = []
    for scope in OutputSummaryScope:
        sums: dict[str, dict[str, int]] = {}
        for row in rows:
            key = "" if scope == OutputSummaryScope.ALL else row[scope.value]
            into = sums.setdefault(key, dict.fromkeys(OUTPUT_SUMMARY_SUMS, 0))
            for name in OUTPUT_SUMS:
                into[name] += row[name]
            if row["held"]:
                into["held_rejected"] += row["rejected"]
                into["held_corrected"] += row["corrected"]
        built.extend(
            OutputDaySummary(tenant=tenant, scope=scope, bucket=day, key=key, **counts) for key, counts in sums.items()
        )
    OutputDaySummary.objects.for_tenant(tenant).filter(bucket=day).delete()
    OutputDaySummary.objects.for_tenant(tenant).bulk_create(built, batch_size=1000)
