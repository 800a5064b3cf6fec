"""LLM outputs as services submit them, and what becomes of them."""

from django.db import models
from django.utils import timezone

from hitl.models import TenantOwnedModel, uuid7


class OutputStatus(models.TextChoices):
    """Where an output is in its life (design: the life of an output)."""

    RECEIVED = "received", "Received"
    PENDING_REVIEW = "pending_review", "Pending review"
    AUTO_APPROVED = "auto_approved", "Auto-approved"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CORRECTED = "corrected", "Corrected"
    BLOCKED = "blocked", "Blocked"


class Delivery(models.TextChoices):
    """What the service may do with the output right now."""

    DELIVER = "deliver", "Deliver"
    HOLD = "hold", "Hold"
    BLOCK = "block", "Block"


class Output(TenantOwnedModel):
    """One LLM output submitted by a service, with its trace.

    Idempotent on ``(tenant, external_id)``: ``content_hash`` is the SHA-256 of the
    canonical submitted body, so a repeat is told from a conflicting resubmission
    without comparing JSON trees.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    external_id = models.CharField(max_length=255)
    application = models.CharField(max_length=100)
    input = models.JSONField()
    output = models.TextField()
    trace = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    model = models.CharField(max_length=200, blank=True, default="")
    confidence = models.FloatField(null=True, blank=True)
    content_hash = models.CharField(max_length=64, editable=False)
    status = models.CharField(max_length=32, choices=OutputStatus.choices, default=OutputStatus.RECEIVED)
    risk_tier = models.CharField(max_length=50, blank=True, default="")
    review_required = models.BooleanField(default=False)
    delivery = models.CharField(max_length=16, choices=Delivery.choices, default=Delivery.DELIVER)
    policy_version = models.PositiveIntegerField(null=True, blank=True, help_text="Policy version that classified it.")
    decision_reason = models.TextField(blank=True, default="", help_text="Why this tier, and why (not) reviewed.")
    sampling_draw = models.FloatField(
        null=True, blank=True, help_text="The deterministic draw compared with the tier's review rate."
    )
    received_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=("tenant", "external_id"), name="output_unique_tenant_external_id"),
            models.CheckConstraint(
                condition=models.Q(confidence__isnull=True) | models.Q(confidence__gte=0, confidence__lte=1),
                name="output_confidence_0_to_1",
            ),
        ]
        indexes = [
            models.Index(fields=("tenant", "-received_at"), name="output_tenant_received"),
            models.Index(fields=("tenant", "application", "-received_at"), name="output_tenant_app_received"),
            models.Index(fields=("tenant", "status", "-received_at"), name="output_tenant_status_received"),
        ]

    def __str__(self) -> str:
        return f"{self.application}/{self.external_id}"
