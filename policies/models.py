"""Risk policies, application controls (the stop button) and rubrics: tenant configuration,
versioned with django-simple-history."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from hitl.crypto import EncryptedTextField
from hitl.models import TenantOwnedModel
from policies.judges.registry import JUDGE_KINDS


def _history(**options) -> HistoricalRecords:
    # The API takes a reason of up to 500 characters (simple_history's default column holds 100).
    return HistoricalRecords(history_change_reason_field=models.TextField(null=True), **options)


class Policy(TenantOwnedModel):
    """A tenant's current risk policy. Every change is a new ``version``; the history
    table keeps each version's document, who published it and why, so that any
    output's classification can be recomputed from the version it records."""

    version = models.PositiveIntegerField(default=1)
    document = models.JSONField(help_text="Tiers, rules and default tier (see policies/schemas.py).")
    updated_at = models.DateTimeField(auto_now=True)

    history = _history()

    class Meta(TenantOwnedModel.Meta):
        verbose_name_plural = "policies"
        constraints = [models.UniqueConstraint(fields=("tenant",), name="policy_one_per_tenant")]

    def __str__(self) -> str:
        return f"{self.tenant} policy v{self.version}"


class Override(models.TextChoices):
    """The stop button regulators ask for."""

    NONE = "none", "None"
    REVIEW_ALL = "review_all", "Review all (hold every new output)"
    BLOCK = "block", "Block (outputs must not be delivered)"


class Application(TenantOwnedModel):
    """An LLM application of the tenant, as named in submitted outputs: its override and rubric."""

    name = models.CharField(max_length=100)
    override = models.CharField(max_length=16, choices=Override.choices, default=Override.NONE)
    override_reason = models.CharField(max_length=500, blank=True, default="")
    rubric = models.ForeignKey(
        "policies.Rubric",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="applications",
        help_text="Rubric its reviews use (else the tier's).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    history = _history()

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=("tenant", "name"), name="application_unique_tenant_name"),
            models.CheckConstraint(condition=models.Q(override__in=Override.values), name="application_override_valid"),
        ]

    def __str__(self) -> str:
        return self.name


class Rubric(TenantOwnedModel):
    """Score definitions reviewers fill in; each change is a new ``version``."""

    name = models.CharField(max_length=50)
    description = models.TextField(blank=True, default="")
    criteria = models.JSONField(help_text="List of criteria (see policies/schemas.py: Criterion).")
    scope = models.CharField(
        max_length=16,
        choices=[("output", "One output"), ("session", "The whole session")],
        default="output",
        db_default="output",
        help_text="What a reviewer scores: the output under review, or the whole session it belongs to.",
    )
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    history = _history()

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=("tenant", "name"), name="rubric_unique_tenant_name")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


# Declared once, in policies.judges.registry: LLM-as-a-judge or one of the built-in checks.
JudgeKind = models.TextChoices("JudgeKind", [(name.upper(), (name, spec.label)) for name, spec in JUDGE_KINDS.items()])


class JudgeOnFail(models.TextChoices):
    """What a failing verdict does to the output's sampling decision."""

    RECORD = "record", "Record only"
    FORCE_REVIEW = "force_review", "Force a human review"
    RAISE_TIER = "raise_tier", "Raise the risk tier"
    BLOCK = "block", "Block delivery"


class Judge(TenantOwnedModel):
    """An automated evaluator the tenant runs on new outputs; each change is a new ``version``.

    ``api_key`` (LLM judges) is write-only: never serialized, shown or logged,
    encrypted at rest (``hitl.crypto``) and kept out of the history table.
    """

    name = models.CharField(max_length=50)
    kind = models.CharField(max_length=16, choices=JudgeKind.choices)
    description = models.TextField(blank=True, default="")
    applications = models.JSONField(default=list, blank=True, help_text="Applications it runs on; empty for all.")
    tiers = models.JSONField(default=list, blank=True, help_text="Risk tiers it runs on; empty for all.")
    params = models.JSONField(default=dict, blank=True, help_text="Kind-specific settings (see docs/judges.md).")
    api_key = EncryptedTextField(blank=True, default="", help_text="LLM endpoint key; write-only, encrypted at rest.")
    on_fail = models.CharField(max_length=16, choices=JudgeOnFail.choices, default=JudgeOnFail.FORCE_REVIEW)
    raise_to = models.CharField(
        max_length=50, blank=True, default="", help_text="raise_tier: the tier to raise to; empty for the next tier."
    )
    unsure_low = models.FloatField(default=0.4, help_text="Scores from here ...")
    unsure_high = models.FloatField(default=0.6, help_text="... to here count as unsure and go to a person.")
    is_active = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    history = _history(excluded_fields=["api_key"])

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=("tenant", "name"), name="judge_unique_tenant_name"),
            models.CheckConstraint(condition=models.Q(kind__in=JudgeKind.values), name="judge_kind_valid"),
            models.CheckConstraint(condition=models.Q(on_fail__in=JudgeOnFail.values), name="judge_on_fail_valid"),
            models.CheckConstraint(
                condition=models.Q(unsure_low__gte=0, unsure_low__lte=models.F("unsure_high"), unsure_high__lte=1),
                name="judge_unsure_band_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class JudgeFlag(TenantOwnedModel):
    """A judge whose agreement with people fell below the threshold (issue 13 point 7).

    Raised by the periodic check (``quality.services.judges_agreement_check``), open until a
    person clears it. While open, outputs the judge passes are sampled at ``sample_rate`` at
    least (none: no boost); each verdict records the rate it was given with
    (``reviews.Judgement.flag_rate``), so a decision is recomputed from its rows.
    """

    judge = models.ForeignKey(Judge, on_delete=models.PROTECT, related_name="flags")
    judge_version = models.PositiveIntegerField()
    kappa = models.FloatField(null=True, blank=True, help_text="Cohen's kappa against people when flagged.")
    agreement_rate = models.FloatField(null=True, blank=True)
    compared = models.PositiveIntegerField(default=0, help_text="Verdicts compared with people's decisions.")
    threshold = models.FloatField(help_text="The kappa it fell below.")
    sample_rate = models.FloatField(
        null=True, blank=True, help_text="While open: outputs it passes are reviewed at this rate at least."
    )
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    flagged_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    cleared_note = models.TextField(blank=True, default="")

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=("judge",), name="judgeflag_one_open_per_judge", condition=models.Q(cleared_at__isnull=True)
            ),
            models.CheckConstraint(
                condition=models.Q(sample_rate__isnull=True) | models.Q(sample_rate__gte=0, sample_rate__lte=1),
                name="judgeflag_sample_rate_0_to_1",
            ),
        ]
        indexes = [models.Index(fields=("tenant", "judge", "-flagged_at"), name="judgeflag_tenant_judge")]

    def __str__(self) -> str:
        state = "cleared" if self.cleared_at else "open"
        return f"flag on judge {self.judge_id} v{self.judge_version} ({state})"


