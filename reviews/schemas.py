"""The shapes of submitted outputs, validated at the edge with pydantic.

pydantic validates in compiled code (a few microseconds an item), which the
ingest hot path needs, reports errors by field path, and gives drf-spectacular
the same schema the API enforces.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from hitl.schemas import ResponseModel, integral
from policies.schemas import ApplicationName

# Bodies arrive through a JSON parser, so nested values are JSON already; ``Any``
# keeps validation in compiled code (pydantic's JsonValue walks every node in Python).
JsonObject = dict[str, Any]
JsonInput = str | list[Any] | JsonObject

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class OutputSubmission(BaseModel):
    """One LLM output as a service submits it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    external_id: ExternalId = Field(description="The service's own id; submission is idempotent on it.")
    application: ApplicationName = Field(description="Which LLM application produced the output.")
    input: JsonInput = Field(description="What the model was asked: a string, a list of messages or an object.")
    output: Annotated[str, StringConstraints(max_length=1_000_000)] = Field(description="The model's output text.")
    trace: list[JsonObject] = Field(
        default_factory=list,
        max_length=10_000,
        description="Steps that led to the output: prompts, retrieved context, tool calls.",
    )
    metadata: JsonObject = Field(default_factory=dict, description="Free key/value data for routing.")
    model: Annotated[str, StringConstraints(max_length=200)] = Field(default="", description="Model name.")
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        default=None, description="The model's confidence, 0 to 1."
    )


class OutputBatchSubmission(BaseModel):
    """Up to 1000 outputs in one call."""

    model_config = ConfigDict(extra="forbid")

    items: list[Any] = Field(
        min_length=1,
        max_length=1000,
        description="Each an output as POST /api/v1/outputs takes it (OutputSubmission). Items are checked one "
        "by one: an item that is not a valid submission (or not an object) is reported in its result "
        "(outcome invalid, status_code 400) and not stored, and the rest go on.",
    )


class OutputReceipt(ResponseModel):
    """What a service learns at once about a submitted output."""

    id: UUID
    external_id: str
    application: str
    status: str
    risk_tier: str | None
    review_required: bool
    delivery: Literal["deliver", "hold", "block"]
    policy_version: int | None
    received_at: datetime

    @classmethod
    def fields_of(cls, row: Mapping) -> dict:
        """The receipt's fields from a receipt row of the ingest service or an Output's ``__dict__``."""
        return {
            "id": row["id"],
            "external_id": row["external_id"],
            "application": row["application"],
            "status": row["status"],
            "risk_tier": row["risk_tier"] or None,
            "review_required": row["review_required"],
            "delivery": row["delivery"],
            "policy_version": row["policy_version"],
            "received_at": row["received_at"],
        }

    @classmethod
    def of(cls, row: Mapping) -> Self:
        return cls(**cls.fields_of(row))


class JudgementOut(ResponseModel):
    """One judge's verdict on the output."""

    judge: str = Field(description="The judge's name.")
    judge_id: int
    judge_version: int
    kind: str
    result: Literal["pass", "fail", "error"] = Field(
        description="error: the judge could not answer (counts as unsure)."
    )
    score: float | None = Field(description="0 to 1, 1 meaning good.")
    unsure: bool
    rationale: str
    latency_ms: float
    attempts: int
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    model: str
    created_at: datetime

    @classmethod
    def of(cls, judgement) -> Self:
        return cls(
            judge=judgement.judge.name,
            judge_id=judgement.judge_id,
            judge_version=judgement.judge_version,
            kind=judgement.judge.kind,
            result=judgement.result,
            score=judgement.score,
            unsure=judgement.unsure,
            rationale=judgement.rationale,
            latency_ms=judgement.latency_ms,
            attempts=judgement.attempts,
            prompt_tokens=judgement.prompt_tokens,
            completion_tokens=judgement.completion_tokens,
            cost=None if judgement.cost is None else float(judgement.cost),
            model=judgement.model,
            created_at=judgement.created_at,
        )


