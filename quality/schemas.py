"""The quality layer's request and response models (published by drf-spectacular)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hitl.schemas import PositiveJsonInt, ResponseModel

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
