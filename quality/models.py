"""Tables of the quality layer (issue 13)."""

from django.conf import settings
from django.db import models
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
