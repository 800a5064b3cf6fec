"""Tables of the quality layer (issue 13)."""

from django.conf import settings
from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from hitl.models import TenantOwnedModel


class CalibrationStatus(models.TextChoices):
    OPEN = "open", "Open: participants score blind"
    CLOSED = "closed", "Closed: results shown"


class CalibrationSession(TenantOwnedModel):
    """A calibration session (seed 002): invited reviewers score the same items blind under one
    rubric version; once the quality lead closes it, everyone invited sees the results side by side.
    """

    name = models.CharField(max_length=200)
    rubric = models.ForeignKey("policies.Rubric", on_delete=models.PROTECT, related_name="+")
    rubric_version = models.PositiveIntegerField()
    status = models.CharField(max_length=8, choices=CalibrationStatus.choices, default=CalibrationStatus.OPEN)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=("tenant", "-created_at"), name="calibration_tenant_created")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=CalibrationStatus.values), name="calibration_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class CalibrationItem(TenantOwnedModel):
    """One item of a session: an output everyone invited scores (in ``position`` order)."""

    session = models.ForeignKey(CalibrationSession, on_delete=models.CASCADE, related_name="items")
    output = models.ForeignKey("reviews.Output", on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField()

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=("session", "output"), name="calibrationitem_once_per_session"),
            models.UniqueConstraint(fields=("session", "position"), name="calibrationitem_position"),
        ]

    def __str__(self) -> str:
        return f"item {self.position} of session {self.session_id}"


class CalibrationParticipant(TenantOwnedModel):
    """A person invited to score a session."""

    session = models.ForeignKey(CalibrationSession, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    invited_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=("session", "user"), name="calibrationparticipant_once")]

    def __str__(self) -> str:
        return f"{self.user_id} in session {self.session_id}"


class CalibrationAnswer(TenantOwnedModel):
    """One participant's answer on one item: a decision and scores against the session's rubric
    version. Hidden from the other participants until the session is closed; changeable until then."""

    session = models.ForeignKey(CalibrationSession, on_delete=models.CASCADE, related_name="answers")
    item = models.ForeignKey(CalibrationItem, on_delete=models.CASCADE, related_name="answers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=16)
    scores = models.JSONField(default=dict, blank=True)
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=("item", "user"), name="calibrationanswer_once_per_item"),
            models.CheckConstraint(
                condition=models.Q(decision__in=("approve", "reject", "correct")), name="calibrationanswer_decision"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.user_id} on item {self.item_id}"


class Grain(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class RollupState(TenantOwnedModel):
    """How far the metrics rollup got for one tenant: every change before ``watermark`` (less the
    job's lag, ``quality.rollups.LAG``) is in the rollups. Its row is locked while a run works, so
    two runs for one tenant (two beat processes) take turns."""

    watermark = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    hours_rebuilt = models.PositiveIntegerField(default=0, help_text="Hour buckets the last run rebuilt.")

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=("tenant",), name="rollupstate_one_per_tenant")]

    def __str__(self) -> str:
        return f"rollup of tenant {self.tenant_id} to {self.watermark}"


class OutputCounts(models.Model):
    """What the output rollups count, whatever their key."""

    outputs = models.PositiveIntegerField(default=0)
    sampled = models.PositiveIntegerField(default=0, help_text="Sent to people (review required).")
    auto_approved = models.PositiveIntegerField(default=0)
    blocked = models.PositiveIntegerField(default=0, help_text="Blocked without a person: a judge or the stop button.")
    decided = models.PositiveIntegerField(default=0, help_text="Decided by people.")
    approved = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    corrected = models.PositiveIntegerField(default=0)
    thumbs_down = models.PositiveIntegerField(default=0, help_text="Outputs with an end user's thumbs-down.")
    caught_by_feedback = models.PositiveIntegerField(
        default=0, help_text="Rejected or corrected by people after an end user's thumbs-down sent them a task."
    )
    tasks = models.PositiveIntegerField(default=0)
    tasks_late = models.PositiveIntegerField(default=0, help_text="Tasks the SLA sweep found open past their due time.")

    class Meta:
        abstract = True


