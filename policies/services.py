"""Writes for policies, application overrides and rubrics.

Each write bumps the tenant's ``config_token`` in the same transaction, so that
ingest, which reads the token with the API key on every request, uses the new
configuration from the very next request on.
"""

from collections.abc import Callable

from django.db import IntegrityError, transaction
from pydantic import ValidationError

from hitl.errors import (
    ConflictError,
    DomainValidationError,
    NotFoundError,
    RuleViolationError,
    StaleVersionError,
    fields_message,
    pydantic_error,
    version_check,
)
from hitl.json_limits import config_document_check
from policies.defaults import DEFAULT_POLICY
from policies.judges.runners import judge_params_normalize
from policies.models import Application, Judge, JudgeFlag, JudgeKind, Override, Policy, Rubric
from policies.schemas import JudgeSpec, PolicyDocument, RubricDocument
from tenants.audit import audit_record, changes
from tenants.models import Tenant
from tenants.services import tenant_config_changed


def _field_label(location: tuple, document: dict) -> str:
    """'rule 2 (name)' or 'tier 1 (high)' for error messages people can act on."""
    if len(location) >= 2 and location[0] in ("rules", "tiers") and isinstance(location[1], int):
        index = location[1]
        items = document.get(location[0]) if isinstance(document, dict) else None
        item = items[index] if isinstance(items, list) and index < len(items) else None
        name = item.get("name") if isinstance(item, dict) else None
        label = f"{location[0][:-1]} {index + 1}"
        return f"{label} ({name})" if name else label
    return ""


def _validation_error(error: ValidationError, document: dict) -> DomainValidationError:
    fields: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        location = item["loc"]
        path = ".".join(str(part) for part in location) or "body"
        label = _field_label(location, document)
        field = str(location[-1]) if location and not isinstance(location[-1], int) else path
        message = f"{label}: {field}: {item['msg']}" if label else item["msg"]
        fields.setdefault(path, []).append(message)
    return pydantic_error(error, fields)


# Which of some queue names a tenant has, for a tier's ``on_sla_breach.queue``. Queues live in
# the reviews app, a layer above; it sets this when it loads (a higher layer passing a callable
# down, house style rule 19). Unset (this app alone), queue names go unchecked.
queue_names_existing: Callable[[Tenant, set[str]], set[str]] | None = None

# What a rubric published with ``require_recertification`` does: every active certification of
# the queues using it expires (its rows at once; the function it returns records their events).
# Certifications live in the reviews app, a layer above; it sets this when it loads (rule 19, as
# above). Unset (this app alone), the flag is refused.
rubric_recertification_require: Callable[..., object] | None = None


def policy_validate(*, tenant: Tenant, document: dict) -> PolicyDocument:
    """Check size and numbers, shape, then references: each rule's tier, the default tier, each tier's rubric."""
    config_document_check(document, what="policy")
    try:
        parsed = PolicyDocument.model_validate(document)
    except ValidationError as error:
        raise _validation_error(error, document) from error
    fields: dict[str, list[str]] = {}
    names = [tier.name for tier in parsed.tiers]
    for index, name in enumerate(names):
        if names.index(name) != index:
            fields[f"tiers.{index}.name"] = [f"tier {index + 1}: name '{name}' is used twice"]
    known = ", ".join(names)
    if parsed.default_tier not in names:
        fields["default_tier"] = [f"default_tier '{parsed.default_tier}' is not one of the tiers ({known})"]
    modes = {tier.name: tier.mode for tier in parsed.tiers}
    for index, rule in enumerate(parsed.rules):
        label = f"rule {index + 1}" + (f" ({rule.name})" if rule.name else "")
        if rule.tier not in names:
            fields[f"rules.{index}.tier"] = [f"{label}: tier '{rule.tier}' is not one of the tiers ({known})"]
        elif rule.mode is not None and modes[rule.tier] != "hybrid":
            fields[f"rules.{index}.mode"] = [
                f"{label}: names mode '{rule.mode}' but tier '{rule.tier}' is {modes[rule.tier]}; "
                "only a hybrid tier takes its mode from the rule"
            ]
    for index, signal in enumerate(parsed.signals):
        if signal.raise_to is not None and signal.raise_to not in names:
            label = f"signal {index + 1}" + (f" ({signal.name})" if signal.name else "")
            fields[f"signals.{index}.raise_to"] = [
                f"{label}: tier '{signal.raise_to}' is not one of the tiers ({known})"
            ]
    queues = {tier.on_sla_breach.queue for tier in parsed.tiers if tier.on_sla_breach and tier.on_sla_breach.queue}
    if queues and queue_names_existing is not None:
        existing = queue_names_existing(tenant, queues)
        for index, tier in enumerate(parsed.tiers):
            wanted_queue = tier.on_sla_breach.queue if tier.on_sla_breach else None
            if wanted_queue and wanted_queue not in existing:
                fields[f"tiers.{index}.on_sla_breach.queue"] = [
                    f"tier {index + 1} ({tier.name}): no queue named '{wanted_queue}'"
                ]
    wanted = {tier.rubric for tier in parsed.tiers if tier.rubric}
    if wanted:
        existing = set(Rubric.objects.for_tenant(tenant).filter(name__in=wanted).values_list("name", flat=True))
        for index, tier in enumerate(parsed.tiers):
            if tier.rubric and tier.rubric not in existing:
                fields[f"tiers.{index}.rubric"] = [f"tier {index + 1} ({tier.name}): no rubric named '{tier.rubric}'"]
    if fields:
        raise RuleViolationError(fields_message(fields), fields=fields)
    return parsed


