"""Request and response shapes of the quality layer's API; drf-spectacular publishes the same models."""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from hitl.schemas import ResponseModel, integral
from policies.schemas import ApplicationName

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
