"""Admin for policies, applications and rubrics: every save goes through the services,
so the admin validates exactly as the API does and every change lands in history."""

import json

from django import forms
from django.contrib import admin
from django.db import transaction
from simple_history.admin import SimpleHistoryAdmin

from hitl.admin_writes import ServiceWritesAdminMixin
from hitl.errors import DomainValidationError
from policies.models import Application, Judge, Policy, Rubric
from policies.services import (
    application_override_set,
    application_rubric_set,
    judge_create,
    judge_update,
    judge_validate,
    policy_publish,
    policy_validate,
    rubric_publish,
    rubric_validate,
)
from tenants.admin_scoping import AdministeredTenantFilter, TenantScopedAdminMixin


class PrettyJSONField(forms.JSONField):
    def prepare_value(self, value):
        if isinstance(value, str):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)


def _errors_to_form(form: forms.Form, error: DomainValidationError, field: str) -> None:
    for messages in error.fields.values():
        for message in messages:
            form.add_error(field, message)


class PolicyForm(forms.ModelForm):
    document = PrettyJSONField(
        widget=forms.Textarea(attrs={"rows": 40, "cols": 100, "style": "font-family: monospace"})
    )
    reason = forms.CharField(max_length=500, required=False, help_text="Why this change (kept in the history).")

    class Meta:
        model = Policy
        fields = ("document",)

    def clean(self):
        cleaned = super().clean()
        if "document" in cleaned and self.instance.tenant_id:
            try:
                policy_validate(tenant=self.instance.tenant, document=cleaned["document"])
            except DomainValidationError as error:
                _errors_to_form(self, error, "document")
        return cleaned


@admin.register(Policy)
class PolicyAdmin(ServiceWritesAdminMixin, TenantScopedAdminMixin, SimpleHistoryAdmin):
    form = PolicyForm
    list_display = ("tenant", "version", "updated_at")
    readonly_fields = ("tenant", "version", "updated_at")
    history_list_display = ("version",)

    def has_add_permission(self, request):
        return False  # every tenant gets its policy when it is created

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        published = policy_publish(
            tenant=obj.tenant,
            document=form.cleaned_data["document"],
            user=request.user,
            reason=form.cleaned_data["reason"],
        )
        obj.pk, obj.version = published.pk, published.version


class ApplicationForm(forms.ModelForm):
    class Meta:
        model = Application
        fields = ("tenant", "name", "override", "override_reason", "rubric")

    def clean(self):
        cleaned = super().clean()
        tenant_id = cleaned["tenant"].pk if cleaned.get("tenant") else self.instance.tenant_id
        rubric = cleaned.get("rubric")
        if tenant_id and rubric and rubric.tenant_id != tenant_id:
            self.add_error("rubric", "This rubric belongs to another tenant.")
        return cleaned


@admin.register(Application)
class ApplicationAdmin(ServiceWritesAdminMixin, TenantScopedAdminMixin, SimpleHistoryAdmin):
    form = ApplicationForm
    list_display = ("name", "tenant", "override", "rubric", "updated_at")
    list_filter = ("override", AdministeredTenantFilter)
    search_fields = ("name",)
    list_select_related = ("tenant", "rubric")
    actions = ("review_all", "block", "clear_override")

    def get_readonly_fields(self, request, obj=None):
        return ("tenant", "name") if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False  # an application's override and history outlive its traffic; clear the override instead

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        application = application_override_set(
            tenant=obj.tenant, name=obj.name, mode=obj.override, user=request.user, reason=obj.override_reason
        )
        application = application_rubric_set(tenant=obj.tenant, name=obj.name, rubric=obj.rubric, user=request.user)
        obj.pk = application.pk

    def _set(self, request, queryset, mode: str):
        self.each_through_service(
            request,
            queryset.select_related("tenant"),
            lambda application: application_override_set(
                tenant=application.tenant, name=application.name, mode=mode, user=request.user, reason="admin action"
            ),
            done=f"application(s) set to {mode}",
        )

    @admin.action(description="Stop button: review every new output")
    def review_all(self, request, queryset):
        self._set(request, queryset, "review_all")

    @admin.action(description="Stop button: block delivery")
    def block(self, request, queryset):
        self._set(request, queryset, "block")

    @admin.action(description="Clear the override")
    def clear_override(self, request, queryset):
        self._set(request, queryset, "none")


class RubricForm(forms.ModelForm):
    criteria = PrettyJSONField(
        widget=forms.Textarea(attrs={"rows": 30, "cols": 100, "style": "font-family: monospace"})
    )
    require_recertification = forms.BooleanField(
        required=False,
        help_text="A new version only: every active certification of the queues using this rubric expires.",
    )

    class Meta:
        model = Rubric
        fields = ("tenant", "name", "description", "criteria")

    def clean(self):
        cleaned = super().clean()
        try:
            rubric_validate(
                document={
                    "name": cleaned.get("name") or self.instance.name or "",
                    "description": cleaned.get("description", ""),
                    "criteria": cleaned.get("criteria"),
                }
            )
        except DomainValidationError as error:
            for location, messages in error.fields.items():
                for message in messages:
                    self.add_error("criteria" if location.startswith("criteria") else None, f"{location}: {message}")
        return cleaned