class OutputDetail(OutputReceipt):
    """An output with everything it was submitted with and, once decided, the decision."""

    decision: Literal["approved", "rejected", "corrected"] | None
    final_output: str | None
    decided_by: str | None
    decided_at: datetime | None

    input: JsonInput
    output: str
    trace: list[JsonObject]
    metadata: JsonObject
    model: str
    confidence: float | None
    decision_reason: str
    judged_at: datetime | None = Field(description="When the judges' verdicts completed the sampling decision.")
    judgements: list[JudgementOut] = Field(description="The automated judges' verdicts, by judge name.")

    @classmethod
    def of(cls, output, judgements=()) -> Self:
        return cls(
            **OutputReceipt.fields_of(output.__dict__),
            input=output.input,
            output=output.output,
            trace=output.trace,
            metadata=output.metadata,
            model=output.model,
            confidence=output.confidence,
            decision_reason=output.decision_reason,
            decision=output.decision or None,
            final_output=output.final_output,
            decided_by=output.decided_by.get_username() if output.decided_by_id else None,
            decided_at=output.decided_at,
            judged_at=output.judged_at,
            judgements=[JudgementOut.of(judgement) for judgement in judgements],
        )


class OutputSummary(OutputReceipt):
    """An output in a list: no bodies or traces."""

    metadata: JsonObject
    model: str
    confidence: float | None

    @classmethod
    def of(cls, output) -> Self:
        return cls(
            **OutputReceipt.fields_of(output.__dict__),
            metadata=output.metadata,
            model=output.model,
            confidence=output.confidence,
        )


class OutputPage(ResponseModel):
    """One page of outputs; follow ``next`` (an opaque cursor URL) for the following page."""

    next: str | None
    previous: str | None
    results: list[OutputSummary]


class BatchItemError(ResponseModel):
    code: str
    message: str
    fields: dict[str, list[str]] | None = None


class BatchItemResult(ResponseModel):
    """The outcome of one item: ``created`` (201), ``existing`` (200), ``conflict`` (409), ``invalid`` (400)."""

    index: int
    outcome: Literal["created", "existing", "conflict", "invalid"]
    status_code: Literal[200, 201, 400, 409]
    output: OutputReceipt | None = None
    error: BatchItemError | None = None


class OutputBatchResult(ResponseModel):
    results: list[BatchItemResult]
    created: int
    existing: int
    conflicts: int
    invalid: int


# Review workflow ----------------------------------------------------------


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    queue: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        default=None, description="Claim only from this queue."
    )


class ReviewSubmission(BaseModel):
    """A reviewer's judgment on the task they hold."""

    model_config = ConfigDict(extra="forbid", strict=True)

    decision: Literal["approve", "reject", "correct", "escalate"]
    scores: dict[str, Any] = Field(default_factory=dict, description="Criterion key to score, per the task's rubric.")
    corrected_output: Annotated[str, StringConstraints(min_length=1, max_length=1_000_000)] | None = Field(
        default=None, description="Required when the decision is correct."
    )
    comment: Annotated[str, StringConstraints(max_length=10_000)] = Field(
        default="", description="Required when escalating: why."
    )
    time_spent_seconds: Annotated[int, Field(ge=0, le=86_400), BeforeValidator(integral)] | None = None


class FeedbackSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    rating: Literal["up", "down"]
    comment: Annotated[str, StringConstraints(max_length=5000)] = ""


class FeedbackReceipt(ResponseModel):
    id: int
    output_id: UUID
    rating: str
    review_task_created: bool


class RubricShown(ResponseModel):
    name: str
    version: int
    criteria: list[JsonObject]


class TaskOutput(ResponseModel):
    id: UUID
    external_id: str
    application: str
    input: JsonInput
    output: str
    trace: list[JsonObject]
    metadata: JsonObject
    model: str
    confidence: float | None
    risk_tier: str | None
    policy_version: int | None
    decision_reason: str
    received_at: datetime


