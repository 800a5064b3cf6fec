"""Admin for outputs and the review loop. Outputs, tasks, reviews and deliveries are
records: shown, not edited. Queues, who may work them, and webhooks are configuration,
saved through the same services as the API."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from guardian.admin import (
    AdminGroupObjectPermissionsForm,
    AdminUserObjectPermissionsForm,
    GroupManage,
    GuardedModelAdminMixin,
    UserManage,
)
from guardian.shortcuts import get_group_perms, get_user_perms
from simple_history.admin import SimpleHistoryAdmin

from hitl.admin_writes import ServiceWritesAdminMixin, service_error_to_form
from hitl.errors import ApplicationError
from policies.admin import JudgeAdmin
from policies.models import Judge
from reviews.models import (
    Feedback,
    Judgement,
    Output,
    Queue,
    QueueAccessEvent,
    QueueGroupObjectPermission,
    QueueUserObjectPermission,
    Review,
    ReviewTask,
    WebhookDelivery,
    WebhookEndpoint,
)
from reviews.selectors import judge_agreement
from reviews.services.onboarding import tenant_onboard
from reviews.services.queues import (
    queue_create,
    queue_grant,
    queue_grant_group,
    queue_revoke,
    queue_revoke_group,
    queue_update,
)
from reviews.services.webhooks import (
    webhook_delivery_replay,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
)
from tenants.admin import TenantAdmin
from tenants.admin_scoping import AdministeredTenantFilter, TenantScopedAdminMixin, administered_tenant_ids
from tenants.models import Tenant


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


@admin.register(QueueAccessEvent)
class QueueAccessEventAdmin(ReadOnlyAdmin):
    """Who gave or took away the right to work a queue, and when (written by the queue services)."""

    list_display = ("created_at", "queue", "action", "user", "group_name", "actor")
    list_filter = ("action", AdministeredTenantFilter)
    list_select_related = ("tenant", "queue", "user", "actor")
    date_hierarchy = "created_at"


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


WORK_QUEUE = "work_queue"


class QueueWorkUserForm(AdminUserObjectPermissionsForm):
    """Guardian's per-person form, reduced to the one permission that means something on a
    queue, granted through ``queue_grant`` (reviewers and admins of its tenant only)."""

    actor = None  # who grants: the signed-in person, set per request by QueueAdmin (_acting)

    def get_obj_perms_field_choices(self):
        return [(WORK_QUEUE, "May claim and review tasks of this queue")]

    def get_obj_perms_field_initial(self):
        return [WORK_QUEUE] if WORK_QUEUE in set(get_user_perms(self.user, self.obj)) else []

    def save_obj_perms(self) -> None:
        wanted, held = WORK_QUEUE in self.cleaned_data["permissions"], bool(self.get_obj_perms_field_initial())
        if wanted and not held:
            queue_grant(queue=self.obj, user=self.user, actor=self.actor)
        elif held and not wanted:
            queue_revoke(queue=self.obj, user=self.user, actor=self.actor)


class QueueWorkGroupForm(AdminGroupObjectPermissionsForm):
    """The same for a group; the claim still checks each member's role in the queue's tenant."""

    actor = None

    def get_obj_perms_field_choices(self):
        return [(WORK_QUEUE, "May claim and review tasks of this queue")]

    def get_obj_perms_field_initial(self):
        return [WORK_QUEUE] if WORK_QUEUE in set(get_group_perms(self.group, self.obj)) else []

    def save_obj_perms(self) -> None:
        wanted, held = WORK_QUEUE in self.cleaned_data["permissions"], bool(self.get_obj_perms_field_initial())
        if wanted and not held:
            queue_grant_group(queue=self.obj, group=self.group, actor=self.actor)
        elif held and not wanted:
            queue_revoke_group(queue=self.obj, group=self.group, actor=self.actor)


class OperatorGroupManage(GroupManage):
    """Groups span tenants: only a superuser may name one (the plain form would tell a
    tenant's admin which group names exist)."""

    def clean_group(self):
        raise forms.ValidationError("Groups are managed by the platform operator; grant people one by one.")


@admin.register(Queue)
class QueueAdmin(ServiceWritesAdminMixin, TenantScopedAdminMixin, GuardedModelAdminMixin, SimpleHistoryAdmin):
    """Who may work a queue: the object permissions page ("Object permissions" button).

    Guardian's pages are kept, but their writes go through ``queue_grant`` /
    ``queue_revoke`` (and the group variants), which check the role and renew the
    tenant's config token, so that a grant takes effect on the person's next claim.
    """

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

    def get_obj_perms_group_select_form(self, request):
        return GroupManage if request.user.is_superuser else OperatorGroupManage

    def get_obj_perms_manage_user_form(self, request):
        return _acting(QueueWorkUserForm, request.user)

    def get_obj_perms_manage_group_form(self, request):
        return _acting(QueueWorkGroupForm, request.user)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        queue = self._queue_for_permissions(request, object_pk)
        if queue is None:
            return redirect(reverse("admin:index", current_app=self.admin_site.name))
        person = self._person_for_permissions(request, queue, user_id)
        form = self.get_obj_perms_manage_user_form(request)(person, queue, _posted(request))
        if self._save_permissions(request, form):
            return redirect(request.path)
        context = self.get_obj_perms_base_context(request, queue)
        context.update(user_obj=person, user_perms=get_user_perms(person, queue), form=form)
        request.current_app = self.admin_site.name
        return render(request, self.get_obj_perms_manage_user_template(), context)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        queue = self._queue_for_permissions(request, object_pk)
        if queue is None:
            return redirect(reverse("admin:index", current_app=self.admin_site.name))
        if not request.user.is_superuser:
            raise PermissionDenied("Groups are managed by the platform operator.")
        group_model = QueueGroupObjectPermission.group.field.related_model
        group = group_model.objects.filter(pk=_int_or_none(group_id)).first()
        if group is None:
            raise Http404
        form = self.get_obj_perms_manage_group_form(request)(group, queue, _posted(request))
        if self._save_permissions(request, form):
            return redirect(request.path)
        context = self.get_obj_perms_base_context(request, queue)
        context.update(group_obj=group, group_perms=get_group_perms(group, queue), form=form)
        request.current_app = self.admin_site.name
        return render(request, self.get_obj_perms_manage_group_template(), context)

    def _queue_for_permissions(self, request, object_pk) -> Queue | None:
        """The queue, if this admin may change it (None: no right to change queues; 404: not theirs)."""
        if not self.has_change_permission(request, None):
            return None
        queue = self.get_object(request, unquote(object_pk))
        if queue is None:
            raise Http404
        return queue

    def _person_for_permissions(self, request, queue: Queue, user_id):
        """A member of a tenant this admin administers, or someone who already holds a grant on
        the queue (so that it can be revoked); anyone else is as missing as a stranger."""
        people = get_user_model().objects.filter(pk=_int_or_none(user_id))
        tenant_ids = administered_tenant_ids(request)
        if tenant_ids is not None:
            holders = QueueUserObjectPermission.objects.filter(content_object=queue).values("user_id")
            people = people.filter(Q(memberships__tenant_id__in=tenant_ids) | Q(pk__in=holders))
        person = people.distinct().first()
        if person is None:
            raise Http404
        return person

    def _save_permissions(self, request, form) -> bool:
        """Save through the queue services; a refusal is shown on the form, nothing written."""
        if request.method != "POST" or not form.is_valid():
            return False
        try:
            with transaction.atomic():
                form.save_obj_perms()
        except ApplicationError as error:
            service_error_to_form(form, error)
            return False
        messages.success(request, "Permissions saved.")
        return True

    def save_model(self, request, obj, form, change):
        fields = {
            key: form.cleaned_data[key]
            for key in ("tiers", "applications", "required_skills", "min_reviewer_level", "priority")
        }
        if change:
            queue_update(queue=Queue.unscoped.get(pk=obj.pk), **fields)
        else:
            obj.pk = queue_create(tenant=obj.tenant, name=obj.name, **fields).pk


def _acting(form_class, actor):
    """The form class with who acts, so that the grant it saves is recorded under their name."""
    return type(form_class.__name__, (form_class,), {"actor": actor})


def _posted(request):
    # Not guardian's ``request.POST or None``: a POST with no permission ticked revokes.
    return request.POST if request.method == "POST" else None


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _https_by_default(field, **kwargs):
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"  # "hooks.example.com/x" means https (Django 6's default)
    return field.formfield(**kwargs)


class WebhookEndpointForm(forms.ModelForm):
    """The URL's rules are ``webhook_endpoint_create``'s (http or https only); its refusals land here."""

    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        min_length=16,
        max_length=200,
        required=False,
        help_text="HMAC-SHA256 key. Leave empty to keep the current secret.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("tenant", "url", "secret", "description", "is_active")
        formfield_callback = _https_by_default

    def clean_secret(self):
        secret = self.cleaned_data.get("secret")
        if not secret and self.instance.pk is None:
            raise forms.ValidationError("A new endpoint needs a secret.")
        return secret


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ServiceWritesAdminMixin, TenantScopedAdminMixin, SimpleHistoryAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "tenant", "description", "is_active", "created_at")
    list_filter = ("is_active", AdministeredTenantFilter)
    actions = ("deactivate",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_fields(self, request, obj=None):
        if obj is None:  # a new endpoint is active
            return ("tenant", "url", "secret", "description")
        return ("tenant", "url", "secret", "description", "is_active", "created_at")

    def get_readonly_fields(self, request, obj=None):
        # Deliveries point at it: it never changes tenant, and records where they went
        # (to send elsewhere, register a new endpoint and deactivate this one).
        return ("tenant", "url", "created_at") if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False  # its delivery log stays for the audit: deactivate instead

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            webhook_endpoint_update(
                tenant=obj.tenant,
                endpoint_id=obj.pk,
                description=data["description"],
                is_active=data["is_active"],
                secret=data["secret"] or None,
                actor=request.user,
            )
            return
        endpoint = webhook_endpoint_create(
            tenant=obj.tenant, url=data["url"], secret=data["secret"], description=data["description"]
        )
        obj.pk = endpoint.pk

    @admin.action(description="Deactivate the selected endpoints")
    def deactivate(self, request, queryset):
        self.each_through_service(
            request,
            queryset.select_related("tenant"),
            lambda endpoint: webhook_endpoint_delete(tenant=endpoint.tenant, endpoint_id=endpoint.pk),
            done="endpoint(s) deactivated",
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ServiceWritesAdminMixin, ReadOnlyAdmin):
    """Failed deliveries are listed here and can be sent again."""

    list_display = ("id", "endpoint", "event", "status", "attempts", "next_attempt_at", "last_error")
    list_filter = ("status", AdministeredTenantFilter)
    list_select_related = ("tenant", "endpoint")
    actions = ("replay",)

    @admin.action(description="Replay the selected deliveries")
    def replay(self, request, queryset):
        self.each_through_service(
            request,
            queryset.select_related("tenant"),
            lambda delivery: webhook_delivery_replay(tenant=delivery.tenant, delivery_id=delivery.pk),
            done="deliveries queued again",
        )


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