def policy_document_normalized(document: PolicyDocument) -> dict:
    """The stored form: every field explicit (defaults too), so that a version reads on its own."""
    return document.model_dump(mode="json", by_alias=True, exclude_none=True)


@transaction.atomic
def policy_create_default(*, tenant: Tenant) -> Policy:
    document = policy_document_normalized(PolicyDocument.model_validate(DEFAULT_POLICY))
    policy = Policy.objects.for_tenant(tenant).create(version=1, document=document)
    tenant_config_changed(tenant=tenant)
    _policy_audit(tenant, policy, None, "the default policy", None)
    return policy


def _policy_audit(tenant: Tenant, policy: Policy, before_version: int | None, reason: str, user) -> None:
    """The published version in full (the previous one is in the previous event)."""
    audit_record(
        tenant=tenant,
        actor=user,
        kind="policy.published",
        object_type="policy",
        object_id=policy.pk,
        data={
            "before": {"version": before_version},
            "after": {"version": policy.version, "document": policy.document},
            "reason": reason,
        },
    )


@transaction.atomic
def policy_publish(
    *, tenant: Tenant, document: dict, user=None, reason: str = "", expected_version: int | None = None
) -> Policy:
    """Validate and publish a new version of the tenant's policy.

    ``expected_version``: the version the change was made from (a form opened earlier, a
    copy read from the API); if another version was published meanwhile, nothing is
    written (StaleVersionError), so that one person's change does not silently undo another's.
    """
    parsed = policy_validate(tenant=tenant, document=document)
    policy = Policy.objects.for_tenant(tenant).select_for_update(no_key=True).first()
    if policy is None:
        policy = Policy(tenant=tenant, version=0)
    if expected_version is not None and policy.version != expected_version:
        message = (
            f"The policy changed since you opened it (version {policy.version} is in force now, "
            f"you started from version {expected_version}); look at it and make your change again."
        )
        raise StaleVersionError(f"version: {message}", fields={"version": [message]})
    before_version = policy.version or None
    policy.version += 1
    policy.document = policy_document_normalized(parsed)
    policy._history_user = user
    policy._change_reason = reason or None
    policy.save()
    tenant_config_changed(tenant=tenant)
    _policy_audit(tenant, policy, before_version, reason, user)
    return policy


def _locked_or_inserted(queryset, new):
    """The row ``queryset`` finds, locked; or ``new``, inserted. Safe when two requests create it at once.

    Returns (row, inserted). ``new`` carries everything its first version needs,
    so a new row gets one history record, not a create and an update.
    """
    existing = queryset.select_for_update(no_key=True).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            new.save(force_insert=True)
        return new, True
    except IntegrityError:  # created meanwhile by a concurrent request: update that one
        return queryset.select_for_update(no_key=True).get(), False


