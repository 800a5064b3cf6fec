"""The shapes of submitted outputs, validated at the edge with pydantic.

pydantic validates in compiled code (a few microseconds an item), which the
ingest hot path needs, reports errors by field path, and gives drf-spectacular
the same schema the API enforces.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from hitl.schemas import ResponseModel, integral
from policies.schemas import ApplicationName

# Bodies arrive through a JSON parser, so nested values are JSON already; ``Any``
# keeps validation in compiled code (pydantic's JsonValue walks every node in Python).
JsonObject = dict[str, Any]
JsonInput = str | list[Any] | JsonObject

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
SessionId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


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
    session_id: SessionId | None = Field(
        default=None,
        description="The conversation or agent run the output belongs to (the service's own id, 1 to 255 "
        "characters). Outputs with the same session_id are one session: GET /api/v1/sessions/{session_id} "
        "lists them in the order received, and a reviewer sees the earlier turns beside the output.",
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
    scope: Literal["output", "session"] = Field(
        default="output", description="session: the reviewer scores the whole session, not only the output."
    )


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
    session_id: str | None = Field(description="The session it belongs to, if any.")


class SessionTurn(ResponseModel):
    """One output of a session, as the session's listing and a task show it (its trace: GET /outputs/{id})."""

    id: UUID
    external_id: str
    application: str
    input: JsonInput
    output: str
    status: str
    delivery: Literal["deliver", "hold", "block"]
    decision: Literal["approved", "rejected", "corrected"] | None
    final_output: str | None
    model: str
    received_at: datetime

    @classmethod
    def fields_of(cls, row: Mapping) -> dict:
        return {name: row[name] for name in cls.model_fields} | {"decision": row["decision"] or None}

    @classmethod
    def of(cls, row: Mapping) -> Self:
        return cls(**cls.fields_of(row))


class TaskSessionTurn(SessionTurn):
    current: bool = Field(description="This turn is the output under review.")


class TaskSession(ResponseModel):
    """The session of the output under review: its earlier turns (the last 20, oldest first), or,
    when the task's rubric scores the whole session (scope session), every turn up to 200."""

    session_id: str
    scope: Literal["output", "session"] = Field(description="The rubric's scope: what the reviewer scores.")
    turns: list[TaskSessionTurn]
    omitted: bool = Field(description="More turns exist than are shown: older earlier turns, or turns past 200.")
    limit: int = Field(description="The most turns shown: 20 earlier turns, or 200 of a session scored whole.")

    @classmethod
    def of(cls, shown) -> Self:
        """From a ``reviews.selectors.SessionShown``."""
        return cls(
            session_id=shown.session_id,
            scope=shown.scope,
            turns=[TaskSessionTurn(**SessionTurn.fields_of(row), current=row["current"]) for row in shown.turns],
            omitted=shown.omitted,
            limit=shown.limit,
        )


class SessionPage(ResponseModel):
    """A session's outputs, oldest first; follow ``next`` (an opaque cursor URL) for the following page."""

    session_id: str
    next: str | None
    previous: str | None
    results: list[SessionTurn]


class AdjudicatedReview(ResponseModel):
    """One of the reviews an adjudicator compares."""

    reviewer: str = Field(description="The reviewer's user name.")
    purpose: Literal["approval", "overlap"]
    decision: Literal["approve", "reject", "correct"]
    scores: JsonObject
    corrected_output: str
    comment: str
    created_at: datetime

    @classmethod
    def of(cls, review) -> Self:
        return cls(
            reviewer=review.reviewer.get_username(),
            purpose=review.purpose,
            decision=review.decision,
            scores=review.scores,
            corrected_output=review.corrected_output,
            comment=review.comment,
            created_at=review.created_at,
        )


class TaskOut(ResponseModel):
    """A leased task with everything the reviewer needs to judge it."""

    id: UUID
    queue: str
    purpose: Literal["approval", "overlap", "user_feedback", "conflict", "adjudication"] = Field(
        description="approval: the decision needs it; overlap: a second opinion that measures agreement; "
        "user_feedback: an end user's thumbs-down; conflict: a person approved what a judge failed, "
        "a level up decides; adjudication: the output's overlap reviews disagree, a level up decides "
        "(the verdict is the output's decision)"
    )
    status: str
    level_required: int
    due_at: datetime
    lease_expires_at: datetime | None
    escalation_reason: str
    rubric: RubricShown | None
    output: TaskOutput
    judgements: list[JudgementOut] = Field(description="The automated judges' verdicts on the output.")
    session: TaskSession | None = Field(
        default=None, description="The session the output belongs to, with the turns the reviewer is shown."
    )
    adjudication: list[AdjudicatedReview] | None = Field(
        default=None, description="An adjudication task only: the reviews that disagree, side by side, oldest first."
    )

    @classmethod
    def of(
        cls, task: Mapping, criteria: list | None, judgements=(), session=None, scope: str = "output", adjudication=None
    ) -> Self:
        """From a task as the claim (or ``reviews.selectors.task_details``) returns it, its rubric's criteria
        and scope, and the session shown (``reviews.selectors.session_shown``)."""
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
            rubric=RubricShown(
                name=task["rubric_name"],
                version=task["rubric_version"],
                criteria=criteria,
                scope=scope,
            )
            if task["rubric_id"]
            else None,
            output=TaskOutput(
                **{**output, "risk_tier": output["risk_tier"] or None, "session_id": output["session_id"] or None}
            ),
            judgements=[JudgementOut.of(judgement) for judgement in judgements],
            session=TaskSession.of(session) if session is not None else None,
            adjudication=[AdjudicatedReview.of(review) for review in adjudication]
            if adjudication is not None
            else None,
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
    """One page of exports, newest first; follow ``next`` (an opaque cursor URL) for older ones."""

    next: str | None
    previous: str | None
    results: list[ComplianceExportOut]


