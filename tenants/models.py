"""Tenants, who belongs to them, and the API keys services and people use."""

import uuid

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from hitl.models import TenantOwnedModel, tenant_key_covered


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
    QUALITY_LEAD = "quality_lead", "Quality lead"
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
    QUALITY_LEAD = "quality_lead", "Quality lead"
    ADMIN = "admin", "Admin"


class KeyRoles:
    """Named sets of key roles, from which the API's permission maps are built."""

    ADMIN = frozenset({ApiKeyRole.ADMIN})
    AUDIT = frozenset({ApiKeyRole.ADMIN, ApiKeyRole.AUDITOR})
    QUALITY = frozenset({ApiKeyRole.ADMIN, ApiKeyRole.QUALITY_LEAD})
    CONFIG_READERS = frozenset({ApiKeyRole.ADMIN, ApiKeyRole.AUDITOR, ApiKeyRole.QUALITY_LEAD, ApiKeyRole.REVIEWER})
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


class AuditEvent(TenantOwnedModel):
    """One governance event of a tenant, hash-chained to the one before (tenants/auditchain.py).

    Append-only: written by ``tenants.audit.audit_record`` in the transaction of the change,
    never updated or deleted (the application's database role may only SELECT and INSERT).
    ``seq`` runs 1, 2, 3 ... per tenant without gaps, taken from ``AuditHead``. The actor
    references are plain ids in the hash, so they are kept without database constraints:
    removing a person or a key must not touch the log.
    """

    tenant = tenant_key_covered()  # (tenant, seq) is unique

    append_only = True

    id = models.BigAutoField(primary_key=True)
    seq = models.BigIntegerField()
    at = models.DateTimeField()
    kind = models.CharField(max_length=64, help_text="Dotted, e.g. output.received, task.claimed, policy.published.")
    actor_person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # auditevent_tenant_person (partial)
        null=True,
        blank=True,
        related_name="+",
        help_text="The person who acted, if any.",
    )
    actor_key = models.ForeignKey(
        ApiKey,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # auditevent_tenant_key (partial)
        null=True,
        blank=True,
        related_name="+",
        help_text="The API key used, if any.",
    )
    actor_role = models.CharField(
        max_length=32, help_text="The role the actor acted in (key role, member role, system)."
    )
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=255, blank=True, default="")
    data = models.JSONField(null=True, blank=True, help_text="Before/after values, or a batch's Merkle root and ids.")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=("tenant", "seq"), name="auditevent_unique_tenant_seq")]
        indexes = [
            models.Index(fields=("tenant", "object_type", "object_id"), name="auditevent_tenant_object"),
            models.Index(fields=("tenant", "at"), name="auditevent_tenant_at"),
            # The API's actor filters (a tenant's events of one person or key, newest first by seq).
            # Partial: an event is in those of the actors it names. A service key's (an ingested
            # output's) and a signed-in person's (a page's) are in one, the system's in neither;
            # a person's key names both. Before, every event wrote an entry, null or not, into each.
            models.Index(
                fields=("tenant", "actor_person", "seq"),
                name="auditevent_tenant_person",
                condition=models.Q(actor_person__isnull=False),
            ),
            models.Index(
                fields=("tenant", "actor_key", "seq"),
                name="auditevent_tenant_key",
                condition=models.Q(actor_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}#{self.seq} {self.kind} {self.object_type}:{self.object_id}"


class AuditHead(TenantOwnedModel):
    """The per-tenant counter row: the last seq and hash of the chain.

    Every append takes this row's lock (an UPDATE) until its transaction commits, which
    is what makes ``seq`` gap-free and the chain unforked at READ COMMITTED. ``prev_hash``
    is the hash before ``last_hash`` (so that one UPDATE ... RETURNING hands the insert
    both).
    """

    tenant = tenant_key_covered()  # (tenant) is unique

    append_only = False  # updated in place by every append: the chain's tip, not history

    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)
    prev_hash = models.CharField(max_length=64, default="0" * 64)

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=("tenant",), name="audithead_unique_tenant")]

    def __str__(self) -> str:
        return f"{self.tenant_id} at {self.last_seq}"


class AuditCheckpoint(TenantOwnedModel):
    """A signed statement of a tenant's chain head: its ``seq`` and ``head_hash``, Ed25519-signed.

    Append-only. The signing key lives in the environment (``HITL_AUDIT_SIGNING_KEY``),
    never here, so someone who rewrites the audit rows cannot sign the new head:
    ``verify_audit`` then finds a checkpoint whose hash the chain no longer has.
    """

    append_only = True

    seq = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    signature = models.CharField(max_length=128, help_text="Base64 Ed25519 signature of the checkpoint message.")
    key_id = models.CharField(max_length=16, help_text="First 16 hex digits of SHA-256 of the raw public key.")

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=("tenant", "seq", "key_id"), name="auditcheckpoint_unique_tenant_seq_key")
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} checkpoint at {self.seq}"


class AuditVerificationStatus(models.TextChoices):
    RUNNING = "running", "Running"
    PASSED = "passed", "Intact"
    FAILED = "failed", "Not intact"
    ERROR = "error", "Could not finish"


class AuditVerification(TenantOwnedModel):
    """One run of the chain verification (``tenants.audit.audit_verify``, what ``verify_audit`` runs):
    who asked, when, and what it found, kept so that the auditor's page shows the last one.

    Written by ``tenants.verification``: created ``running`` when asked, finished once by the task.
    """

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    source = models.CharField(max_length=16, default="page", help_text="page, command or schedule.")
    status = models.CharField(
        max_length=16, choices=AuditVerificationStatus.choices, default=AuditVerificationStatus.RUNNING
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    head_seq_at_start = models.BigIntegerField(default=0, help_text="The chain's length when it was asked (progress).")
    events = models.BigIntegerField(default=0, help_text="Events checked.")
    checkpoints = models.IntegerField(default=0)
    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, blank=True, default="")
    bad_seq = models.BigIntegerField(null=True, blank=True, help_text="The first bad sequence number, if any.")
    reason = models.TextField(blank=True, default="")
    problems = models.JSONField(default=list, blank=True)

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=("tenant", "-started_at"), name="auditverification_latest")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=AuditVerificationStatus.values), name="auditverification_status_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} verification {self.started_at:%Y-%m-%d %H:%M} {self.status}"

    @property
    def seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None
