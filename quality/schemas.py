"""Request and response shapes of the quality layer's API; drf-spectacular publishes the same models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from hitl.schemas import PositiveJsonInt, ResponseModel, integral
from policies.schemas import ApplicationName
from policies.schemas import Name as TierName
from quality import metrics

Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Reason = Annotated[str, StringConstraints(max_length=2000)]
ExpectedDecision = Literal["approve", "reject", "correct"]


class GoldenSetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name = Field(description="Unique in the tenant.")
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    queue: Name | None = Field(None, description="The queue whose exams and live gold it feeds (by name).")
    skill: Name | None = Field(None, description="Or a skill: every queue requiring it uses the set.")


class GoldenSetOut(ResponseModel):
    id: int
    name: str
    description: str
    queue: str | None
    skill: str | None
    version: int = Field(description="Each change of its items makes a new version; 0 while empty.")
    items: int = Field(description="Items in the current version.")
    created_at: datetime
    updated_at: datetime


class GoldenSetList(ResponseModel):
    results: list[GoldenSetOut]


class GoldItemLine(BaseModel):
    """One line of a JSONL import (and of an export, with ``id`` and versions added)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    application: ApplicationName
    input: str | list[Any] | dict[str, Any] = Field(description="What the model was asked.")
    output: Annotated[str, StringConstraints(max_length=1_000_000)]
    trace: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    model: Annotated[str, StringConstraints(max_length=200)] = ""
    confidence: Annotated[float, Field(ge=0, le=1)] | None = None
    rubric: Name | None = Field(None, description="The rubric the expected scores follow (by name).")
    rubric_version: Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(integral)] | None = Field(
        None, description="Default: its current version."
    )
    expected_decision: ExpectedDecision
    expected_scores: dict[str, Any] = {}
    expected_output: Annotated[str, StringConstraints(max_length=1_000_000)] = Field(
        "", description="The correction, required when the expected decision is correct."
    )
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class GoldItemOut(ResponseModel):
    id: UUID
    added_in: int
    removed_in: int | None
    source_output: UUID | None
    application: str
    input: Any
    output: str
    trace: list[Any]
    metadata: dict[str, Any]
    model: str
    confidence: float | None
    rubric: str | None
    rubric_version: int | None
    expected_decision: str
    expected_scores: dict[str, Any]
    expected_output: str
    note: str
    created_at: datetime


class GoldItemList(ResponseModel):
    version: int
    results: list[GoldItemOut]


class PromoteIn(BaseModel):
    """Promote a reviewed output; the expected answer defaults to its decision and the deciding review's scores."""

    model_config = ConfigDict(extra="forbid", strict=True)

    output_id: Annotated[UUID, Field(strict=False)]
    expected_decision: ExpectedDecision | None = None
    expected_scores: dict[str, Any] | None = None
    expected_output: Annotated[str, StringConstraints(max_length=1_000_000)] | None = None
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class GoldImportResult(ResponseModel):
    golden_set: int
    version: int
    imported: int


class CertificationOut(ResponseModel):
    id: int
    person: str
    person_id: int
    queue: str
    queue_id: int
    status: Literal["active", "expired", "suspended", "revoked"] = Field(
        description="As the claim reads it: an active one past valid_until is expired."
    )
    valid_from: datetime
    valid_until: datetime
    expiring: bool = Field(description="Active and ending within 14 days.")
    status_reason: str
    status_changed_at: datetime


class CertificationList(ResponseModel):
    results: list[CertificationOut]


class CertificationChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: Reason = ""


class ExamOut(ResponseModel):
    id: UUID
    person: str
    person_id: int
    queue: str
    queue_id: int
    status: Literal["in_progress", "passed", "failed", "cancelled"]
    items_total: int
    items_answered: int
    items_correct: int | None = Field(description="Shown once the exam is over.")
    score: float | None
    pass_mark: float
    golden_set: int
    golden_set_version: int
    started_at: datetime
    finished_at: datetime | None


class ExamList(ResponseModel):
    results: list[ExamOut]


class ExamStartIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    queue: Name = Field(description="The queue to qualify for (by name).")


