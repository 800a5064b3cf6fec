"""Reads for policies: the current document, its history, and the compiled form ingest uses."""

import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from hitl.cache import ByteBoundedCache, config_cache, weight_of
from hitl.errors import NotFoundError
from policies.engine import CompiledPolicy
from policies.models import Application, ApplicationStatistics, Judge, JudgeFlag, Override, Policy, Rubric
from policies.signals import ApplicationSketches, StatisticsView, sketches_decode
from tenants.models import Tenant


def policy_get(*, tenant: Tenant) -> Policy:
    policy = Policy.objects.for_tenant(tenant).first()
    if policy is None:
        raise NotFoundError("This tenant has no policy yet.")
    return policy


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One published version of a policy: the document, its number, when, by whom and why."""

    version: int
    document: dict
    changed_at: datetime
    changed_by: str | None
    reason: str


def _policy_version(record) -> PolicyVersion:
    user = record.history_user
    return PolicyVersion(
        version=record.version,
        document=record.document,
        changed_at=record.history_date,
        changed_by=user.get_username() if user else None,
        reason=record.history_change_reason or "",
    )


def policy_current(*, tenant: Tenant, policy: Policy | None = None) -> PolicyVersion:
    """The version in force (or that of ``policy``, just published), as its history record
    tells it: who published it, when, why."""
    policy = policy or policy_get(tenant=tenant)
    record = (
        policy.history.filter(version=policy.version).select_related("history_user").order_by("-history_date").first()
    )
    if record is None:  # published by a data migration, which writes no history
        return PolicyVersion(policy.version, policy.document, policy.updated_at, None, "")
    return _policy_version(record)


def policy_history(*, tenant: Tenant, limit: int = 100):
    """Published versions, newest first, with who and why (history records)."""
    policy = policy_get(tenant=tenant)
    return policy.history.select_related("history_user").order_by("-version", "-history_date")[:limit]


def policy_versions(*, tenant: Tenant, limit: int = 100) -> list[PolicyVersion]:
    """:func:`policy_history` as PolicyVersion rows, as the API shows them."""
    return [_policy_version(record) for record in policy_history(tenant=tenant, limit=limit)]


def policy_version_document(*, tenant: Tenant, version: int) -> dict | None:
    """The document of one version, for recomputing old decisions."""
    policy = policy_get(tenant=tenant)
    record = policy.history.filter(version=version).order_by("-history_date").first()
    return record.document if record else None


def compiled_policy(*, tenant: Tenant) -> CompiledPolicy:
    """The tenant's policy and overrides, compiled; cached per configuration token.

    The token changes with every published policy or override (in the same
    transaction), and the API key lookup reads it on every request, so a cached
    entry is never stale: a new token is a new cache key.
    """
    return _compiled(tenant.pk, str(tenant.config_token))


@config_cache("compiled policies")
def _compiled(tenant_id: int, config_token: str) -> tuple[CompiledPolicy, int]:
    tenant = Tenant(pk=tenant_id)
    policy = Policy.objects.for_tenant(tenant).values("version", "document").first()
    if policy is None:
        raise NotFoundError("This tenant has no policy yet.")
    overrides = dict(
        Application.objects.for_tenant(tenant).exclude(override=Override.NONE).values_list("name", "override")
    )
    compiled = CompiledPolicy(
        tenant_id=tenant_id, version=policy["version"], document=policy["document"], overrides=overrides
    )
    return compiled, weight_of(policy["document"], overrides)


def rubric_list(*, tenant: Tenant):
    return Rubric.objects.for_tenant(tenant).order_by("name")


def rubric_get(*, tenant: Tenant, name: str) -> Rubric:
    rubric = Rubric.objects.for_tenant(tenant).filter(name=name).first()
    if rubric is None:
        raise NotFoundError("Rubric not found.")
    return rubric


def compiled_policy_version(*, tenant: Tenant, version: int) -> CompiledPolicy:
    """A published version, compiled, for finishing decisions taken under it (callers
    decide without overrides: those acted at ingest). The current version comes from
    the token-keyed cache; an older one is read from the history."""
    current = compiled_policy(tenant=tenant)
    if current.version == version:
        return current
    return _compiled_version(tenant.pk, str(tenant.config_token), version)


@config_cache("compiled policy versions")
def _compiled_version(tenant_id: int, config_token: str, version: int) -> tuple[CompiledPolicy, int]:
    document = policy_version_document(tenant=Tenant(pk=tenant_id), version=version)
    if document is None:
        raise NotFoundError(f"Policy version {version} is not in the history.")
    return CompiledPolicy(tenant_id=tenant_id, version=version, document=document, overrides={}), weight_of(document)


# Judges ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JudgeRoute:
    id: int
    name: str
    version: int
    kind: str
    applications: frozenset[str]
    tiers: frozenset[str]

    def applies(self, application: str, tier: str) -> bool:
        return (not self.applications or application in self.applications) and (not self.tiers or tier in self.tiers)


@dataclass(frozen=True, slots=True)
class JudgeTable:
    judges: tuple[JudgeRoute, ...]

    def plan(self, application: str, tier: str) -> list[list[int]]:
        """[[judge id, version], ...] of the active judges that run on such an output."""
        return [[judge.id, judge.version] for judge in self.judges if judge.applies(application, tier)]

    def name_of(self, judge_id: int) -> str:
        return next((judge.name for judge in self.judges if judge.id == judge_id), str(judge_id))


def judge_table(*, tenant: Tenant) -> JudgeTable:
    """The tenant's active judges, cached per configuration token (judge writes renew it)."""
    return _judge_table(tenant.pk, str(tenant.config_token))