@transaction.atomic
def application_override_set(*, tenant: Tenant, name: str, mode: str, user=None, reason: str = "") -> Application:
    """The stop button: ``review_all`` holds every new output, ``block`` refuses delivery, ``none`` clears."""
    if mode not in Override.values:
        raise DomainValidationError(
            f"mode: must be one of {', '.join(Override.values)}", fields={"mode": [f"Unknown mode '{mode}'."]}
        )

    def apply(application: Application) -> Application:
        application.override = mode
        application.override_reason = reason
        application._history_user = user
        application._change_reason = reason or f"override {mode}"
        return application

    queryset = Application.objects.for_tenant(tenant).filter(name=name)
    application, inserted = _locked_or_inserted(queryset, apply(Application(tenant=tenant, name=name)))
    before = {"override": "", "override_reason": ""}
    if not inserted:
        before = {"override": application.override, "override_reason": application.override_reason}
        apply(application).save()
    tenant_config_changed(tenant=tenant)
    after = {"override": mode, "override_reason": reason}
    audit_record(
        tenant=tenant,
        actor=user,
        kind="application.override_set",
        object_type="application",
        object_id=name,
        data={"before": before, "after": after},
    )
    return application


def rubric_validate(*, document: dict) -> RubricDocument:
    config_document_check(document, what="rubric")
    try:
        return RubricDocument.model_validate(document)
    except ValidationError as error:
        raise _validation_error(error, document) from error


@transaction.atomic
def rubric_publish(
    *,
    tenant: Tenant,
    document: dict,
    user=None,
    reason: str = "",
    expected_version: int | None = None,
    require_recertification: bool = False,
) -> tuple[Rubric, bool]:
    """Create a rubric, or publish a new version of the one with the same name. Returns (rubric, created).

    ``reason`` goes to the version's history record. ``expected_version``: the version the
    caller's copy is of; a StaleVersionError when it is not the current one (or the rubric
    does not exist). ``require_recertification``: every active certification of the queues
    using the rubric expires, in this transaction (``rubric_recertification_require``, set by
    the reviews layer).
    """
    parsed = rubric_validate(document=document)

    def apply(rubric: Rubric, version: int) -> Rubric:
        rubric.version = version
        rubric.description = parsed.description
        rubric.criteria = [criterion.model_dump(mode="json", exclude_none=True) for criterion in parsed.criteria]
        rubric.scope = parsed.scope
        rubric.updated_by = user
        rubric._history_user = user
        rubric._change_reason = reason or None
        return rubric

    queryset = Rubric.objects.for_tenant(tenant).filter(name=parsed.name)
    if expected_version is not None:
        current = queryset.select_for_update(no_key=True).values_list("version", flat=True).first()
        version_check(what=f"rubric '{parsed.name}'", current=current, expected=expected_version)
    rubric, created = _locked_or_inserted(queryset, apply(Rubric(tenant=tenant, name=parsed.name), 1))
    if not created:
        apply(rubric, rubric.version + 1).save()
    tenant_config_changed(tenant=tenant)
    expirations = None
    if require_recertification:
        if rubric_recertification_require is None:
            raise DomainValidationError(
                "require_recertification: no certifications here.",
                fields={"require_recertification": ["Certifications are not installed."]},
            )
        # Its rows now, its audit events after the publication's: every row before any event
        # (an event appended at once, inside a caller's transaction, holds the chain's counter row).
        expirations = rubric_recertification_require(tenant=tenant, rubric=rubric, actor=user)
    audit_record(
        tenant=tenant,
        actor=user,
        kind="rubric.published",
        object_type="rubric",
        object_id=rubric.pk,
        data={
            "before": {"version": None if created else rubric.version - 1},
            "after": {
                "name": rubric.name,
                "version": rubric.version,
                "description": rubric.description,
                "criteria": rubric.criteria,
            },
            "reason": reason,
            "require_recertification": require_recertification,
        },
    )
    if expirations is not None:
        expirations()
    return rubric, created


@transaction.atomic
def application_rubric_set(*, tenant: Tenant, name: str, rubric: Rubric | None, user=None) -> Application:
    """Name the rubric an application's reviews use (None: the tier's)."""
    if rubric is not None and rubric.tenant_id != tenant.pk:
        raise DomainValidationError("rubric: not found", fields={"rubric": ["Not found."]})

    def apply(application: Application) -> Application:
        application.rubric = rubric
        application._history_user = user
        return application

    queryset = Application.objects.for_tenant(tenant).filter(name=name)
    before = queryset.values_list("rubric_id", flat=True).first()
    application, inserted = _locked_or_inserted(queryset, apply(Application(tenant=tenant, name=name)))
    if not inserted:
        before = application.rubric_id
        apply(application).save()
    tenant_config_changed(tenant=tenant)
    audit_record(
        tenant=tenant,
        actor=user,
        kind="application.rubric_set",
        object_type="application",
        object_id=name,
        data={"before": {"rubric": before}, "after": {"rubric": None if rubric is None else rubric.pk}},
    )
    return application