class QueueCertificationRules(BaseModel):
    """A queue's certification rules (defaults: off, 20 items, 80 %, 180 days, no live gold, 20 answers, 70 %)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    requires_certification: bool = False
    exam_items: Annotated[int, Field(ge=1, le=500), BeforeValidator(integral)] = 20
    exam_pass_mark: Annotated[float, Field(ge=0, le=1)] = 0.8
    certification_days: Annotated[int, Field(ge=1, le=3650), BeforeValidator(integral)] = 180
    gold_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    gold_window: Annotated[int, Field(ge=1, le=1000), BeforeValidator(integral)] = 20
    gold_threshold: Annotated[float, Field(ge=0, le=1)] = 0.7


class QueueCertificationOut(QueueCertificationRules):
    model_config = ConfigDict(extra="forbid", from_attributes=True)

    queue: str


class RecertificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)] = Field(
        description="Why everyone must pass the exam again (a rubric's new version, say)."
    )


class RecertificationOut(ResponseModel):
    queue: str
    expired: int


JsonObject = dict[str, Any]
Decision = Literal["approve", "reject", "correct"]


class CalibrationSessionIn(BaseModel):
    """A new calibration session: the outputs to score (in order), the rubric (its current
    version is used), and the people invited (user ids of reviewers, quality leads or admins)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    rubric: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    outputs: list[Annotated[UUID, Field(strict=False)]] = Field(
        min_length=1, max_length=200, description="Output ids, in the order shown."
    )
    participants: list[PositiveJsonInt] = Field(min_length=2, max_length=100, description="User ids to invite.")


