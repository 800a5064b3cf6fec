"""The policy and rubric documents: versioned data, validated with pydantic.

A policy is one JSON document per tenant: tiers, rules and a default tier. Its
shape is checked here; rules that refer to other things (a rule's tier, a tier's
rubric) are checked by the service, which knows the tenant.
"""

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from hitl.schemas import JsonDateTime, JsonInt, PositiveJsonInt, ResponseModel, integral
from policies.judges.registry import JUDGE_KINDS
from policies.signals import MEASURES

Name = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
APPLICATION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
APPLICATION_NAME_RULE = "letters, digits and . _ : - (at most 100), starting with a letter or digit"
ApplicationName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=APPLICATION_NAME_PATTERN)]
Scalar = str | int | float | bool


Mode = Literal["sequential", "parallel", "adaptive"]
TierMode = Literal["sequential", "parallel", "adaptive", "hybrid"]


class SlaBreachSpec(BaseModel):
    """What happens when a task of the tier is still open at its due time (checked every minute)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    escalate: Literal["next_level", "queue", "none"] = Field(
        default="next_level",
        description="next_level: a pending task now needs a reviewer one level up (at most 3); queue: it moves "
        "to the queue named by `queue`; none: it stays where it is. Claimed tasks stay with their reviewer.",
    )
    queue: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        default=None, description="escalate 'queue': the queue's name."
    )
    sequential: Literal["hold", "block", "release"] = Field(
        default="hold",
        description="A held (sequential) output whose review is late: hold keeps it held, block tells the service "
        "not to deliver it, release lets it deliver while the review goes on. The service hears it from the "
        "task.sla_breached webhook.",
    )

    @model_validator(mode="after")
    def _queue_named_when_used(self):
        if (self.escalate == "queue") != (self.queue is not None):
            raise ValueError("name a queue exactly when escalate is 'queue'")
        return self


class TierSpec(BaseModel):
    """How much human oversight one risk tier gets."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    review_rate: Annotated[float, Field(ge=0.0, le=1.0)] = Field(description="Share of outputs sampled for review.")
    mode: TierMode = Field(
        description="sequential: held until reviewed; parallel: delivered while sampled ones are reviewed; "
        "adaptive: the rate follows the judges' confidence; hybrid: per content category, each rule that "
        "maps to the tier names the mode (`default_mode` otherwise)."
    )
    required_approvals: JsonInt = Field(default=1, ge=1, le=5, description="Distinct reviewers who must approve.")
    min_reviewer_level: JsonInt = Field(default=1, ge=1, le=3)
    sla_minutes: JsonInt = Field(ge=1, le=60 * 24 * 30, description="Minutes from receipt to decision.")
    default_mode: Mode | None = Field(
        default=None,
        description="hybrid tiers (required there, refused elsewhere): the mode of outputs that reach the tier "
        "through no rule naming a mode.",
    )
    escalation: bool = Field(default=False, description="Reviews may be escalated to specialists.")
    on_sla_breach: SlaBreachSpec | None = Field(
        default=None,
        description="What a task past its due time triggers; when absent, a pending task goes one level up "
        "and a held output stays held.",
    )
    overlap_rate: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.0,
        description="Share of sampled outputs (tiers needing one approval) given a second, independent review "
        "to measure agreement; it does not change the decision.",
    )
    rubric: Name | None = Field(default=None, description="Name of the rubric its reviews use.")
    min_review_rate: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.0,
        description="adaptive tiers: the rate never falls below this, however confident the judges are.",
    )

    @model_validator(mode="after")
    def _hybrid_has_a_default_mode(self):
        if self.mode == "hybrid" and self.default_mode is None:
            raise ValueError("a hybrid tier needs default_mode: the mode of outputs that no rule gives one")
        if self.mode != "hybrid" and self.default_mode is not None:
            raise ValueError("default_mode is for hybrid tiers only")
        return self

    @property
    def sla_breach(self) -> SlaBreachSpec:
        return self.on_sla_breach or _DEFAULT_SLA_BREACH

    def mode_for(self, rule_mode: str | None) -> str:
        """The review mode of an output in this tier: a hybrid tier's comes from the rule that
        matched it (its content category), else the tier's default."""
        if self.mode != "hybrid":
            return self.mode
        return rule_mode or self.default_mode


