"""Admin for outputs and the review loop. Outputs, tasks, reviews and deliveries are
records: shown, not edited. Queues and webhooks are configuration, saved through services."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.html import format_html
from guardian.admin import GuardedModelAdminMixin, UserManage
from simple_history.admin import SimpleHistoryAdmin

from hitl.errors import DomainValidationError
from policies.admin import JudgeAdmin
from policies.models import Judge
from reviews.models import Feedback, Judgement, Output, Queue, Review, ReviewTask, WebhookDelivery, WebhookEndpoint
from reviews.selectors import judge_agreement
from reviews.services.onboarding import tenant_onboard
from reviews.services.queues import queue_create, queue_update
from reviews.services.webhooks import webhook_delivery_replay, webhook_url_validate
from tenants.admin import TenantAdmin
from tenants.admin_scoping import AdministeredTenantFilter, TenantScopedAdminMixin, administered_tenant_ids
from tenants.models import Tenant
from tenants.services import tenant_config_changed


class ReadOnlyAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Records of what happened: visible to the tenant's admins, never edited here."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return request.method in ("GET", "HEAD")

    def has_delete_permission(self, request, obj=None):
        return False


class JudgementInline(admin.TabularInline):
    model = Judgement
    fields = ("judge", "judge_version", "result", "score", "unsure", "rationale", "latency_ms", "cost", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Output)
class OutputAdmin(ReadOnlyAdmin):
    """Outputs arrive through the API; the admin shows them and changes nothing."""

    inlines = (JudgementInline,)

    list_display = ("external_id", "application", "tenant", "status", "risk_tier", "delivery", "received_at")
    list_filter = ("status", AdministeredTenantFilter)
    search_fields = ("external_id",)
    date_hierarchy = "received_at"
    show_full_result_count = False


@admin.register(ReviewTask)
class ReviewTaskAdmin(ReadOnlyAdmin):
    list_display = ("id", "queue", "purpose", "status", "level_required", "due_at", "claimed_by", "lease_expires_at")
    list_filter = ("status", "purpose", AdministeredTenantFilter)
    list_select_related = ("tenant", "queue", "claimed_by")
    show_full_result_count = False


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ("output", "reviewer", "purpose", "decision", "rubric_version", "created_at")
    list_filter = ("decision", "purpose", AdministeredTenantFilter)
    list_select_related = ("tenant", "output", "reviewer")


@admin.register(Judgement)
class JudgementAdmin(ReadOnlyAdmin):
    list_display = ("output", "judge", "judge_version", "result", "score", "unsure", "latency_ms", "cost", "created_at")
    list_filter = ("result", "unsure", AdministeredTenantFilter)
    list_select_related = ("tenant", "output", "judge")
    show_full_result_count = False


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = ("output", "rating", "created_at")
    list_filter = ("rating", AdministeredTenantFilter)


class QueueForm(forms.ModelForm):
    class Meta:
        model = Queue
        fields = ("tenant", "name", "tiers", "applications", "required_skills", "min_reviewer_level", "priority")

    def clean(self):
        cleaned = super().clean()
        for key in ("tiers", "applications", "required_skills"):
            value = cleaned.get(key)
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(item, str) and item for item in value)
            ):
                self.add_error(key, 'A JSON list of names, e.g. ["high", "critical"]; empty for all.')
        return cleaned


@admin.register(Queue)
class QueueAdmin(TenantScopedAdminMixin, GuardedModelAdminMixin, SimpleHistoryAdmin):
    """Who may work a queue: the object permissions page ("Object permissions" button)."""

    form = QueueForm
    list_display = ("name", "tenant", "tiers", "applications", "required_skills", "min_reviewer_level", "priority")
    list_filter = (AdministeredTenantFilter,)
    search_fields = ("name",)

    def get_readonly_fields(self, request, obj=None):
        return ("tenant", "name") if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False  # tasks keep pointing at their queue

    def get_obj_perms_user_select_form(self, request):
        """Pick only people who are members of a tenant this admin administers: the
        plain guardian form would say whether any username exists anywhere."""
        tenant_ids = administered_tenant_ids(request)

        class MemberManage(UserManage):
            def clean_user(self):
                members = get_user_model().objects.filter(username=self.cleaned_data["user"])
                if tenant_ids is not None:
                    members = members.filter(memberships__tenant_id__in=tenant_ids)
                user = members.first()
                if user is None:
                    raise forms.ValidationError("No member of your tenants has this username.")
                return user

        return MemberManage

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        # Grants made on guardian's page change who may claim: renew the cache token.
        response = super().obj_perms_manage_user_view(request, object_pk, user_id)
        if request.method == "POST":
            self._permissions_changed(object_pk)
        return response

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        response = super().obj_perms_manage_group_view(request, object_pk, group_id)
        if request.method == "POST":
            self._permissions_changed(object_pk)
        return response

    def _permissions_changed(self, object_pk) -> None:
        queue = self.get_queryset_for_perms(object_pk)
        if queue is not None:
            tenant_config_changed(tenant=queue.tenant)

    def get_queryset_for_perms(self, object_pk):
        return Queue.unscoped.select_related("tenant").filter(pk=object_pk).first()

    def save_model(self, request, obj, form, change):
        fields = {
            key: form.cleaned_data[key]
            for key in ("tiers", "applications", "required_skills", "min_reviewer_level", "priority")
        }
        if change:
            queue_update(queue=Queue.unscoped.get(pk=obj.pk), **fields)
        else:
            obj.pk = queue_create(tenant=obj.tenant, name=obj.name, **fields).pk


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        min_length=16,
        max_length=200,
        required=False,
        help_text="Leave empty to keep the current secret.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("tenant", "url", "secret", "description", "is_active")

    def clean_url(self):
        # The same rules as the API's (hitl/net.py): a URL the HTTP client could read two ways is refused.
        try:
            return webhook_url_validate(self.cleaned_data["url"])
        except DomainValidationError as error:
            raise forms.ValidationError(error.fields["url"]) from None

    def clean_secret(self):
        secret = self.cleaned_data.get("secret")
        if not secret and self.instance.pk is None:
            raise forms.ValidationError("A new endpoint needs a secret.")
        return secret or self.instance.secret


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdminMixin, SimpleHistoryAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "tenant", "description", "is_active", "created_at")
    list_filter = ("is_active", AdministeredTenantFilter)

    def get_readonly_fields(self, request, obj=None):
        return ("tenant",) if obj is not None else ()  # deliveries point at it: it never changes tenant

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        tenant_config_changed(tenant=obj.tenant)  # decisions check "any endpoint?" from a cached table


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """Failed deliveries are listed here and can be sent again."""

    list_display = ("id", "endpoint", "event", "status", "attempts", "next_attempt_at", "last_error")
    list_filter = ("status", AdministeredTenantFilter)
    list_select_related = ("tenant", "endpoint")
    actions = ("replay",)

    @admin.action(description="Replay the selected deliveries")
    def replay(self, request, queryset):
        for delivery in queryset.select_related("tenant"):
            webhook_delivery_replay(tenant=delivery.tenant, delivery_id=delivery.pk)
        messages.success(request, f"{queryset.count()} deliveries queued again.")


# Configuration admins of lower layers, completed with what this layer knows: a new
# tenant is onboarded (its default policy and queue), a judge shows its agreement.
admin.site.unregister(Tenant)
admin.site.unregister(Judge)


@admin.register(Tenant)
class OnboardingTenantAdmin(TenantAdmin):
    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        obj.pk = tenant_onboard(slug=obj.slug, name=obj.name).pk


@admin.register(Judge)
class JudgeWithAgreementAdmin(JudgeAdmin):
    readonly_fields = (*JudgeAdmin.readonly_fields, "agreement")

    @admin.display(description="Agreement with people's decisions")
    def agreement(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        result = judge_agreement(tenant=obj.tenant, judge_id=obj.pk)
        if not result.compared:
            return f"no output yet both judged and decided by people ({result.judge_errors} error verdicts)"
        kappa = "undefined" if result.cohens_kappa is None else f"{result.cohens_kappa:.3f}"
        return format_html(
            "{} compared: {} both pass, {} both fail, {} judge pass / people fail, {} judge fail / people pass; "
            "agreement {}, Cohen's kappa {}; {} error verdicts not compared",
            result.compared,
            result.both_pass,
            result.both_fail,
            result.judge_pass_human_fail,
            result.judge_fail_human_pass,
            f"{result.agreement_rate:.1%}",
            kappa,
            result.judge_errors,
        )
