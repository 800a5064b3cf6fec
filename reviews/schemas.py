"""The shapes of submitted outputs, validated at the edge with pydantic.

pydantic validates in compiled code (a few microseconds an item), which the
ingest hot path needs, reports errors by field path, and gives drf-spectacular
the same schema the API enforces.
"""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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

    items: list[JsonObject] = Field(min_length=1, max_length=1000)


class OutputReceipt(BaseModel):
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


class JudgementOut(BaseModel):
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


class OutputSummary(OutputReceipt):
    """An output in a list: no bodies or traces."""

    metadata: JsonObject
    model: str
    confidence: float | None


class OutputPage(BaseModel):
    """One page of outputs; follow ``next`` (an opaque cursor URL) for the following page."""

    next: str | None
    previous: str | None
    results: list[OutputSummary]


class BatchItemError(BaseModel):
    code: str
    message: str
    fields: dict[str, list[str]] | None = None


class BatchItemResult(BaseModel):
    """The outcome of one item: ``created`` (201), ``existing`` (200), ``conflict`` (409), ``invalid`` (400)."""

    index: int
    outcome: Literal["created", "existing", "conflict", "invalid"]
    status_code: Literal[200, 201, 400, 409]
    output: OutputReceipt | None = None
    error: BatchItemError | None = None


class OutputBatchResult(BaseModel):
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
    time_spent_seconds: Annotated[int, Field(ge=0, le=86_400)] | None = None


class FeedbackSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    rating: Literal["up", "down"]
    comment: Annotated[str, StringConstraints(max_length=5000)] = ""


class FeedbackReceipt(BaseModel):
    id: int
    output_id: UUID
    rating: str
    review_task_created: bool


class RubricShown(BaseModel):
    name: str
    version: int
    criteria: list[JsonObject]


class TaskOutput(BaseModel):
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


class TaskOut(BaseModel):
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


class ReviewOut(BaseModel):
    id: UUID
    task_id: UUID
    decision: str
    scores: JsonObject
    corrected_output: str
    comment: str
    rubric_version: int | None
    created_at: datetime


class OutputDecisionOut(BaseModel):
    id: UUID
    status: str
    decision: str | None
    final_output: str | None
    delivery: str
    decided_at: datetime | None


class ReviewResult(BaseModel):
    review: ReviewOut
    output: OutputDecisionOut
    decided_now: bool


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)] = Field(
        description="HMAC-SHA256 key for X-HITL-Signature; never shown back."
    )
    description: Annotated[str, StringConstraints(max_length=200)] = ""


class WebhookOut(BaseModel):
    id: int
    url: str
    description: str
    is_active: bool
    created_at: datetime


class WebhookList(BaseModel):
    results: list[WebhookOut]