@config_cache("judge tables")
def _judge_table(tenant_id: int, config_token: str) -> tuple[JudgeTable, int]:
    rows = list(
        Judge.objects.for_tenant(Tenant(pk=tenant_id))
        .filter(is_active=True)
        .order_by("name")
        .values("id", "name", "version", "kind", "applications", "tiers")
    )
    table = JudgeTable(
        tuple(
            JudgeRoute(
                row["id"],
                row["name"],
                row["version"],
                row["kind"],
                frozenset(row["applications"]),
                frozenset(row["tiers"]),
            )
            for row in rows
        )
    )
    return table, weight_of(rows)


def judge_list(*, tenant: Tenant):
    return Judge.objects.for_tenant(tenant).order_by("name")


def judge_get(*, tenant: Tenant, judge_id: int) -> Judge:
    judge = Judge.objects.for_tenant(tenant).filter(pk=judge_id).first()
    if judge is None:
        raise NotFoundError("Judge not found.")
    return judge


def judge_history(*, tenant: Tenant, judge_id: int, limit: int = 100):
    judge = judge_get(tenant=tenant, judge_id=judge_id)
    return judge.history.select_related("history_user").order_by("-version", "-history_date")[:limit]


def rubric_criteria(*, tenant: Tenant, rubric_id: int | None, version: int | None) -> list[dict] | None:
    """The criteria of a rubric exactly as they were at ``version`` (a history row never changes).

    Cached per configuration token, as the compiled policy is: a review reads no rubric.
    """
    if rubric_id is None:
        return None
    return _rubric_criteria(tenant.pk, str(tenant.config_token), rubric_id, version)


@config_cache("rubric criteria")
def _rubric_criteria(
    tenant_id: int, config_token: str, rubric_id: int, version: int | None
) -> tuple[list[dict] | None, int]:
    record = (
        Rubric.history.filter(tenant_id=tenant_id, id=rubric_id, version=version)
        .order_by("-history_date")
        .values("criteria")
        .first()
    )
    criteria = record["criteria"] if record else None
    return criteria, weight_of(criteria)


def rubric_scope(*, tenant: Tenant, rubric_id: int | None, version: int | None) -> str:
    """What a rubric version scores: ``output`` (the output under review) or ``session`` (the
    whole session it belongs to). Cached as the criteria are; ``output`` without a rubric."""
    if rubric_id is None:
        return "output"
    return _rubric_scope(tenant.pk, str(tenant.config_token), rubric_id, version)