def _judge_state(judge: Judge) -> dict:
    """A judge's configuration as the audit log keeps it: never its API key, only whether one is set."""
    return {
        "name": judge.name,
        "kind": judge.kind,
        "version": judge.version,
        "description": judge.description,
        "applications": judge.applications,
        "tiers": judge.tiers,
        "params": judge.params,
        "has_api_key": bool(judge.api_key),
        "on_fail": judge.on_fail,
        "raise_to": judge.raise_to,
        "unsure_low": judge.unsure_low,
        "unsure_high": judge.unsure_high,
        "is_active": judge.is_active,
    }


# Judges ---------------------------------------------------------------------


def judge_validate(*, tenant: Tenant, data: dict) -> tuple[JudgeSpec, dict]:
    """The spec and its normalized params; errors name the field (params errors as params.<field>)."""
    config_document_check(data, what="judge")
    try:
        spec = JudgeSpec.model_validate(data)
    except ValidationError as error:
        raise _validation_error(error, data) from error
    fields: dict[str, list[str]] = {}
    try:
        params = judge_params_normalize(kind=spec.kind, params=spec.params)
    except ValidationError as error:
        params = {}
        for item in error.errors(include_url=False):
            path = ".".join(["params", *(str(part) for part in item["loc"])])
            fields.setdefault(path, []).append(item["msg"])
    except ValueError as error:
        params = {}
        fields["params"] = [str(error)]
    policy = Policy.objects.for_tenant(tenant).values_list("document", flat=True).first() or {}
    tier_names = [tier["name"] for tier in policy.get("tiers", [])]
    known = ", ".join(tier_names)
    for index, tier in enumerate(spec.tiers):
        if tier not in tier_names:
            fields[f"tiers.{index}"] = [f"'{tier}' is not one of the policy's tiers ({known})"]
    if spec.raise_to is not None and spec.raise_to not in tier_names:
        fields["raise_to"] = [f"'{spec.raise_to}' is not one of the policy's tiers ({known})"]
    if spec.kind != JudgeKind.LLM and spec.api_key:
        fields["api_key"] = ["Only LLM judges take a key."]
    if fields:
        # params follow the kind's own schema (docs/judges.md); tiers name the policy's: rules, not shape.
        raise RuleViolationError(fields_message(fields), fields=fields)
    return spec, params


def _judge_apply(judge: Judge, spec: JudgeSpec, params: dict, user) -> Judge:
    judge.name = spec.name
    judge.kind = spec.kind
    judge.description = spec.description
    judge.applications = spec.applications
    judge.tiers = spec.tiers
    judge.params = params
    if spec.api_key is not None:  # left out: keep the stored key
        judge.api_key = spec.api_key
    if spec.kind != JudgeKind.LLM:
        judge.api_key = ""
    judge.on_fail = spec.on_fail
    judge.raise_to = spec.raise_to or ""
    judge.unsure_low = spec.unsure_low
    judge.unsure_high = spec.unsure_high
    judge.is_active = spec.is_active
    judge.updated_by = user
    judge._history_user = user
    judge._change_reason = spec.reason or None
    return judge


@transaction.atomic
def judge_create(*, tenant: Tenant, data: dict, user=None) -> Judge:
    """A new judge (version 1), effective for outputs received from the next request on."""
    spec, params = judge_validate(tenant=tenant, data=data)
    judge = _judge_apply(Judge(tenant=tenant, version=1), spec, params, user)
    try:
        with transaction.atomic():
            judge.save(force_insert=True)
    except IntegrityError as error:
        message = f"name: a judge named '{spec.name}' exists"
        raise ConflictError(message, code="judge_exists") from error
    tenant_config_changed(tenant=tenant)
    audit_record(
        tenant=tenant,
        actor=user,
        kind="judge.created",
        object_type="judge",
        object_id=judge.pk,
        data={"after": _judge_state(judge), "reason": spec.reason or ""},
    )
    return judge