class OutputRollup(TenantOwnedModel, OutputCounts):
    """Outputs by the hour or day they were received, and what became of them (a cohort: a late
    decision counts in its output's bucket, which the job rebuilds).

    ``category`` and ``prompt_version`` are the output's ``metadata.category`` and
    ``metadata.prompt_version`` ('' when absent); ``held`` says its tier's mode, under the
    policy version that classified it, was sequential (the service held it for a person).
    """

    grain = models.CharField(max_length=4, choices=Grain.choices)
    bucket = models.DateTimeField()
    application = models.CharField(max_length=100)
    tier = models.CharField(max_length=50)
    model = models.CharField(max_length=200)
    prompt_version = models.CharField(max_length=100)
    category = models.CharField(max_length=100)
    held = models.BooleanField()

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=(
                    "tenant",
                    "grain",
                    "bucket",
                    "application",
                    "tier",
                    "model",
                    "prompt_version",
                    "category",
                    "held",
                ),
                name="outputrollup_unique_key",
            )
        ]
        indexes = [models.Index(fields=("tenant", "grain", "bucket"), name="outputrollup_tenant_bucket")]

    def __str__(self) -> str:
        return f"{self.grain} {self.bucket:%Y-%m-%d %H:00} {self.application}/{self.tier}: {self.outputs} outputs"


class JudgeRollup(TenantOwnedModel):
    """Each judge's verdicts on the outputs of a bucket (by receipt), against what people decided:
    ``errors`` are outputs people rejected or corrected; ``passed_errors`` those the judge had passed
    (what it let through), ``failed_errors`` those it had failed (where people agreed)."""

    grain = models.CharField(max_length=4, choices=Grain.choices)
    bucket = models.DateTimeField()
    judge = models.ForeignKey("policies.Judge", on_delete=models.CASCADE, related_name="+")
    judge_version = models.PositiveIntegerField()
    judged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    unsure = models.PositiveIntegerField(default=0)
    decided = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    passed_decided = models.PositiveIntegerField(default=0)
    passed_errors = models.PositiveIntegerField(default=0)
    failed_decided = models.PositiveIntegerField(default=0)
    failed_errors = models.PositiveIntegerField(default=0)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=("tenant", "grain", "bucket", "judge", "judge_version"), name="judgerollup_unique_key"
            )
        ]
        indexes = [models.Index(fields=("tenant", "grain", "bucket"), name="judgerollup_tenant_bucket")]


class ReviewCounts(models.Model):
    """What the review rollups count, whatever their key."""

    reviews = models.PositiveIntegerField(default=0)
    approves = models.PositiveIntegerField(default=0)
    rejects = models.PositiveIntegerField(default=0)
    corrects = models.PositiveIntegerField(default=0)
    escalates = models.PositiveIntegerField(default=0)
    late = models.PositiveIntegerField(default=0)
    timed = models.PositiveIntegerField(default=0)
    time_total = models.BigIntegerField(default=0, help_text="Seconds, summed over the timed reviews.")
    time_histogram = models.JSONField(default=dict)

    class Meta:
        abstract = True


class ReviewRollup(TenantOwnedModel, ReviewCounts):
    """People's reviews by the hour or day they were made, per reviewer, queue and content category.

    ``late`` counts reviews of tasks the SLA sweep had found late; ``time_histogram`` counts
    the reviews' time spent in the fixed bins of ``quality.histograms`` (medians and p90 of
    any set of rows come from the sum of their histograms); ``timed`` is how many reported one.
    """

    grain = models.CharField(max_length=4, choices=Grain.choices)
    bucket = models.DateTimeField()
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    queue = models.ForeignKey("reviews.Queue", on_delete=models.CASCADE, related_name="+")
    category = models.CharField(max_length=100)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=("tenant", "grain", "bucket", "reviewer", "queue", "category"), name="reviewrollup_unique_key"
            )
        ]
        indexes = [models.Index(fields=("tenant", "grain", "bucket"), name="reviewrollup_tenant_bucket")]

    def __str__(self) -> str:
        return f"{self.grain} {self.bucket:%Y-%m-%d %H:00}, reviewer {self.reviewer_id}: {self.reviews} reviews"


