"""Admin for policies, applications and rubrics: every save goes through the services,
so the admin validates exactly as the API does and every change lands in history."""

import json

from django import forms
from django.contrib import admin
from django.db import transaction
from pydantic import ValidationError
from simple_history.admin import SimpleHistoryAdmin

from hitl.admin import AdministeredTenantFilter, TenantScopedAdminMixin
from hitl.errors import DomainValidationError
from policies.models import Application, Policy, Rubric
from policies.schemas import RubricDocument
from policies.services import (
    application_override_set,
    application_rubric_set,
    policy_publish,
    policy_validate,
    rubric_publish,
)


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
class PolicyAdmin(TenantScopedAdminMixin, SimpleHistoryAdmin):
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
class ApplicationAdmin(TenantScopedAdminMixin, SimpleHistoryAdmin):
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

    @transaction.atomic
    def _set(self, request, queryset, mode: str):
        for application in queryset.select_related("tenant"):
            application_override_set(
                tenant=application.tenant, name=application.name, mode=mode, user=request.user, reason="admin action"
            )
        self.message_user(request, f"{queryset.count()} application(s) set to {mode}.")

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

    class Meta:
        model = Rubric
        fields = ("tenant", "name", "description", "criteria")

    def clean(self):
        cleaned = super().clean()
        try:
            RubricDocument.model_validate(
                {
                    "name": cleaned.get("name") or self.instance.name or "",
                    "description": cleaned.get("description", ""),
                    "criteria": cleaned.get("criteria"),
                }
            )
        except ValidationError as error:
            for item in error.errors(include_url=False):
                location = ".".join(str(part) for part in item["loc"])
                self.add_error("criteria" if location.startswith("criteria") else None, f"{location}: {item['msg']}")
        return cleaned


@admin.register(Rubric)
class RubricAdmin(TenantScopedAdminMixin, SimpleHistoryAdmin):
    form = RubricForm
    list_display = ("name", "tenant", "version", "updated_at", "updated_by")
    list_filter = (AdministeredTenantFilter,)
    search_fields = ("name",)
    list_select_related = ("tenant", "updated_by")
    readonly_fields = ("version", "updated_at", "updated_by")

    def get_readonly_fields(self, request, obj=None):
        return ("tenant", "name", *self.readonly_fields) if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        rubric, _ = rubric_publish(
            tenant=obj.tenant,
            document={"name": obj.name, "description": obj.description, "criteria": form.cleaned_data["criteria"]},
            user=request.user,
        )
        obj.pk, obj.version = rubric.pk, rubric.version