_DEFAULT_SLA_BREACH = SlaBreachSpec()


class MetadataCondition(BaseModel):
    """A metadata key's value equals a value, or is in a list."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    key: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    equals: Scalar | None = None
    in_: Annotated[list[Scalar], Field(min_length=1, max_length=1000)] | None = Field(default=None, alias="in")

    @model_validator(mode="after")
    def _one_comparison(self):
        if (self.equals is None) == (self.in_ is None):
            raise ValueError("give exactly one of 'equals' or 'in'")
        return self


class RuleMatch(BaseModel):
    """Every condition given must hold."""

    model_config = ConfigDict(extra="forbid", strict=True)

    application: ApplicationName | Annotated[list[ApplicationName], Field(min_length=1)] | None = None
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)] | list[str] | None = None
    metadata: list[MetadataCondition] = Field(default_factory=list, max_length=20)
    confidence_below: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(
        default=None, description="Matches outputs whose confidence is below this; never one without a confidence."
    )

    @model_validator(mode="after")
    def _at_least_one_condition(self):
        if self.application is None and self.model is None and not self.metadata and self.confidence_below is None:
            raise ValueError("a rule needs at least one condition: application, model, metadata or confidence_below")
        return self


class RuleSpec(BaseModel):
    """Maps matching outputs to a tier. Rules are tried in order; the first match wins."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, StringConstraints(max_length=200)] = ""
    tier: Name
    match: RuleMatch
    mode: Mode | None = Field(
        default=None,
        description="For a rule mapping to a hybrid tier: the review mode of the outputs it matches "
        "(seed 001 Table 2's hybrid: a mode per content category).",
    )


SignalKind = Literal["outlier", "tool_failed", "user_asked_for_human", "user_abandoned"]
MeasureName = Literal[tuple(MEASURES)]  # declared once, in policies.signals
_OUTLIER_ONLY = ("measure", "quantile", "min_observations")


class SignalRule(BaseModel):
    """A signal that raises the tier or forces a review, whatever rule classified the output.

    Every signal rule is tried (not only the first): ``outlier`` when a measure of the output
    lies above a quantile of its application's running statistics, ``tool_failed`` when a
    tool step of its trace failed, ``user_asked_for_human`` and ``user_abandoned`` when the
    service's metadata flag of that name is ``true`` (docs/policies.md#signals).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, StringConstraints(max_length=200)] = ""
    signal: SignalKind
    application: ApplicationName | Annotated[list[ApplicationName], Field(min_length=1)] | None = Field(
        default=None, description="Only outputs of this application (or these); every application when absent."
    )
    measure: MeasureName | None = Field(
        default=None,
        description="outlier: length (characters), cost (USD), latency (ms), steps, tool_errors.",
    )
    quantile: Annotated[float, Field(ge=0.5, lt=1.0)] | None = Field(
        default=None,
        description="outlier: the value must be above this quantile of the application (0.99, the default: p99).",
    )
    min_observations: Annotated[int, Field(ge=10, le=1_000_000_000), BeforeValidator(integral)] | None = Field(
        default=None,
        description="outlier: the application's statistics must hold at least this many outputs before it acts "
        "(default 100).",
    )
    action: Literal["force_review", "raise_tier"] = Field(
        description="force_review: a person looks; raise_tier: the output moves up to `raise_to`."
    )
    raise_to: Name | None = Field(default=None, description="raise_tier: the tier to raise to (default: the next).")

    @model_validator(mode="after")
    def _fields_of_the_kind(self):
        if self.signal == "outlier":
            if self.measure is None:
                raise ValueError("an outlier signal names its measure (length, cost, latency, steps, tool_errors)")
        else:
            given = [field for field in _OUTLIER_ONLY if getattr(self, field) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} belong to outlier signals only")
        if self.raise_to is not None and self.action != "raise_tier":
            raise ValueError("raise_to belongs to action 'raise_tier' only")
        return self

    @property
    def quantile_or_default(self) -> float:
        return 0.99 if self.quantile is None else self.quantile

    @property
    def min_observations_or_default(self) -> int:
        return 100 if self.min_observations is None else self.min_observations


class PolicyDocument(BaseModel):
    """A tenant's risk policy: tiers, rules, the tier of outputs no rule matches, and signals."""

    model_config = ConfigDict(extra="forbid", strict=True)

    default_tier: Name
    tiers: Annotated[list[TierSpec], Field(min_length=1, max_length=20)]
    rules: Annotated[list[RuleSpec], Field(max_length=500)] = Field(default_factory=list)
    signals: Annotated[list[SignalRule], Field(max_length=50)] = Field(
        default_factory=list,
        description="Outlier, tool-failure and user signals: each that fires raises the tier or forces a review.",
    )