class SummaryScope(models.TextChoices):
    ALL = "all", "The tenant"
    REVIEWER = "reviewer", "Per reviewer"
    QUEUE = "queue", "Per queue"
    CATEGORY = "category", "Per content category"


class ReviewDaySummary(TenantOwnedModel, ReviewCounts):
    """The review rollup's day rows summed again to the grains the pages read (issue 13 point 9).

    A day's ``ReviewRollup`` rows are per reviewer, queue and category: hundreds a day for a busy
    tenant, each with its time histogram. The pages ask for the whole tenant, one reviewer or one
    queue (per day or over a period), and merging a month of the fine rows' histograms costs a
    second. So the job also writes, for each day it sums, one row per ``scope`` key: the tenant
    (``all``: reviewer and queue empty), each reviewer, each queue, each category; the same sums
    and histogram as the fine rows they add up. ``quality.metrics`` reads the smallest scope
    that answers a request, and the fine rows for what no scope answers (two dimensions at
    once, or the hours at the ragged edges of a period).
    """

    scope = models.CharField(max_length=8, choices=SummaryScope.choices)
    bucket = models.DateTimeField(help_text="The day (UTC midnight).")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    queue = models.ForeignKey("reviews.Queue", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    category = models.CharField(max_length=100, blank=True, default="")

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.CheckConstraint(condition=models.Q(scope__in=SummaryScope.values), name="reviewdaysummary_scope"),
            models.UniqueConstraint(  # an empty reviewer or queue as 0: NULLs would never collide
                F("tenant"),
                F("scope"),
                F("bucket"),
                Coalesce(F("reviewer"), Value(0)),
                Coalesce(F("queue"), Value(0)),
                F("category"),
                name="reviewdaysummary_unique_key",
            ),
        ]
        indexes = [models.Index(fields=("tenant", "scope", "bucket"), name="reviewdaysummary_scope_bucket")]

    def __str__(self) -> str:
        return f"{self.scope} {self.bucket:%Y-%m-%d}: {self.reviews} reviews"


class OutputSummaryScope(models.TextChoices):
    ALL = "all", "The tenant"
    TIER = "tier", "Per risk tier"
    APPLICATION = "application", "Per application"
    MODEL = "model", "Per model"
    PROMPT_VERSION = "prompt_version", "Per prompt version"
    CATEGORY = "category", "Per content category"


class OutputDaySummary(TenantOwnedModel, OutputCounts):
    """The output rollup's day rows summed again to one dimension at a time (issue 13 point 9).

    A day's ``OutputRollup`` rows are per application, tier, model, prompt version, category
    and mode: hundreds a day. The dashboard groups by one of them (or none) at a time, so the
    job also writes, for each day it sums, one row per value of each dimension (``scope``, and
    ``key`` the value; ``all``: one row, key empty), with ``held_rejected`` and
    ``held_corrected`` (the rejected and corrected outputs a sequential tier held) already
    split out.
    """

    scope = models.CharField(max_length=16, choices=OutputSummaryScope.choices)
    bucket = models.DateTimeField(help_text="The day (UTC midnight).")
    key = models.CharField(max_length=200, blank=True, default="")
    held_rejected = models.PositiveIntegerField(default=0)
    held_corrected = models.PositiveIntegerField(default=0)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scope__in=OutputSummaryScope.values), name="outputdaysummary_scope"
            ),
            models.UniqueConstraint(fields=("tenant", "scope", "bucket", "key"), name="outputdaysummary_unique_key"),
        ]
        indexes = [models.Index(fields=("tenant", "scope", "bucket"), name="outputdaysummary_scope_bucket")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} {self.bucket:%Y-%m-%d}: {self.outputs} outputs"
