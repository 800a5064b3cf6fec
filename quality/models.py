"""Tables of the quality layer (issue 13).

The metrics rollups (issue 13 point 6): pre-aggregated counts and sums per tenant, time
bucket and dimensions, kept current by ``quality.tasks.metrics_rollup_task``
(``quality/rollups.py``). They are derived data: the job rebuilds any bucket from the
review loop's rows and gets the same rows again, so they carry no history and no audit
trail of their own (no governance state changes when they do).

Each rollup has two grains: ``hour`` rows, the unit the job recomputes, and ``day`` rows,
the sum of a day's hour rows, which pages and the API read for whole days (hour rows only
at the edges of a period that does not start or end at midnight UTC).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from hitl.models import TenantOwnedModel


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


class OutputRollup(TenantOwnedModel):
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


class ReviewRollup(TenantOwnedModel):
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
    reviews = models.PositiveIntegerField(default=0)
    approves = models.PositiveIntegerField(default=0)
    rejects = models.PositiveIntegerField(default=0)
    corrects = models.PositiveIntegerField(default=0)
    escalates = models.PositiveIntegerField(default=0)
    late = models.PositiveIntegerField(default=0)
    timed = models.PositiveIntegerField(default=0)
    time_total = models.BigIntegerField(default=0, help_text="Seconds, summed over the timed reviews.")
    time_histogram = models.JSONField(default=dict)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=("tenant", "grain", "bucket", "reviewer", "queue", "category"), name="reviewrollup_unique_key"
            )
        ]
        indexes = [models.Index(fields=("tenant", "grain", "bucket"), name="reviewrollup_tenant_bucket")]