class CalibrationAnswerIn(BaseModel):
    """A participant's answer on one item (sending again replaces it, while the session is open)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    item: PositiveJsonInt
    decision: Decision
    scores: JsonObject = Field(default_factory=dict, description="Against the session's rubric version.")
    comment: Annotated[str, StringConstraints(max_length=10_000)] = ""


class CalibrationParticipantOut(ResponseModel):
    id: int
    username: str
    answered: int = Field(description="How many items they answered (their answers stay hidden until closed).")


class CalibrationSessionOut(ResponseModel):
    id: int
    name: str
    rubric: str
    rubric_version: int
    status: Literal["open", "closed"]
    created_at: datetime
    closed_at: datetime | None
    items: int
    participants: list[CalibrationParticipantOut]

    @classmethod
    def of(cls, session, participants: list[dict], items: int) -> CalibrationSessionOut:
        return cls(
            id=session.pk,
            name=session.name,
            rubric=session.rubric.name,
            rubric_version=session.rubric_version,
            status=session.status,
            created_at=session.created_at,
            closed_at=session.closed_at,
            items=items,
            participants=[CalibrationParticipantOut(**person) for person in participants],
        )


class CalibrationSessionList(ResponseModel):
    results: list[CalibrationSessionOut]


class CalibrationAnswerOut(ResponseModel):
    item: int
    decision: Decision
    scores: JsonObject
    comment: str
    updated_at: datetime


class CalibrationWorkItem(ResponseModel):
    """An item as a participant scores it: the output, and only their own answer."""

    item: int
    position: int
    output_id: UUID
    external_id: str
    application: str
    input: Any
    output: str
    answer: CalibrationAnswerOut | None


class CalibrationWork(ResponseModel):
    session: CalibrationSessionOut
    criteria: list[JsonObject] = Field(description="The rubric version's criteria.")
    items: list[CalibrationWorkItem]


class CalibrationResultAnswer(ResponseModel):
    reviewer: str
    decision: Decision
    scores: JsonObject
    comment: str


class CalibrationResultItem(ResponseModel):
    item: int
    position: int
    output_id: UUID
    external_id: str
    answers: list[CalibrationResultAnswer | None] = Field(description="One entry a participant, in their order.")
    disagreements: list[str] = Field(description="The decision and criteria on which the answers differ.")
    gold: JsonObject | None = Field(description="The gold answer, when the output is a gold item.")


class CriterionAgreementOut(ResponseModel):
    """Agreement on one criterion: Krippendorff's alpha at the level of its kind, Fleiss' kappa for
    nominal ones when every unit has as many ratings; ``low`` when alpha is below the threshold."""

    key: str
    label: str
    kind: str
    level: Literal["nominal", "ordinal", "interval", "ratio"]
    units: int
    ratings: int
    alpha: float | None
    fleiss_kappa: float | None
    percent_agreement: float | None
    threshold: float
    low: bool


class CalibrationResults(ResponseModel):
    session: CalibrationSessionOut
    participants: list[str]
    items: list[CalibrationResultItem] = Field(description="Items whose answers differ first.")
    agreement: list[CriterionAgreementOut]


class AgreementReportOut(ResponseModel):
    """Agreement per criterion over production overlap reviews (outputs reviewed more than once)."""

    start: datetime
    end: datetime
    queue: str | None
    threshold: float = Field(description="Krippendorff's alpha below which a criterion is flagged low.")
    min_units: int = Field(description="Fewer pairable outputs than this are never flagged.")
    criteria: list[CriterionAgreementOut]


class PairAgreementOut(ResponseModel):
    reviewer_a: str
    reviewer_b: str
    criterion: str
    units: int
    percent_agreement: float
    kappa: float | None = Field(description="Cohen's kappa (quadratic weights for graded criteria).")
    weights: Literal["quadratic"] | None


class PairAgreementList(ResponseModel):
    start: datetime
    end: datetime
    results: list[PairAgreementOut]


class JudgeFlagOut(ResponseModel):
    id: int
    judge_version: int
    kappa: float | None
    agreement_rate: float | None
    compared: int
    threshold: float
    sample_rate: float | None
    flagged_at: datetime
    cleared_at: datetime | None
    cleared_by: str | None
    cleared_note: str

    @classmethod
    def of(cls, flag) -> JudgeFlagOut:
        return cls(
            id=flag.pk,
            judge_version=flag.judge_version,
            kappa=flag.kappa,
            agreement_rate=flag.agreement_rate,
            compared=flag.compared,
            threshold=flag.threshold,
            sample_rate=flag.sample_rate,
            flagged_at=flag.flagged_at,
            cleared_at=flag.cleared_at,
            cleared_by=flag.cleared_by.get_username() if flag.cleared_by_id else None,
            cleared_note=flag.cleared_note,
        )


class JudgeVersionAgreementOut(ResponseModel):
    judge: int
    judge_name: str
    version: int
    compared: int
    errors: int
    both_pass: int
    judge_pass_human_fail: int
    judge_fail_human_pass: int
    both_fail: int
    percent_agreement: float | None
    kappa: float | None
    flag: JudgeFlagOut | None = Field(description="The judge's open flag, on the row of the version flagged.")


class JudgeAgreementList(ResponseModel):
    start: datetime
    end: datetime
    threshold: float = Field(description="Cohen's kappa below which a judge version is flagged.")
    results: list[JudgeVersionAgreementOut]


class JudgeFlagClearIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    note: Annotated[str, StringConstraints(max_length=2000)] = ""


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
    def of(cls, figures: metrics.OutputFigures | None) -> OutputMetrics | None:
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
    def of(cls, figures: metrics.ReviewFigures | None) -> ReviewMetrics | None:
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
    def of(cls, figures: metrics.JudgeFigures | None) -> JudgeMetrics | None:
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
    def of(cls, group: metrics.Group) -> MetricsGroup:
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
    def of(cls, report: metrics.Report) -> MetricsReport:
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


# RFC 3339 date-time (OpenAPI's ``format: date-time``): an offset is required, and a number is not
# a time (pydantic alone would read "0.5" as seconds since 1970).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value):
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        # A type error of the published schema (format: date-time), so a 400 like any malformed value.
        raise PydanticCustomError(
            "datetime_parsing", "Input should be an RFC 3339 date-time with an offset, e.g. 2026-01-01T00:00:00Z"
        )
    return value


Instant = Annotated[datetime, BeforeValidator(_rfc3339)]
DatasetFormat = Literal["chat", "preference"]
DatasetDecision = Literal["approved", "corrected"]


class DatasetQuery(BaseModel):
    """``GET /api/v1/datasets/fine-tuning``'s query: which reviewed outputs, in which format."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    format: DatasetFormat = Field(
        default="chat",
        description="chat: supervised examples ({messages}); preference: pairs of the correction over the "
        "original ({input, preferred_output, non_preferred_output}).",
    )
    start: Instant | None = Field(default=None, alias="from", description="Received at or after (RFC 3339).")
    end: Instant | None = Field(default=None, alias="to", description="Received before (RFC 3339).")
    application: Annotated[list[ApplicationName], Field(max_length=100)] = Field(default_factory=list)
    tier: Annotated[list[TierName], Field(max_length=20)] = Field(default_factory=list)
    decision: Annotated[list[DatasetDecision], Field(max_length=2)] = Field(
        default_factory=list,
        description="chat: approved and/or corrected (default corrected); preference: corrected only.",
    )

    @model_validator(mode="after")
    def _coherent(self):
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("to must be later than from")
        if self.format == "preference" and set(self.decision) - {"corrected"}:
            raise ValueError("preference pairs are made of corrected outputs only")
        return self