# Retention (EU AI Act Art. 19 and 26(6): logs kept at least six months). The floor is a
# constraint of the table, so that no path (API, console, admin, a data migration) goes below it.
RETENTION_MIN_DAYS = 183
RETENTION_DEFAULT_DAYS = 365


class Retention(TenantOwnedModel):
    """How long a tenant keeps outputs' payloads before the retention job redacts them.

    A tenant without a row keeps them ``RETENTION_DEFAULT_DAYS``. Redaction blanks the
    payloads (input, output, trace, final output, corrections, comments) and keeps every
    digest, so that the audit chain stays verifiable; see ``reviews.services.retention``.
    ``redacted_through`` is the job's watermark: every output received before it is redacted
    unless a hold kept it (releasing a hold clears the watermark, so the next run looks again).
    """

    days = models.PositiveIntegerField(default=RETENTION_DEFAULT_DAYS)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    redacted_through = models.DateTimeField(null=True, blank=True, editable=False)

    history = _history(excluded_fields=["redacted_through"])

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=("tenant",), name="retention_one_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(days__gte=RETENTION_MIN_DAYS), name="retention_at_least_six_months"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant}: {self.days} days"


class LegalHold(TenantOwnedModel):
    """Suspends retention for the outputs it covers: those of one application, those received
    in a period (``received_from`` inclusive, ``received_until`` exclusive; either end may be
    open), or those of one application in a period. Active until released; never deleted."""

    application = models.CharField(max_length=100, blank=True, default="", help_text="Empty: every application.")
    received_from = models.DateTimeField(null=True, blank=True)
    received_until = models.DateTimeField(null=True, blank=True)
    reason = models.TextField()
    placed_at = models.DateTimeField(auto_now_add=True)
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    release_reason = models.TextField(blank=True, default="")

    history = _history()

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(application="")
                | models.Q(received_from__isnull=False)
                | models.Q(received_until__isnull=False),
                name="legalhold_covers_something",
            ),
            models.CheckConstraint(
                condition=models.Q(received_from__isnull=True)
                | models.Q(received_until__isnull=True)
                | models.Q(received_from__lt=models.F("received_until")),
                name="legalhold_period_ordered",
            ),
        ]

    def __str__(self) -> str:
        scope = self.application or "every application"
        return f"hold on {scope} ({self.received_from or '…'} to {self.received_until or '…'})"

    @property
    def is_active(self) -> bool:
        return self.released_at is None


class ApplicationStatistics(TenantOwnedModel):
    """One application's running statistics: a quantile sketch (DDSketch, policies/signals.py) per
    measure of its outputs (length, cost, latency, steps, tool errors), constant in size.

    A periodic job folds in the outputs received since ``through_received_at``/``through_id`` and
    bumps ``version``; ingest reads the latest version from a per-process cache, and each
    decision stores the figures it read with the version, so nothing here needs history."""

    application = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=0)
    observations = models.PositiveBigIntegerField(default=0, help_text="Outputs folded into the sketches.")
    sketches = models.JSONField(
        default=dict, help_text="Measure name -> base64 of DDSketch's protobuf message (ddsketch.pb)."
    )
    through_received_at = models.DateTimeField(null=True, blank=True, help_text="The last output folded in.")
    through_id = models.UUIDField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwnedModel.Meta):
        verbose_name_plural = "application statistics"
        constraints = [models.UniqueConstraint(fields=("tenant", "application"), name="application_statistics_unique")]

    def __str__(self) -> str:
        return f"{self.application} statistics v{self.version}"