Reason = Annotated[str, StringConstraints(max_length=500)]


class PolicyCopy(BaseModel):
    """What ``GET /api/v1/policy`` adds to the document. Sent back with an update (all optional),
    they must describe the current version: otherwise someone published since the client read
    it, and the update is refused with a 409 ``stale_version``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: PositiveJsonInt | None = Field(
        default=None, description="The version the client's copy is of; a 409 when it is no longer current."
    )
    changed_at: JsonDateTime | None = Field(default=None, description="Read-only; ignored when it matches.")
    changed_by: Annotated[str, StringConstraints(max_length=150)] | None = Field(
        default=None, description="Read-only; ignored when it matches."
    )


class PolicyUpdate(PolicyCopy, PolicyDocument):
    """``PUT /api/v1/policy``: the whole new document and, optionally, why. What ``GET`` returned
    may be sent back as it is: its read-only fields are checked against the current version."""

    reason: Reason = Field(default="", description="Why, for the history (the new version's reason).")


class PolicyVersionOut(PolicyDocument):
    """One published version: the document, its number, when, by whom and why."""

    version: int
    changed_at: datetime
    changed_by: str | None
    reason: str

    @classmethod
    def of(cls, version) -> Self:
        """From a ``policies.selectors.PolicyVersion``."""
        return cls(
            **version.document,
            version=version.version,
            changed_at=version.changed_at,
            changed_by=version.changed_by,
            reason=version.reason,
        )


class PolicyHistoryOut(ResponseModel):
    results: list[PolicyVersionOut]


class OverrideUpdate(BaseModel):
    """The stop button for one application."""

    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Literal["review_all", "block", "none"]
    reason: Reason = ""


class ApplicationOut(ResponseModel):
    name: str
    override: Literal["review_all", "block", "none"]
    override_reason: str
    rubric: str | None
    updated_at: datetime

    @classmethod
    def of(cls, application) -> Self:
        return cls(
            name=application.name,
            override=application.override,
            override_reason=application.override_reason,
            rubric=application.rubric.name if application.rubric_id else None,
            updated_at=application.updated_at,
        )


# Rubrics ------------------------------------------------------------------


class Criterion(BaseModel):
    """One thing a reviewer scores."""

    model_config = ConfigDict(extra="forbid", strict=True)

    key: Name
    label: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    kind: Literal["binary", "graded", "categorical", "text"]
    required: bool = True
    min: JsonInt | None = Field(default=None, description="graded: lowest score")
    max: JsonInt | None = Field(default=None, description="graded: highest score")
    anchors: dict[str, str] = Field(default_factory=dict, description="graded: what each score means")
    options: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, description="categorical: the allowed values"
    )

    @model_validator(mode="after")
    def _kind_fields(self):
        if self.kind == "graded":
            if self.min is None or self.max is None or self.min >= self.max:
                raise ValueError("graded criteria need integer min < max (for example 1 and 5)")
            if self.max - self.min > 100:
                raise ValueError("graded criteria span at most 100 points")
            points = {str(point) for point in range(self.min, self.max + 1)}
            stray = sorted(set(self.anchors) - points)
            if stray:
                raise ValueError(f"anchors {', '.join(stray)} lie outside {self.min}..{self.max}")
        elif self.min is not None or self.max is not None or self.anchors:
            raise ValueError("min, max and anchors belong to graded criteria only")
        if self.kind == "categorical":
            if len(self.options) < 2 or len(set(self.options)) != len(self.options):
                raise ValueError("categorical criteria need at least two distinct options")
        elif self.options:
            raise ValueError("options belong to categorical criteria only")
        return self


class RubricDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    criteria: Annotated[list[Criterion], Field(min_length=1, max_length=50)]
    scope: Literal["output", "session"] = Field(
        default="output",
        description="What the reviewer scores: the output under review (output), or the whole conversation or "
        "agent run it belongs to (session: the reviewer is shown every turn of the session).",
    )

    @model_validator(mode="after")
    def _unique_keys(self):
        keys = [criterion.key for criterion in self.criteria]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"criterion keys must be unique: {', '.join(duplicates)}")
        return self


class RubricCopy(BaseModel):
    """What ``GET /api/v1/rubrics/{name}`` adds to the document. Sent back with a new version (all
    optional), they must describe the current version: otherwise a 409 ``stale_version``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: PositiveJsonInt | None = Field(
        default=None, description="The version the client's copy is of; a 409 when it is no longer current."
    )
    updated_at: JsonDateTime | None = Field(default=None, description="Read-only; ignored when it matches.")