class TaskOut(ResponseModel):
    """A leased task with everything the reviewer needs to judge it."""

    id: UUID
    queue: str
    purpose: Literal["approval", "overlap", "user_feedback"]
    status: str
    level_required: int
    due_at: datetime
    lease_expires_at: datetime | None
    escalation_reason: str
    rubric: RubricShown | None
    output: TaskOutput
    judgements: list[JudgementOut] = Field(description="The automated judges' verdicts on the output.")

    @classmethod
    def of(cls, task: Mapping, criteria: list | None, judgements=()) -> Self:
        """From a task as the claim (or ``reviews.selectors.task_details``) returns it, and its rubric's criteria."""
        output = task["output"]
        return cls(
            id=task["id"],
            queue=task["queue"],
            purpose=task["purpose"],
            status=task["status"],
            level_required=task["level_required"],
            due_at=task["due_at"],
            lease_expires_at=task["lease_expires_at"],
            escalation_reason=task["escalation_reason"],
            rubric=RubricShown(name=task["rubric_name"], version=task["rubric_version"], criteria=criteria)
            if task["rubric_id"]
            else None,
            output=TaskOutput(**{**output, "risk_tier": output["risk_tier"] or None}),
            judgements=[JudgementOut.of(judgement) for judgement in judgements],
        )


class ReviewOut(ResponseModel):
    id: UUID
    task_id: UUID
    decision: str
    scores: JsonObject
    corrected_output: str
    comment: str
    rubric_version: int | None
    created_at: datetime


class OutputDecisionOut(ResponseModel):
    id: UUID
    status: str
    decision: str | None
    final_output: str | None
    delivery: str
    decided_at: datetime | None


class ReviewResult(ResponseModel):
    review: ReviewOut
    output: OutputDecisionOut
    decided_now: bool

    @classmethod
    def of(cls, outcome) -> Self:
        """From a ``reviews.services.review.ReviewOutcome``."""
        review, output = outcome.review, outcome.output
        return cls(
            review=ReviewOut.model_validate(review),
            output=OutputDecisionOut(
                id=output.pk,
                status=output.status,
                decision=output.decision or None,
                final_output=output.final_output,
                delivery=output.delivery,
                decided_at=output.decided_at,
            ),
            decided_now=outcome.decided_now,
        )


# An http(s) URL. Where it may point (hitl.net: a valid host, no user-info, no backslash, no
# private address when called) is the outbound rules' to say, after: a 422 naming the rule.
WEBHOOK_URL_PATTERN = r"^https?://\S+$"


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=WEBHOOK_URL_PATTERN)] = Field(
        description="Where decisions are POSTed: an http or https URL."
    )
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)] = Field(
        description="HMAC-SHA256 key for X-HITL-Signature; never shown back."
    )
    description: Annotated[str, StringConstraints(max_length=200)] = ""


class WebhookOut(ResponseModel):
    id: int
    url: str
    description: str
    is_active: bool
    created_at: datetime


class WebhookList(ResponseModel):
    results: list[WebhookOut]


DateTimeText = Annotated[
    str, Field(json_schema_extra={"format": "date-time"}, max_length=64, description="RFC 3339, with an offset.")
]


class ComplianceExportIn(BaseModel):
    """A period to export as a bundle: outputs received from ``from`` (inclusive) to ``to`` (exclusive)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    from_: DateTimeText = Field(alias="from")
    to: DateTimeText


class ExportFileOut(ResponseModel):
    sha256: str
    bytes: int


class ComplianceExportOut(ResponseModel):
    """A compliance export job: its progress and, once done, its files (download the zip)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: UUID
    status: Literal["pending", "running", "done", "failed"]
    from_: datetime = Field(alias="from")
    to: datetime
    requested_role: str
    outputs_done: int
    outputs_total: int | None
    files: dict[str, ExportFileOut]
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    download: str | None = Field(description="Path of the bundle (a zip) once done; null before.")


class ComplianceExportList(ResponseModel):
    results: list[ComplianceExportOut]