# OpenTelemetry intake (POST /api/otlp/v1/traces) ----------------------------------------------
# OTLP/JSON as the OTLP specification encodes an ExportTraceServiceRequest: lowerCamelCase
# names, trace and span ids in hex, 64-bit integers as decimal strings (or numbers). Only the
# fields the intake reads are declared; others are ignored, as OTLP receivers must. The
# protobuf form (application/x-protobuf) carries the same message.

Uint64 = (
    Annotated[str, StringConstraints(pattern=r"^[0-9]{1,19}$")]
    | Annotated[int, Field(ge=0, le=2**63 - 1), BeforeValidator(integral)]
)
Int64 = (
    Annotated[str, StringConstraints(pattern=r"^-?[0-9]{1,18}$")]
    | Annotated[int, Field(ge=-(2**63) + 1, le=2**63 - 1), BeforeValidator(integral)]
)
OTLP_MODEL = ConfigDict(strict=True)


class OtlpArrayValue(BaseModel):
    model_config = OTLP_MODEL

    values: list["OtlpAnyValue"] = Field(default_factory=list)


class OtlpKeyValueList(BaseModel):
    model_config = OTLP_MODEL

    values: list["OtlpKeyValue"] = Field(default_factory=list)


class OtlpAnyValue(BaseModel):
    """One attribute value: at most one of the fields."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"maxProperties": 1})

    stringValue: str | None = None
    boolValue: bool | None = None
    intValue: Int64 | None = None
    doubleValue: float | None = None
    arrayValue: OtlpArrayValue | None = None
    kvlistValue: OtlpKeyValueList | None = None

    @model_validator(mode="after")
    def _one_value(self):
        if len(self.model_fields_set) > 1:
            raise ValueError("an AnyValue holds one value")
        return self


class OtlpKeyValue(BaseModel):
    model_config = OTLP_MODEL

    key: str
    value: OtlpAnyValue = Field(default_factory=OtlpAnyValue)


class OtlpResource(BaseModel):
    model_config = OTLP_MODEL

    attributes: list[OtlpKeyValue] = Field(default_factory=list)


class OtlpEvent(BaseModel):
    model_config = OTLP_MODEL

    timeUnixNano: Uint64 = "0"
    name: str = ""
    attributes: list[OtlpKeyValue] = Field(default_factory=list)


class OtlpStatus(BaseModel):
    model_config = OTLP_MODEL

    code: (
        Annotated[int, Field(ge=0, le=2), BeforeValidator(integral)]
        | Literal["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"]
    ) = Field(default=0, description="0 unset, 1 ok, 2 error (OTLP/JSON writes the number; the name is read too).")
    message: str = ""


class OtlpSpan(BaseModel):
    model_config = OTLP_MODEL

    traceId: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$")]
    spanId: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{16}$")]
    parentSpanId: Annotated[str, StringConstraints(pattern=r"^([0-9a-fA-F]{16})?$")] = ""
    name: str = ""
    kind: (
        Annotated[int, Field(ge=0, le=5), BeforeValidator(integral)]
        | Literal[
            "SPAN_KIND_UNSPECIFIED",
            "SPAN_KIND_INTERNAL",
            "SPAN_KIND_SERVER",
            "SPAN_KIND_CLIENT",
            "SPAN_KIND_PRODUCER",
            "SPAN_KIND_CONSUMER",
        ]
    ) = 0
    startTimeUnixNano: Uint64 = "0"
    endTimeUnixNano: Uint64 = "0"
    attributes: list[OtlpKeyValue] = Field(default_factory=list)
    events: list[OtlpEvent] = Field(default_factory=list)
    status: OtlpStatus = Field(default_factory=OtlpStatus)


class OtlpScopeSpans(BaseModel):
    model_config = OTLP_MODEL

    spans: list[OtlpSpan] = Field(default_factory=list)


class OtlpResourceSpans(BaseModel):
    model_config = OTLP_MODEL

    resource: OtlpResource = Field(default_factory=OtlpResource)
    scopeSpans: list[OtlpScopeSpans] = Field(default_factory=list)


class OtlpTraceRequest(BaseModel):
    """An OTLP ExportTraceServiceRequest in OTLP/JSON (the fields the intake reads)."""

    model_config = OTLP_MODEL

    resourceSpans: list[OtlpResourceSpans] = Field(default_factory=list)


class OtlpPartialSuccess(ResponseModel):
    rejectedSpans: Annotated[str, StringConstraints(pattern=r"^[0-9]+$")] = Field(
        description="How many spans were rejected (a decimal string, as OTLP/JSON writes 64-bit integers)."
    )
    errorMessage: str = Field(description="Which spans, and why.")


class OtlpTraceResponse(ResponseModel):
    """An OTLP ExportTraceServiceResponse; ``partialSuccess`` only when some spans were rejected."""

    partialSuccess: OtlpPartialSuccess | None = None