class RubricPublishOptions(BaseModel):
    """How ``POST /api/v1/rubrics`` publishes: not part of the rubric, never returned."""

    model_config = ConfigDict(extra="forbid", strict=True)

    require_recertification: bool = Field(
        default=False,
        description="The new version changes what a right answer is: every active certification of the queues "
        "whose reviews use this rubric (by a tier or an application that names it) expires at once, and the "
        "people certified take the exam again.",
    )


class RubricPublish(RubricPublishOptions, RubricCopy, RubricDocument):
    """``POST /api/v1/rubrics``: a rubric, new or a new version; what ``GET`` returned may be sent back."""


class RubricOut(RubricDocument):
    version: int
    updated_at: datetime

    @classmethod
    def of(cls, rubric) -> Self:
        return cls(
            name=rubric.name,
            description=rubric.description,
            criteria=rubric.criteria,
            scope=rubric.scope,
            version=rubric.version,
            updated_at=rubric.updated_at,
        )


class RubricList(ResponseModel):
    results: list[RubricOut]


# Judges -------------------------------------------------------------------

JudgeKindName = Literal[tuple(JUDGE_KINDS)]  # declared once, in policies.judges.registry
OnFail = Literal["record", "force_review", "raise_tier", "block"]


class JudgeSpec(BaseModel):
    """An automated judge: what it is, where it runs, what a failing verdict does.

    ``params`` depend on the kind (docs/judges.md). ``api_key`` (LLM judges) is
    write-only: on an update, leave it out to keep the stored key, send "" to clear it.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name
    kind: JudgeKindName
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    applications: Annotated[list[ApplicationName], Field(max_length=200)] = Field(
        default_factory=list, description="Applications it runs on; empty for all."
    )
    tiers: Annotated[list[Name], Field(max_length=20)] = Field(
        default_factory=list, description="Risk tiers (as classified at ingest) it runs on; empty for all."
    )
    params: dict = Field(default_factory=dict, description="Kind-specific settings (docs/judges.md).")
    api_key: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None, description="LLM endpoint key; write-only, never shown back."
    )
    on_fail: OnFail = Field(default="force_review", description="What a failing verdict does.")
    raise_to: Name | None = Field(default=None, description="raise_tier: the tier to raise to (default: the next).")
    unsure_low: Annotated[float, Field(ge=0.0, le=1.0)] = 0.4
    unsure_high: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.6, description="Scores from unsure_low to unsure_high count as unsure: a person looks."
    )
    is_active: bool = True
    reason: Reason = Field(default="", description="Why, for the history.")

    @model_validator(mode="after")
    def _band_and_raise(self):
        if self.unsure_low > self.unsure_high:
            raise ValueError("unsure_low must not exceed unsure_high")
        if self.raise_to is not None and self.on_fail != "raise_tier":
            raise ValueError("raise_to belongs to on_fail 'raise_tier' only")
        return self


class JudgeCopy(BaseModel):
    """What ``GET /api/v1/judges/{id}`` adds to the configuration. Sent back with an update (all
    optional), they must describe the current version of this judge: otherwise a 409."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: PositiveJsonInt | None = Field(default=None, description="Read-only; must be the judge of the URL.")
    api_key_set: bool | None = Field(default=None, description="Read-only; ignored when it matches.")
    version: PositiveJsonInt | None = Field(
        default=None, description="The version the client's copy is of; a 409 when it is no longer current."
    )
    updated_at: JsonDateTime | None = Field(default=None, description="Read-only; ignored when it matches.")