@config_cache("rubric scope")
def _rubric_scope(tenant_id: int, config_token: str, rubric_id: int, version: int | None) -> tuple[str, int]:
    scope = (
        Rubric.history.filter(tenant_id=tenant_id, id=rubric_id, version=version)
        .order_by("-history_date")
        .values_list("scope", flat=True)
        .first()
    )
    return scope or "output", 8


def application_list(*, tenant: Tenant) -> list[Application]:
    """The applications the tenant configured (a stop button, a rubric), by name."""
    return list(Application.objects.for_tenant(tenant).select_related("rubric").order_by("name"))


def application_history(*, tenant: Tenant, name: str, limit: int = 20):
    """Changes to one application's stop button and rubric, newest first, with who and why."""
    return (
        Application.history.filter(tenant_id=tenant.pk, name=name)
        .select_related("history_user")
        .order_by("-history_date")[:limit]
    )


def rubric_history(*, tenant: Tenant, name: str, limit: int = 100):
    """Every published version of one rubric, newest first, with who and why."""
    rubric = rubric_get(tenant=tenant, name=name)
    return rubric.history.select_related("history_user").order_by("-version", "-history_date")[:limit]


def judge_flag_rates(*, tenant: Tenant) -> dict[int, float | None]:
    """Open flags: judge id -> the rate outputs it passes are sampled at (None: flagged, no boost).

    Cached per configuration token (raising or clearing a flag renews it): storing verdicts reads no flag.
    """
    return _judge_flag_rates(tenant.pk, str(tenant.config_token))


@config_cache("judge flags")
def _judge_flag_rates(tenant_id: int, config_token: str) -> tuple[dict[int, float | None], int]:
    rates = dict(
        JudgeFlag.unscoped.filter(tenant_id=tenant_id)
        .filter(cleared_at__isnull=True)
        .values_list("judge_id", "sample_rate")
    )
    return rates, 64 + 32 * len(rates)


def judge_flags(*, tenant: Tenant, judge_id: int | None = None, open_only: bool = False):
    """Flags, newest first, with the judge and who cleared them."""
    flags = JudgeFlag.objects.for_tenant(tenant).select_related("judge", "cleared_by").order_by("-flagged_at")
    if judge_id is not None:
        flags = flags.filter(judge_id=judge_id)
    if open_only:
        flags = flags.filter(cleared_at__isnull=True)
    return flags


# Signals' statistics ---------------------------------------------------------

_statistics_cache = ByteBoundedCache("application statistics")


def application_statistics(*, tenant: Tenant, now: float | None = None) -> StatisticsView:
    """The tenant's applications' running statistics as the policy engine reads them at ingest.

    Cached per process for ``HITL_SIGNAL_STATISTICS_SECONDS`` (60): the periodic job refreshes
    them about as often, and a decision stores the version and figures it read, so a process
    reading a minute-old version decides as deterministically as one reading the newest. One
    query a tenant a period, none per batch.
    """
    period = max(1, int(settings.HITL_SIGNAL_STATISTICS_SECONDS))
    generation = int((time.time() if now is None else now) // period)
    return _statistics_cache.get_or_build((tenant.pk, generation), lambda: _statistics_build(tenant))


def _statistics_build(tenant: Tenant) -> tuple[StatisticsView, int]:
    rows = list(
        ApplicationStatistics.objects.for_tenant(tenant)
        .filter(version__gt=0)
        .values_list("application", "version", "observations", "sketches")
    )
    by_application = {
        application: ApplicationSketches(application, version, observations, sketches_decode(sketches))
        for application, version, observations, sketches in rows
    }
    return StatisticsView.live(by_application), weight_of([row[3] for row in rows])


def application_statistics_list(*, tenant: Tenant) -> list[ApplicationStatistics]:
    """Each application's statistics row (for the console and the tests), by name."""
    return list(ApplicationStatistics.objects.for_tenant(tenant).order_by("application"))