@admin.register(Rubric)
class RubricAdmin(ServiceWritesAdminMixin, TenantScopedAdminMixin, SimpleHistoryAdmin):
    form = RubricForm
    list_display = ("name", "tenant", "version", "updated_at", "updated_by")
    list_filter = (AdministeredTenantFilter,)
    search_fields = ("name",)
    list_select_related = ("tenant", "updated_by")
    readonly_fields = ("version", "updated_at", "updated_by")

    def get_readonly_fields(self, request, obj=None):
        return ("tenant", "name", *self.readonly_fields) if obj is not None else self.readonly_fields

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        # A new rubric: nobody was certified under an earlier version of it.
        return fields if obj is not None else [field for field in fields if field != "require_recertification"]

    def has_delete_permission(self, request, obj=None):
        return False  # tasks, applications and the policy's tiers refer to it by version or name

    def save_model(self, request, obj, form, change):
        rubric, _ = rubric_publish(
            tenant=obj.tenant,
            document={"name": obj.name, "description": obj.description, "criteria": form.cleaned_data["criteria"]},
            user=request.user,
            require_recertification=bool(change and form.cleaned_data.get("require_recertification")),
        )
        obj.pk, obj.version = rubric.pk, rubric.version


class JudgeForm(forms.ModelForm):
    """Validated by the same service as ``POST /api/v1/judges``; the key is write-only."""

    params = PrettyJSONField(
        required=False, widget=forms.Textarea(attrs={"rows": 20, "cols": 100, "style": "font-family: monospace"})
    )
    applications = PrettyJSONField(required=False, help_text="A JSON list of application names; [] for all.")
    tiers = PrettyJSONField(required=False, help_text="A JSON list of tier names; [] for all.")
    new_api_key = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False),
        label="API key",
        help_text="LLM judges: the endpoint's key. Leave empty to keep the stored one; never shown.",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key.")
    reason = forms.CharField(max_length=500, required=False, help_text="Why this change (kept in the history).")

    class Meta:
        model = Judge
        fields = (
            "tenant",
            "name",
            "kind",
            "description",
            "applications",
            "tiers",
            "params",
            "on_fail",
            "raise_to",
            "unsure_low",
            "unsure_high",
            "is_active",
        )

    def spec(self) -> dict:
        cleaned = self.cleaned_data
        data = {
            field: cleaned.get(field)
            for field in ("name", "kind", "description", "on_fail", "unsure_low", "unsure_high", "is_active")
        }
        data["name"] = data["name"] or self.instance.name
        data["kind"] = data["kind"] or self.instance.kind
        data["applications"] = cleaned.get("applications") or []
        data["tiers"] = cleaned.get("tiers") or []
        data["params"] = cleaned.get("params") or {}
        data["raise_to"] = cleaned.get("raise_to") or None
        data["reason"] = cleaned.get("reason") or ""
        if cleaned.get("clear_api_key"):
            data["api_key"] = ""
        elif cleaned.get("new_api_key"):
            data["api_key"] = cleaned["new_api_key"]
        return data

    def clean(self):
        cleaned = super().clean()
        tenant = cleaned.get("tenant") or (self.instance.tenant if self.instance.tenant_id else None)
        if tenant is not None and not self.errors:
            try:
                judge_validate(tenant=tenant, data=self.spec())
            except DomainValidationError as error:
                for path, messages in error.fields.items():
                    root, _, rest = path.partition(".")
                    field = root if root in self.fields else None
                    label = ".".join(part for part in rest.split(".") if part and not part.isdigit())
                    for message in messages:  # "base_url: Field required" under params
                        self.add_error(field, f"{label}: {message}" if label and field else message)
        return cleaned


@admin.register(Judge)
class JudgeAdmin(ServiceWritesAdminMixin, TenantScopedAdminMixin, SimpleHistoryAdmin):
    form = JudgeForm
    list_display = ("name", "tenant", "kind", "on_fail", "is_active", "version", "updated_at")
    list_filter = ("kind", "is_active", AdministeredTenantFilter)
    search_fields = ("name",)
    list_select_related = ("tenant",)
    readonly_fields = ("version", "key_stored", "updated_at", "updated_by")
    history_list_display = ("version", "on_fail", "is_active")

    def get_readonly_fields(self, request, obj=None):
        return ("tenant", "kind", *self.readonly_fields) if obj is not None else ("version",)

    def has_delete_permission(self, request, obj=None):
        return False  # verdicts refer to it: deactivate instead

    @admin.display(description="API key")
    def key_stored(self, obj):
        return "stored (never shown)" if obj.api_key else "none"

    def save_model(self, request, obj, form, change):
        data = form.spec()
        if change:
            judge = judge_update(tenant=obj.tenant, judge_id=obj.pk, data=data, user=request.user)
        else:
            judge = judge_create(tenant=obj.tenant, data=data, user=request.user)
        obj.pk, obj.version = judge.pk, judge.version
