"""Tenants, who belongs to them, and the API keys services and people use."""

import uuid

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from hitl.models import TenantOwnedModel


class Tenant(models.Model):
    """A customer organisation; nothing of one tenant is ever visible to another."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    config_token = models.UUIDField(
        default=uuid.uuid4,
        editable=False,
        help_text="Changes whenever the policy or an override changes; keys the compiled-policy cache.",
    )

    history = HistoricalRecords(excluded_fields=["config_token"])

    class Meta:
        ordering = ("slug",)

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    """What a person may do inside one tenant."""

    ADMIN = "admin", "Admin"
    REVIEWER = "reviewer", "Reviewer"
    AUDITOR = "auditor", "Auditor"
    VIEWER = "viewer", "Viewer"

    @classmethod
    def reviewing(cls) -> frozenset[str]:
        """The roles whose members work review queues."""
        return frozenset({cls.REVIEWER, cls.ADMIN})


class ApiKeyRole(models.TextChoices):
    """What an API key may do; ``service`` is an LLM application submitting outputs."""

    SERVICE = "service", "Service"
    REVIEWER = "reviewer", "Reviewer"
    AUDITOR = "auditor", "Auditor"
    ADMIN = "admin", "Admin"


class KeyRoles:
    """Named sets of key roles, from which the API's permission maps are built."""

    ADMIN = frozenset({ApiKeyRole.ADMIN})
    AUDIT = frozenset({ApiKeyRole.ADMIN, ApiKeyRole.AUDITOR})
    CONFIG_READERS = frozenset({ApiKeyRole.ADMIN, ApiKeyRole.AUDITOR, ApiKeyRole.REVIEWER})
    REVIEWERS = frozenset({ApiKeyRole.REVIEWER, ApiKeyRole.ADMIN})
    SUBMITTERS = frozenset({ApiKeyRole.SERVICE, ApiKeyRole.ADMIN})
    EVERYONE = frozenset(ApiKeyRole)


class Membership(TenantOwnedModel):
    """A person's role in one tenant; a person may belong to several tenants."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    reviewer_level = models.PositiveSmallIntegerField(
        default=1, help_text="1 entry level, 2 experienced, 3 specialist."
    )
    skills = models.JSONField(default=list, blank=True, help_text="Skill tags used for routing, e.g. legal, medical.")
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=("tenant", "user"), name="membership_unique_tenant_user"),
            models.CheckConstraint(
                condition=models.Q(reviewer_level__gte=1, reviewer_level__lte=3),
                name="membership_reviewer_level_1_to_3",
            ),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} as {self.role}"


class ApiKey(TenantOwnedModel):
    """A credential of one tenant with one role. Only a SHA-256 of the key is stored.

    The key is shown once at creation; ``prefix`` (the part after ``hitl_``) is
    stored in clear to find the row and to let people tell keys apart.
    """

    name = models.CharField(max_length=100)
    role = models.CharField(max_length=16, choices=ApiKeyRole.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="The person acting through this key, if any (must be a member of the tenant).",
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    # last_used_at is operational telemetry, not configuration: kept out of history.
    history = HistoricalRecords(excluded_fields=["last_used_at"])

    class Meta(TenantOwnedModel.Meta):
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(condition=models.Q(role__in=ApiKeyRole.values), name="apikey_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (hitl_{self.prefix}_…, {self.role})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