class JudgeUpdate(JudgeCopy, JudgeSpec):
    """``PUT /api/v1/judges/{id}``: the whole new configuration; what ``GET`` returned may be sent back."""


class JudgeOut(ResponseModel):
    id: int
    name: str
    kind: JudgeKindName
    description: str
    applications: list[str]
    tiers: list[str]
    params: dict
    api_key_set: bool = Field(description="Whether a key is stored (the key itself is never shown).")
    on_fail: OnFail
    raise_to: str | None
    unsure_low: float
    unsure_high: float
    is_active: bool
    version: int
    updated_at: datetime

    @classmethod
    def of(cls, judge) -> Self:
        return cls(
            id=judge.pk,
            name=judge.name,
            kind=judge.kind,
            description=judge.description,
            applications=judge.applications,
            tiers=judge.tiers,
            params=judge.params,
            api_key_set=bool(judge.api_key),
            on_fail=judge.on_fail,
            raise_to=judge.raise_to or None,
            unsure_low=judge.unsure_low,
            unsure_high=judge.unsure_high,
            is_active=judge.is_active,
            version=judge.version,
            updated_at=judge.updated_at,
        )


class JudgeList(ResponseModel):
    results: list[JudgeOut]


class JudgeVersionOut(ResponseModel):
    version: int
    name: str
    kind: JudgeKindName
    applications: list[str]
    tiers: list[str]
    params: dict
    on_fail: OnFail
    raise_to: str | None
    unsure_low: float
    unsure_high: float
    is_active: bool
    changed_at: datetime
    changed_by: str | None
    reason: str

    @classmethod
    def of(cls, record) -> Self:
        """From a history record of the judge."""
        user = record.history_user
        return cls(
            version=record.version,
            name=record.name,
            kind=record.kind,
            applications=record.applications,
            tiers=record.tiers,
            params=record.params,
            on_fail=record.on_fail,
            raise_to=record.raise_to or None,
            unsure_low=record.unsure_low,
            unsure_high=record.unsure_high,
            is_active=record.is_active,
            changed_at=record.history_date,
            changed_by=user.get_username() if user else None,
            reason=record.history_change_reason or "",
        )


class JudgeHistoryOut(ResponseModel):
    results: list[JudgeVersionOut]


class JudgeAgreementOut(ResponseModel):
    """How often a judge agreed with people's final decisions on the same outputs.

    Approved counts as pass; rejected and corrected as fail. Error verdicts are
    counted apart and left out of the rate and kappa.
    """

    judge: int
    version: int | None = Field(description="Only verdicts of this judge version, when asked.")
    compared: int = Field(description="Outputs with a pass/fail verdict and a human decision.")
    both_pass: int
    both_fail: int
    judge_pass_human_fail: int
    judge_fail_human_pass: int
    judge_errors: int = Field(description="Error verdicts on human-decided outputs (not compared).")
    agreement_rate: float | None = Field(description="Share of compared outputs where judge and people agree.")
    cohens_kappa: float | None = Field(description="Agreement beyond chance; None when it is undefined.")