@transaction.atomic
def judge_update(*, tenant: Tenant, judge_id: int, data: dict, user=None, expected_version: int | None = None) -> Judge:
    """Replace a judge's configuration: a new version (outputs keep the version that judged them).

    ``expected_version``: the version the caller's copy is of; a StaleVersionError when
    another version was saved since.
    """
    judge = Judge.objects.for_tenant(tenant).select_for_update(no_key=True).filter(pk=judge_id).first()
    if judge is None:
        raise NotFoundError("Judge not found.")
    version_check(what=f"judge '{judge.name}'", current=judge.version, expected=expected_version)
    if isinstance(data, dict) and data.get("kind", judge.kind) != judge.kind:
        message = f"A judge keeps its kind ('{judge.kind}'); create a new judge instead."
        raise RuleViolationError(f"kind: {message}", fields={"kind": [message]})
    spec, params = judge_validate(tenant=tenant, data=data)
    before, key_before = _judge_state(judge), judge.api_key
    _judge_apply(judge, spec, params, user)
    judge.version += 1
    try:
        with transaction.atomic():
            judge.save()
    except IntegrityError as error:
        raise ConflictError(f"name: a judge named '{spec.name}' exists", code="judge_exists") from error
    tenant_config_changed(tenant=tenant)
    data = changes(before, _judge_state(judge))
    data.update(api_key_changed=judge.api_key != key_before, reason=spec.reason or "")
    audit_record(tenant=tenant, actor=user, kind="judge.updated", object_type="judge", object_id=judge.pk, data=data)
    return judge


def _flag_state(flag: JudgeFlag) -> dict:
    return {
        "judge": flag.judge_id,
        "judge_version": flag.judge_version,
        "kappa": flag.kappa,
        "agreement_rate": flag.agreement_rate,
        "compared": flag.compared,
        "threshold": flag.threshold,
        "sample_rate": flag.sample_rate,
        "period_start": flag.period_start,
        "period_end": flag.period_end,
    }


@transaction.atomic
def judge_flag_raise(
    *,
    tenant: Tenant,
    judge: Judge,
    kappa: float | None,
    agreement_rate: float | None,
    compared: int,
    threshold: float,
    sample_rate: float | None,
    period_start=None,
    period_end=None,
) -> JudgeFlag | None:
    """Flag a judge for low agreement with people; None when it is flagged already (idempotent).

    Renews the configuration token: verdicts given from the next request on carry the
    flag's sample rate (``policies.selectors.judge_flag_rates``).
    """
    Judge.objects.for_tenant(tenant).select_for_update(no_key=True).filter(pk=judge.pk).first()  # one raise at a time
    if JudgeFlag.objects.for_tenant(tenant).filter(judge=judge, cleared_at__isnull=True).exists():
        return None
    flag = JudgeFlag.objects.for_tenant(tenant).create(
        judge=judge,
        judge_version=judge.version,
        kappa=kappa,
        agreement_rate=agreement_rate,
        compared=compared,
        threshold=threshold,
        sample_rate=sample_rate,
        period_start=period_start,
        period_end=period_end,
    )
    tenant_config_changed(tenant=tenant)
    audit_record(
        tenant=tenant,
        actor=None,
        kind="judge.flagged",
        object_type="judge",
        object_id=judge.pk,
        data={"flag": flag.pk, "after": _flag_state(flag)},
    )
    return flag


@transaction.atomic
def judge_flag_clear(*, tenant: Tenant, judge_id: int, user, note: str = "") -> JudgeFlag:
    """A person looked at a flagged judge: the flag closes, the boosted sampling stops."""
    flag = (
        JudgeFlag.objects.for_tenant(tenant)
        .select_for_update(no_key=True)
        .filter(judge_id=judge_id, cleared_at__isnull=True)
        .first()
    )
    if flag is None:
        if not Judge.objects.for_tenant(tenant).filter(pk=judge_id).exists():
            raise NotFoundError("Judge not found.")
        raise ConflictError("This judge is not flagged.", code="not_flagged")
    from django.utils import timezone

    flag.cleared_at, flag.cleared_by, flag.cleared_note = timezone.now(), user, note
    flag.save(update_fields=["cleared_at", "cleared_by", "cleared_note"])
    tenant_config_changed(tenant=tenant)
    audit_record(
        tenant=tenant,
        actor=user,
        kind="judge.flag_cleared",
        object_type="judge",
        object_id=judge_id,
        data={"flag": flag.pk, "note": note, "before": _flag_state(flag)},
    )
    return flag
