"""LLM outputs as services submit them, and what becomes of them."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase
from simple_history.models import HistoricalRecords

from hitl.crypto import EncryptedTextField
from hitl.models import TenantOwnedModel, tenant_key_covered, uuid7


class OutputStatus(models.TextChoices):
    """Where an output is in its life (design: the life of an output)."""

    RECEIVED = "received", "Received"
    JUDGING = "judging", "Waiting for judges"
    PENDING_REVIEW = "pending_review", "Pending review"
    AUTO_APPROVED = "auto_approved", "Auto-approved"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CORRECTED = "corrected", "Corrected"
    BLOCKED = "blocked", "Blocked"
    # A golden-set item shown to a reviewer as an ordinary task (docs/quality.md): never
    # decided, delivered or sent to a webhook, and left out of production figures.
    GOLD = "gold", "Gold item"


class Delivery(models.TextChoices):
    """What the service may do with the output right now."""

    DELIVER = "deliver", "Deliver"
    HOLD = "hold", "Hold"
    BLOCK = "block", "Block"


class Decision(models.TextChoices):
    """The final word on an output, written once."""

    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CORRECTED = "corrected", "Corrected"


class Output(TenantOwnedModel):
    """One LLM output submitted by a service, with its trace.

    Idempotent on ``(tenant, external_id)``: ``content_hash`` is the SHA-256 of the
    canonical submitted body, so a repeat is told from a conflicting resubmission
    without comparing JSON trees.
    """

    tenant = tenant_key_covered()  # (tenant, external_id) is unique

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    external_id = models.CharField(max_length=255)
    application = models.CharField(max_length=100)
    session_id = models.CharField(
        max_length=255,
        blank=True,
        default="",
        db_default="",
        help_text="The conversation or agent run it belongs to (empty: none); its turns are read in received order.",
    )
    input = models.JSONField()
    output = models.TextField()
    trace = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    model = models.CharField(max_length=200, blank=True, default="")
    confidence = models.FloatField(null=True, blank=True)
    content_hash = models.CharField(max_length=64, editable=False)
    audit_digest = models.CharField(
        max_length=64,
        editable=False,
        blank=True,
        default="",
        db_default="",  # rows written without it (bulk loads) hold no digest: no batch event commits to them
        help_text="SHA-256 of the record as received and classified (reviews.services.ingest.output_audit_digest); "
        "the leaf the ingest batch's audit event commits to.",
    )
    status = models.CharField(max_length=32, choices=OutputStatus.choices, default=OutputStatus.RECEIVED)
    risk_tier = models.CharField(max_length=50, blank=True, default="")
    # The classification the audit digest covers, kept once something after ingest changes it
    # (the judges' completion sets the tier and reason; an adjudication or a second look adds to
    # the reason): null while unchanged, so that ingest writes nothing more (keep_ingest_classification).
    received_risk_tier = models.CharField(
        max_length=50,
        null=True,
        blank=True,
        editable=False,
        help_text="The tier as classified at ingest; null: unchanged.",
    )
    received_decision_reason = models.TextField(
        null=True, blank=True, editable=False, help_text="The sampling reason as classified at ingest; null: unchanged."
    )
    review_required = models.BooleanField(default=False)
    delivery = models.CharField(max_length=16, choices=Delivery.choices, default=Delivery.DELIVER)
    policy_version = models.PositiveIntegerField(null=True, blank=True, help_text="Policy version that classified it.")
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True, default="", db_default="")
    final_output = models.TextField(null=True, blank=True, help_text="What may be delivered, once decided.")
    decided_by = models.ForeignKey(  # indexed by output_decided_by (partial)
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True, default="", help_text="Why this tier, and why (not) reviewed.")
    sampling_draw = models.FloatField(
        null=True, blank=True, help_text="The deterministic draw compared with the tier's review rate."
    )
    signal_snapshot = models.JSONField(
        null=True,
        blank=True,
        help_text="What the policy's signal rules read when it was classified: its measures, and its application's "
        "statistics version, observations and quantiles (policies/signals.py); the decision recomputes from it.",
    )
    received_at = models.DateTimeField(default=timezone.now)
    judge_plan = models.JSONField(
        default=list, blank=True, db_default=[], help_text="Judges to wait for: [[judge id, version], ...]."
    )
    judges_enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its judges were last enqueued (the reconciler re-enqueues late ones)."
    )
    judged_at = models.DateTimeField(null=True, blank=True, help_text="When the verdicts completed the sampling.")
    redacted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When retention blanked its payloads (input, output, trace, final output, corrections, comments); "
        "its digests stay.",
    )

    INGEST_CLASSIFICATION_FIELDS = ("received_risk_tier", "received_decision_reason")

    def keep_ingest_classification(self) -> tuple[str, ...]:
        """Call before changing ``risk_tier`` or ``decision_reason``: the values ingest classified
        (which the audit digest covers) are kept, once. Returns the fields to save with the change."""
        if self.received_risk_tier is None:
            self.received_risk_tier, self.received_decision_reason = self.risk_tier, self.decision_reason
        return self.INGEST_CLASSIFICATION_FIELDS

    @property
    def ingest_classification(self) -> tuple[str, str]:
        """``(tier, reason)`` as classified at ingest: what the output's audit digest covers."""
        if self.received_risk_tier is None:
            return self.risk_tier, self.decision_reason
        return self.received_risk_tier, self.received_decision_reason or ""

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
            # A session's turns in order (GET /api/v1/sessions/{id}, the earlier turns of a task); only
            # outputs that belong to a session are indexed.
            models.Index(
                fields=("tenant", "session_id", "received_at"),
                name="output_tenant_session",
                condition=~models.Q(session_id=""),
            ),
            # The judge reconciler's scan: outputs still waiting for verdicts (few at any time).
            models.Index(fields=("judges_enqueued_at",), name="output_judging", condition=models.Q(status="judging")),
            # The metrics rollup (quality/rollups.py): outputs decided since its last run.
            models.Index(
                fields=("tenant", "decided_at"),
                name="output_tenant_decided",
                condition=models.Q(decided_at__isnull=False),
            ),
            # A person's decisions (the PROTECT check when a person is removed). Partial: an
            # output decided by no person (most are never sampled) has no entry to write.
            models.Index(
                fields=("decided_by",), name="output_decided_by", condition=models.Q(decided_by__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application}/{self.external_id}"


class Queue(TenantOwnedModel):
    """Where review tasks wait. Fed by tiers and applications (empty: all); who may
    work it is a django-guardian object permission (``reviews.work_queue``)."""

    name = models.CharField(max_length=100)
    tiers = models.JSONField(default=list, blank=True, help_text="Tier names that feed it; empty for every tier.")
    applications = models.JSONField(default=list, blank=True, help_text="Applications that feed it; empty for all.")
    required_skills = models.JSONField(default=list, blank=True, help_text="Skills a reviewer needs to work it.")
    min_reviewer_level = models.PositiveSmallIntegerField(default=1)
    priority = models.SmallIntegerField(default=0, help_text="Higher first, among tasks due at the same time.")
    created_at = models.DateTimeField(auto_now_add=True)
    # Certification (docs/quality.md): off by default, so that a queue works as before.
    requires_certification = models.BooleanField(
        default=False, db_default=False, help_text="Only people holding a valid certification for it may claim."
    )
    exam_items = models.PositiveSmallIntegerField(
        default=20, db_default=20, help_text="Gold items in its qualification exam."
    )
    exam_pass_mark = models.FloatField(default=0.8, db_default=0.8, help_text="Share of exam items answered right.")
    certification_days = models.PositiveIntegerField(
        default=180, db_default=180, help_text="How long a certification lasts before recertification."
    )
    gold_rate = models.FloatField(
        default=0.0, db_default=0.0, help_text="Share of reviews followed by a gold item mixed into work (0: none)."
    )
    gold_window = models.PositiveSmallIntegerField(
        default=20, db_default=20, help_text="The last K live gold answers the accuracy is measured on."
    )
    gold_threshold = models.FloatField(
        default=0.7, db_default=0.7, help_text="Accuracy on the window below which the certification is suspended."
    )

    history = HistoricalRecords()

    class Meta(TenantOwnedModel.Meta):
        permissions = [("work_queue", "May claim and review tasks of this queue")]
        constraints = [
            models.UniqueConstraint(fields=("tenant", "name"), name="queue_unique_tenant_name"),
            models.CheckConstraint(
                condition=models.Q(min_reviewer_level__gte=1, min_reviewer_level__lte=3), name="queue_level_1_to_3"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    exam_items__gte=1,
                    exam_pass_mark__gte=0,
                    exam_pass_mark__lte=1,
                    gold_rate__gte=0,
                    gold_rate__lte=1,
                    gold_window__gte=1,
                    gold_threshold__gte=0,
                    gold_threshold__lte=1,
                    certification_days__gte=1,
                ),
                name="queue_certification_rules_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class QueueUserObjectPermission(UserObjectPermissionBase):
    """Direct foreign-key permission table (guardian's fast path) for queues."""

    content_object = models.ForeignKey(Queue, on_delete=models.CASCADE)


class QueueGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Queue, on_delete=models.CASCADE)


class QueueAccessAction(models.TextChoices):
    GRANT = "grant", "Granted"
    REVOKE = "revoke", "Revoked"


class QueueAccessEvent(TenantOwnedModel):
    """Who gave or took away the right to work a queue, from whom, and when.

    Written by ``queue_grant`` / ``queue_revoke`` (and their group variants) in the
    transaction that changes the permission row, and only when it changes. The
    subject is a person or a group; a group's name is kept, for groups may be deleted.
    People are deactivated, not deleted, so the person and the actor stay.
    """

    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="access_events")
    action = models.CharField(max_length=8, choices=QueueAccessAction.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    group = models.ForeignKey("auth.Group", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    group_name = models.CharField(max_length=150, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who made the change; empty for the platform operator at the command line.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=("tenant", "queue", "created_at"), name="queueaccess_tenant_queue")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(action__in=QueueAccessAction.values), name="queueaccess_action_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group_name="")
                | (models.Q(user__isnull=True) & ~models.Q(group_name="")),
                name="queueaccess_one_subject",
            ),
        ]

    def __str__(self) -> str:
        subject = self.user if self.user_id else f"group {self.group_name}"
        return f"{self.get_action_display()} {self.queue} to {subject}"


class TaskStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CLAIMED = "claimed", "Claimed"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class TaskPurpose(models.TextChoices):
    """Why a task exists: an approval the decision needs, a deliberate second opinion
    to measure agreement, a person's look after an end user's thumbs-down, a higher
    level's look when signals disagree (a person approved what a judge failed), or a
    higher level's adjudication when an output's overlap reviews disagree (its verdict is
    the output's decision)."""

    APPROVAL = "approval", "Approval"
    OVERLAP = "overlap", "Overlap (agreement sample)"
    USER_FEEDBACK = "user_feedback", "User feedback"
    CONFLICT = "conflict", "Signals disagree (a second look)"
    ADJUDICATION = "adjudication", "Reviews disagree (adjudication)"


class ReviewTask(TenantOwnedModel):
    """One review a person must do on one output. Claimed as a lease."""

    tenant = tenant_key_covered()  # (tenant, id) keys isolation

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    output = models.ForeignKey(Output, on_delete=models.CASCADE, related_name="tasks", db_index=False)  # task_output
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="tasks")
    purpose = models.CharField(max_length=16, choices=TaskPurpose.choices, default=TaskPurpose.APPROVAL)
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.PENDING)
    level_required = models.PositiveSmallIntegerField(default=1)
    priority = models.SmallIntegerField(default=0)
    due_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    claimed_by = models.ForeignKey(  # indexed by task_claimed_by (partial)
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    rubric = models.ForeignKey(  # indexed by task_rubric (partial)
        "policies.Rubric", on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    rubric_version = models.PositiveIntegerField(null=True, blank=True)
    escalation_reason = models.TextField(blank=True, default="", db_default="")
    sla_breached_at = models.DateTimeField(
        null=True, blank=True, help_text="When the SLA sweep found it still open past its due time (once)."
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # the partial index below: nearly every task has none
        help_text="A personal task (a gold item of an exam or mixed into work): only this person claims it.",
    )

    class Meta(TenantOwnedModel.Meta):
        indexes = [
            # Foreign keys that a new task leaves empty (a pending task has no holder, many no
            # rubric), indexed only where set: an inserted task writes no entry into them.
            models.Index(fields=("claimed_by",), name="task_claimed_by", condition=models.Q(claimed_by__isnull=False)),
            models.Index(fields=("rubric",), name="task_rubric", condition=models.Q(rubric__isnull=False)),
            # The claim's first look: a personal task waiting for this person (few, so partial).
            models.Index(
                fields=("assigned_to", "created_at"),
                name="task_personal_pending",
                condition=models.Q(status="pending", assigned_to__isnull=False),
            ),
            # The SLA sweep: open tasks not yet found late, by due time (partial: stays small).
            models.Index(
                fields=("due_at",),
                name="task_sla_open",
                condition=models.Q(status__in=("pending", "claimed"), sla_breached_at__isnull=True),
            ),
            # The claim: most urgent first among pending tasks (partial, so it stays small).
            models.Index(
                fields=("tenant", "due_at", "-priority", "created_at"),
                name="task_claim_order",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=("lease_expires_at",), name="task_lease", condition=models.Q(status="claimed")),
            models.Index(fields=("output",), name="task_output"),
            # The metrics rollup (quality/rollups.py): tasks found late since its last run.
            models.Index(
                fields=("tenant", "sla_breached_at"),
                name="task_tenant_sla_breached",
                condition=models.Q(sla_breached_at__isnull=False),
            ),
        ]
        constraints = [
            # One person never holds two tasks of one output (critical outputs need distinct
            # approvers), even when they claim from several connections at once: the claim's
            # NOT EXISTS cannot see a concurrent claim, this index can. It also serves that
            # NOT EXISTS ("a task of an output I already hold"; a reviewer holds few leases).
            models.UniqueConstraint(
                fields=("claimed_by", "output"),
                name="task_one_claim_per_output_and_person",
                condition=models.Q(status="claimed"),
            ),
            models.CheckConstraint(
                condition=models.Q(level_required__gte=1, level_required__lte=3), name="task_level_1_to_3"
            ),
            models.CheckConstraint(
                condition=~models.Q(status="claimed")
                | models.Q(claimed_by__isnull=False, lease_expires_at__isnull=False),
                name="task_claimed_has_holder",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} task on {self.output_id} ({self.status})"


class Review(TenantOwnedModel):
    """What one person decided about one output, under which rubric version, having seen what."""

    class Verdict(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        CORRECT = "correct", "Correct"
        ESCALATE = "escalate", "Escalate"

    tenant = tenant_key_covered()  # (review_tenant_created leads with it)

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    task = models.ForeignKey(ReviewTask, on_delete=models.PROTECT, related_name="reviews", null=True)
    # Indexed by review_one_per_output_and_reviewer, which leads with it.
    output = models.ForeignKey(Output, on_delete=models.CASCADE, related_name="reviews", db_index=False)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    purpose = models.CharField(max_length=16, choices=TaskPurpose.choices)
    decision = models.CharField(max_length=16, choices=Verdict.choices)
    scores = models.JSONField(default=dict, blank=True)
    corrected_output = models.TextField(blank=True, default="")
    comment = models.TextField(blank=True, default="")
    time_spent_seconds = models.PositiveIntegerField(null=True, blank=True)
    rubric = models.ForeignKey(  # indexed by review_rubric (partial)
        "policies.Rubric", on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    rubric_version = models.PositiveIntegerField(null=True, blank=True)
    shown = models.JSONField(
        default=dict, help_text="What the reviewer was shown: the output's content hash and fields."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            # Distinct reviewers per output, enforced by the database.
            models.UniqueConstraint(fields=("output", "reviewer"), name="review_one_per_output_and_reviewer"),
        ]
        # The metrics rollup (quality/rollups.py): reviews of an hour, and those since its last run.
        indexes = [
            models.Index(fields=("tenant", "created_at"), name="review_tenant_created"),
            models.Index(fields=("rubric",), name="review_rubric", condition=models.Q(rubric__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.reviewer_id} on {self.output_id}"


class JudgementResult(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    ERROR = "error", "Error (counts as unsure)"


class Judgement(TenantOwnedModel):
    """One judge's verdict on one output, under the judge version that gave it.

    One per output and judge (a redelivered task cannot add a second).
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    output = models.ForeignKey(Output, on_delete=models.CASCADE, related_name="judgements")
    judge = models.ForeignKey("policies.Judge", on_delete=models.PROTECT, related_name="judgements")
    judge_version = models.PositiveIntegerField()
    result = models.CharField(max_length=8, choices=JudgementResult.choices)
    score = models.FloatField(null=True, blank=True)
    unsure = models.BooleanField(default=False, help_text="An error, or a score in the judge's unsure band.")
    rationale = models.TextField(blank=True, default="")
    latency_ms = models.FloatField(default=0)
    attempts = models.PositiveSmallIntegerField(default=1)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    model = models.CharField(max_length=200, blank=True, default="")
    on_fail = models.CharField(
        max_length=16, default="force_review", help_text="The judge's on_fail when it judged (for recomputing)."
    )
    raise_to = models.CharField(max_length=50, blank=True, default="")
    flag_rate = models.FloatField(
        null=True,
        blank=True,
        help_text="The judge was flagged for low agreement when it judged: what it passed is sampled at this "
        "rate at least (for recomputing).",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=("output", "judge"), name="judgement_one_per_output_and_judge"),
            models.CheckConstraint(
                condition=models.Q(result__in=JudgementResult.values), name="judgement_result_valid"
            ),
        ]
        indexes = [models.Index(fields=("tenant", "judge", "-created_at"), name="judgement_tenant_judge")]

    def __str__(self) -> str:
        return f"{self.judge_id} {self.result} on {self.output_id}"


class Feedback(TenantOwnedModel):
    """An end user's thumbs up or down on an output, forwarded by the service."""

    class Rating(models.TextChoices):
        UP = "up", "Thumbs up"
        DOWN = "down", "Thumbs down"

    output = models.ForeignKey(Output, on_delete=models.CASCADE, related_name="feedback")
    rating = models.CharField(max_length=4, choices=Rating.choices)
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwnedModel.Meta):
        # The metrics rollup (quality/rollups.py): feedback since its last run.
        indexes = [models.Index(fields=("tenant", "created_at"), name="feedback_tenant_created")]

    def __str__(self) -> str:
        return f"{self.rating} on {self.output_id}"


class WebhookEndpoint(TenantOwnedModel):
    """Where a tenant wants decisions POSTed, signed with its secret."""

    url = models.URLField(max_length=500)
    secret = EncryptedTextField(help_text="HMAC-SHA256 key; never shown back, encrypted at rest.")
    description = models.CharField(max_length=200, blank=True, default="")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords(excluded_fields=["secret"])

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookDelivery(TenantOwnedModel):
    """One event (a decision, mostly) to one endpoint; its id is the idempotency id receivers de-duplicate on."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    output = models.ForeignKey(
        Output,
        on_delete=models.CASCADE,
        related_name="webhook_deliveries",
        null=True,
        blank=True,
        help_text="The output the event is about; empty for events about something else (judge.flagged).",
    )
    event = models.CharField(max_length=50, default="output.decided")
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwnedModel.Meta):
        indexes = [
            models.Index(fields=("next_attempt_at",), name="delivery_due", condition=models.Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.output_id} -> {self.endpoint_id} ({self.status})"


class WebhookAttempt(TenantOwnedModel):
    """Every attempt at a delivery, for the admin and the audit."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.delivery_id} at {self.attempted_at}: {self.status_code or self.error[:40]}"


class ExportStatus(models.TextChoices):
    PENDING = "pending", "Waiting to start"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ComplianceExport(TenantOwnedModel):
    """A compliance bundle asked for a period (reviews/bundle.py builds it on Celery).

    The bundle (outputs.csv, outputs.jsonl, summary.html, chain.jsonl, leaves.jsonl,
    manifest.json) is a zip under ``HITL_EXPORT_DIR``; ``files`` holds each file's SHA-256
    and size. Building it again (a retried task) starts over and gives the same files.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    requested_key = models.ForeignKey(
        "tenants.ApiKey", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    requested_role = models.CharField(max_length=16, blank=True, default="")
    outputs_done = models.PositiveIntegerField(default=0)
    outputs_total = models.PositiveIntegerField(null=True, blank=True)
    files = models.JSONField(default=dict, blank=True, help_text="File name -> {sha256, bytes}.")
    archive = models.CharField(max_length=300, blank=True, default="", help_text="The zip, relative to the export dir.")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=("tenant", "-created_at"), name="export_tenant_created")]
        constraints = [
            models.CheckConstraint(condition=models.Q(period_end__gt=models.F("period_start")), name="export_period"),
            models.CheckConstraint(condition=models.Q(status__in=ExportStatus.values), name="export_status_valid"),
        ]

    def __str__(self) -> str:
        return f"export {self.period_start:%Y-%m-%d}..{self.period_end:%Y-%m-%d} ({self.status})"


# Golden sets and certifications (issue 13; docs/quality.md). The tables the claim and the
# review consult live here, in the reviews layer; the quality layer curates and shows them.


class GoldenSet(TenantOwnedModel):
    """Expert-reviewed items with the answers they expect (seed 003: about 200), for one queue
    or one skill. Versioned: each change of its items makes a new ``version``, and an item
    belongs to the versions from ``added_in`` up to, not including, ``removed_in``."""

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, null=True, blank=True, related_name="golden_sets")
    skill = models.CharField(max_length=100, blank=True, default="", help_text="For every queue requiring it.")
    version = models.PositiveIntegerField(default=0, help_text="0 while it holds no item yet.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=("tenant", "name"), name="goldenset_unique_tenant_name"),
            models.CheckConstraint(
                condition=models.Q(queue__isnull=False) | ~models.Q(skill=""), name="goldenset_queue_or_skill"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class GoldItem(TenantOwnedModel):
    """One item of a golden set: the output as a reviewer sees it and the expected answer
    (decision, scores per criterion of a rubric version, the correction when it is one)."""

    class Expected(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        CORRECT = "correct", "Correct"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    golden_set = models.ForeignKey(GoldenSet, on_delete=models.CASCADE, related_name="items")
    added_in = models.PositiveIntegerField()
    removed_in = models.PositiveIntegerField(null=True, blank=True)
    source_output = models.ForeignKey(
        Output, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="Promoted from."
    )
    application = models.CharField(max_length=100)
    input = models.JSONField()
    output = models.TextField()
    trace = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    model = models.CharField(max_length=200, blank=True, default="")
    confidence = models.FloatField(null=True, blank=True)
    risk_tier = models.CharField(max_length=50, blank=True, default="")
    rubric = models.ForeignKey("policies.Rubric", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    rubric_version = models.PositiveIntegerField(null=True, blank=True)
    expected_decision = models.CharField(max_length=16, choices=Expected.choices)
    expected_scores = models.JSONField(default=dict, blank=True)
    expected_output = models.TextField(blank=True, default="", help_text="The correction, when it is one.")
    note = models.TextField(blank=True, default="", help_text="Why this is the answer (shown to quality leads).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=("tenant", "golden_set", "added_in"), name="golditem_set_version")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(removed_in__isnull=True) | models.Q(removed_in__gt=models.F("added_in")),
                name="golditem_removed_after_added",
            ),
            models.CheckConstraint(
                condition=models.Q(expected_decision__in=("approve", "reject", "correct")),
                name="golditem_expected_decision_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.expected_decision} item {self.pk} of set {self.golden_set_id}"


class CertificationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    SUSPENDED = "suspended", "Suspended"
    REVOKED = "revoked", "Revoked"


class Certification(TenantOwnedModel):
    """Who may work a queue that requires certification, from when until when.

    Earned by passing the queue's exam; one row per person and queue, whose status moves
    (every move audited). The claim reads it: active and ``valid_until`` still ahead.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="certifications")
    status = models.CharField(max_length=16, choices=CertificationStatus.choices, default=CertificationStatus.ACTIVE)
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField()
    exam = models.ForeignKey("Exam", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    status_reason = models.TextField(blank=True, default="")
    status_changed_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            # Also the claim's EXISTS: (tenant, person, queue) finds the one row.
            models.UniqueConstraint(fields=("tenant", "user", "queue"), name="certification_one_per_person_queue"),
            models.CheckConstraint(
                condition=models.Q(status__in=CertificationStatus.values), name="certification_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(valid_until__gt=models.F("valid_from")), name="certification_period"
            ),
        ]
        indexes = [
            # The expiry sweep's scan: active certifications by the end of their period.
            models.Index(
                fields=("valid_until",),
                name="certification_active_until",
                condition=models.Q(status="active"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.queue_id}: {self.status} until {self.valid_until:%Y-%m-%d}"


class ExamStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Exam(TenantOwnedModel):
    """A qualification exam: N gold items of a queue shown to one person as ordinary tasks,
    scored against the expected answers with the queue's pass mark."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="exams")
    golden_set = models.ForeignKey(GoldenSet, on_delete=models.PROTECT, related_name="exams")
    golden_set_version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ExamStatus.choices, default=ExamStatus.IN_PROGRESS)
    items_total = models.PositiveSmallIntegerField()
    items_answered = models.PositiveSmallIntegerField(default=0)
    items_correct = models.PositiveSmallIntegerField(default=0)
    pass_mark = models.FloatField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=("tenant", "user", "-started_at"), name="exam_tenant_user")]
        constraints = [
            models.UniqueConstraint(
                fields=("tenant", "user", "queue"),
                condition=models.Q(status="in_progress"),
                name="exam_one_in_progress_per_person_queue",
            ),
            models.CheckConstraint(condition=models.Q(status__in=ExamStatus.values), name="exam_status_valid"),
        ]

    @property
    def score(self) -> float | None:
        return self.items_correct / self.items_total if self.status in (ExamStatus.PASSED, ExamStatus.FAILED) else None

    def __str__(self) -> str:
        return f"exam of {self.user_id} on {self.queue_id} ({self.status})"


class GoldTaskKind(models.TextChoices):
    EXAM = "exam", "Exam item"
    LIVE = "live", "Mixed into real work"


class GoldTask(TenantOwnedModel):
    """A review task that is a gold item in disguise, and the answer given to it.

    The task and its output (a fresh copy of the item, status ``gold``) look like any other;
    only this row, which the reviewer never sees, says what was expected.
    """

    # A foreign key with a unique constraint, not a OneToOneField: hitl/isolation.py twins
    # many-to-one keys with the tenant, so that a gold row never points at another tenant's task.
    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="gold_tasks")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=GoldTaskKind.choices)
    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, null=True, blank=True, related_name="gold_tasks")
    item = models.ForeignKey(GoldItem, on_delete=models.PROTECT, related_name="gold_tasks")
    golden_set_version = models.PositiveIntegerField()
    answer_decision = models.CharField(max_length=16, blank=True, default="")
    answer_scores = models.JSONField(null=True, blank=True)
    correct = models.BooleanField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    # What a review keeps beside the answer, so that "My reviews" lists it as it lists any review.
    answer_time_spent_seconds = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwnedModel.Meta):
        indexes = [
            # The rolling window: a person's last K live answers in a queue.
            models.Index(fields=("tenant", "user", "queue", "-answered_at"), name="goldtask_window"),
        ]
        constraints = [
            models.UniqueConstraint(fields=("task",), name="goldtask_one_per_task"),
            models.CheckConstraint(
                condition=models.Q(kind="live", exam__isnull=True) | models.Q(kind="exam", exam__isnull=False),
                name="goldtask_exam_iff_exam_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} gold task {self.task_id}"
