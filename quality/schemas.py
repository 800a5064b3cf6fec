"""The quality layer's API models: drf-spectacular publishes these, and the views build the
bodies from them (house style rule 20)."""

from datetime import datetime

from pydantic import ConfigDict, Field

from hitl.schemas import ResponseModel
from quality import metrics


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


class OutputMetrics(ResponseModel):
    """What became of the outputs received in the period (by their time of receipt)."""

    outputs: int = Field(description="Outputs received.")
    sampled: int = Field(description="Sent to people (review required).")
    auto_approved: int = Field(description="Delivered without a person.")
    decided: int = Field(description="Decided by people.")
    approved: int
    rejected: int
    corrected: int
    errors: int = Field(description="Rejected or corrected by people.")
    error_rate: float | None = Field(description="errors / decided; null when nothing was decided.")
    tasks: int = Field(description="Review tasks that counted against the SLA (done, or found late).")
    tasks_late: int = Field(description="Tasks the SLA sweep found still open past their due time.")
    sla_compliance: float | None = Field(description="1 - tasks_late / tasks; null without tasks.")
    blocked_automatically: int = Field(description="Blocked without a person: a judge, or the stop button.")
    stopped_before_delivery: int = Field(
        description="Never delivered: blocked automatically, or held for a person (sequential) and rejected."
    )
    corrected_before_delivery: int = Field(description="Held for a person (sequential) and corrected.")
    thumbs_down: int = Field(description="Outputs with an end user's thumbs-down.")
    caught_by_feedback: int = Field(
        description="Rejected or corrected by the person an end user's thumbs-down sent the output to."
    )

    @classmethod
    def of(cls, figures: "metrics.OutputFigures | None") -> "OutputMetrics | None":
        if figures is None:
            return None
        return cls(
            outputs=figures.outputs,
            sampled=figures.sampled,
            auto_approved=figures.auto_approved,
            decided=figures.decided,
            approved=figures.approved,
            rejected=figures.rejected,
            corrected=figures.corrected,
            errors=figures.errors,
            error_rate=_rate(figures.error_rate),
            tasks=figures.tasks,
            tasks_late=figures.tasks_late,
            sla_compliance=_rate(figures.sla_compliance),
            blocked_automatically=figures.blocked,
            stopped_before_delivery=figures.stopped_before_delivery,
            corrected_before_delivery=figures.held_corrected,
            thumbs_down=figures.thumbs_down,
            caught_by_feedback=figures.caught_by_feedback,
        )


class ReviewMetrics(ResponseModel):
    """People's reviews made in the period (by their time)."""

    reviews: int
    approves: int
    rejects: int
    corrects: int
    escalates: int
    modification_rate: float | None = Field(description="corrects / reviews.")
    escalation_rate: float | None = Field(description="escalates / reviews.")
    late: int = Field(description="Reviews of tasks the SLA sweep had already found late.")
    time_median_seconds: float | None = Field(
        description="Median time spent, from log-spaced bins (exact below 16 s, else within about 2.2 %)."
    )
    time_p90_seconds: float | None = Field(description="90th percentile of time spent, as the median.")
    throughput_per_day: float | None = Field(description="Reviews per day of the period (of the group's day).")
    reviews_per_hour: float | None = Field(description="Timed reviews per hour of time spent on them.")

    @classmethod
    def of(cls, figures: "metrics.ReviewFigures | None") -> "ReviewMetrics | None":
        if figures is None:
            return None
        return cls(
            reviews=figures.reviews,
            approves=figures.approves,
            rejects=figures.rejects,
            corrects=figures.corrects,
            escalates=figures.escalates,
            modification_rate=_rate(figures.modification_rate),
            escalation_rate=_rate(figures.escalation_rate),
            late=figures.late,
            time_median_seconds=_rate(figures.time_median),
            time_p90_seconds=_rate(figures.time_p90),
            throughput_per_day=_rate(figures.throughput_per_day),
            reviews_per_hour=_rate(figures.reviews_per_hour),
        )


class JudgeMetrics(ResponseModel):
    """The judges' verdicts on the outputs received in the period, against people's decisions."""

    judged: int
    failed: int
    unsure: int
    fail_rate: float | None = Field(description="failed / judged.")
    decided: int = Field(description="Judged outputs that people decided.")
    errors: int = Field(description="Of those, rejected or corrected by people.")
    error_rate: float | None = Field(description="errors / decided.")
    miss_rate: float | None = Field(
        description="Of the outputs the judge passed that people decided, the share people rejected or corrected."
    )
    precision: float | None = Field(
        description="Of the outputs the judge failed that people decided, the share people rejected or corrected."
    )

    @classmethod
    def of(cls, figures: "metrics.JudgeFigures | None") -> "JudgeMetrics | None":
        if figures is None:
            return None
        return cls(
            judged=figures.judged,
            failed=figures.failed,
            unsure=figures.unsure,
            fail_rate=_rate(figures.fail_rate),
            decided=figures.decided,
            errors=figures.errors,
            error_rate=_rate(figures.error_rate),
            miss_rate=_rate(figures.miss_rate),
            precision=_rate(figures.precision),
        )


class MetricsGroup(ResponseModel):
    key: dict[str, str] = Field(
        description="The group's value of each `group_by` dimension (a day as YYYY-MM-DD; reviewers, queues and "
        "judges by name); empty for the totals."
    )
    outputs: OutputMetrics | None = Field(description="Null when the grouping does not apply (reviewer, queue, judge).")
    reviews: ReviewMetrics | None = Field(
        description="Null when the grouping does not apply (tier, application, model, prompt_version, judge)."
    )
    judges: JudgeMetrics | None = Field(description="Null unless grouped by judge or day, or in the totals.")

    @classmethod
    def of(cls, group: "metrics.Group") -> "MetricsGroup":
        return cls(
            key=group.key,
            outputs=OutputMetrics.of(group.outputs),
            reviews=ReviewMetrics.of(group.reviews),
            judges=JudgeMetrics.of(group.judges),
        )


class MetricsReport(ResponseModel):
    """The metrics of seed 001 Table 1 for a period, from the rollups."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    group_by: list[str]
    rollup_watermark: datetime | None = Field(
        description="How current the rollups are: changes up to a few minutes before this instant are counted "
        "(null: the rollup job has not run yet for this tenant)."
    )
    totals: MetricsGroup
    groups: list[MetricsGroup] = Field(description="One per group, ordered by key; empty without `group_by`.")

    @classmethod
    def of(cls, report: "metrics.Report") -> "MetricsReport":
        return cls.model_validate(
            {
                "from": report.start,
                "to": report.end,
                "group_by": list(report.group_by),
                "rollup_watermark": report.watermark,
                "totals": MetricsGroup.of(report.totals),
                "groups": [MetricsGroup.of(group) for group in report.groups],
            }
        )
