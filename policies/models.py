"""Risk policies, application controls (the stop button) and rubrics: tenant configuration,
versioned with django-simple-history."""

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from hitl.models import TenantOwnedModel


class Policy(TenantOwnedModel):
    """A tenant's current risk policy. Every change is a new ``version``; the history
    table keeps each version's document, who published it and why, so that any
    output's classification can be recomputed from the version it records."""

    version = models.PositiveIntegerField(default=1)
    document = models.JSONField(help_text="Tiers, rules and default tier (see policies/schemas.py).")
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

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

    history = HistoricalRecords()

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
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    history = HistoricalRecords()

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=("tenant", "name"), name="rubric_unique_tenant_name")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"
