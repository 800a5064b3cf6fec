"""Admin for tenants, memberships and API keys: every write goes through tenants.services,
the same functions the API and the commands use."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from simple_history.admin import SimpleHistoryAdmin

from hitl.admin_writes import ServiceWritesAdminMixin
from tenants.admin_scoping import (
    AdministeredTenantFilter,
    ScopedHistoryMixin,
    TenantScopedAdminMixin,
    administered_tenant_ids,
)
from tenants.models import ApiKey, Membership, Tenant
from tenants.services import (
    api_key_create,
    api_key_revoke,
    api_key_update,
    membership_create,
    membership_delete,
    membership_update,
    tenant_create,
    tenant_update,
)


@admin.register(Tenant)
class TenantAdmin(ServiceWritesAdminMixin, ScopedHistoryMixin, SimpleHistoryAdmin):
    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")
    readonly_fields = ("created_at",)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        tenant_ids = administered_tenant_ids(request)
        return queryset if tenant_ids is None else queryset.filter(pk__in=tenant_ids)

    def get_readonly_fields(self, request, obj=None):
        # The slug names the tenant in commands and scripts (create_api_key SLUG): fixed once created.
        return ("slug", *self.readonly_fields) if obj is not None else self.readonly_fields

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        # Deleting a tenant would cascade through its outputs, reviews and history,
        # which retention keeps; there is no offboarding service yet.
        return False

    def save_model(self, request, obj, form, change):
        if change:
            tenant_update(tenant=obj, name=form.cleaned_data["name"], actor=request.user)
            return
        created = tenant_create(slug=obj.slug, name=obj.name)
        obj.pk = created.pk


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ("tenant", "user", "role", "reviewer_level", "skills")

    def clean_skills(self):
        skills = self.cleaned_data.get("skills") or []
        if not isinstance(skills, list) or not all(isinstance(skill, str) and skill for skill in skills):
            raise ValidationError('Skills are a JSON list of strings, e.g. ["legal", "medical"].')
        return skills


@admin.register(Membership)
class MembershipAdmin(ServiceWritesAdminMixin, TenantScopedAdminMixin, SimpleHistoryAdmin):
    form = MembershipForm
    list_display = ("user", "tenant", "role", "reviewer_level", "skills")
    list_filter = ("role", "reviewer_level", AdministeredTenantFilter)
    search_fields = ("user__username", "user__email")
    list_select_related = ("tenant", "user")
    autocomplete_fields = ("user",)

    def get_readonly_fields(self, request, obj=None):
        # A membership is one person in one tenant: to move someone, remove them and add them again.
        return ("tenant", "user") if obj is not None else ()

    def save_model(self, request, obj, form, change):
        fields = {key: form.cleaned_data[key] for key in ("role", "reviewer_level", "skills")}
        if change:
            membership = Membership.objects.for_tenant(obj.tenant).select_related("user").get(pk=obj.pk)
            membership_update(membership=membership, actor=request.user, **fields)
            return
        obj.pk = membership_create(tenant=obj.tenant, user=obj.user, **fields).pk

    def delete_model(self, request, obj):
        membership_delete(membership=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        # Each removal in a transaction of its own (membership_delete's): one block for all held
        # the audit chain's counter row from the first person's key revocations while it locked
        # the next person's keys, which a key revoked meanwhile held while waiting for that row.
        for membership in queryset.select_related("tenant", "user").order_by("pk"):
            membership_delete(membership=membership, actor=request.user)


class ApiKeyForm(forms.ModelForm):
    """The rules (who may hold which key) are api_key_create's; its refusals land on these fields."""

    class Meta:
        model = ApiKey
        fields = ("tenant", "name", "role", "user")


@admin.register(ApiKey)
class ApiKeyAdmin(ServiceWritesAdminMixin, TenantScopedAdminMixin, SimpleHistoryAdmin):
    form = ApiKeyForm
    list_display = ("name", "tenant", "role", "user", "display_prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("role", AdministeredTenantFilter)
    search_fields = ("name", "prefix")
    list_select_related = ("tenant", "user")
    readonly_fields = ("display_prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke_keys",)

    @admin.display(description="key starts with")
    def display_prefix(self, obj):
        return f"hitl_{obj.prefix}_…" if obj.prefix else "(shown once, after saving)"

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:  # a key's tenant, role and user are fixed; revoke and create another
            return ("tenant", "role", "user", *self.readonly_fields)
        return self.readonly_fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "user" and field is not None:
            # A key acting for a person is created by that person alone (api_key_create);
            # the platform operator gives one to someone else with create_api_key.
            field.queryset = field.queryset.filter(pk=request.user.pk)
            field.help_text = "Yourself, or nobody (a service's key). A colleague creates their own key."
        return field

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the key's row and history say who could act, and when

    def save_model(self, request, obj, form, change):
        if change:
            api_key_update(api_key=obj, name=form.cleaned_data["name"], actor=request.user)
            return
        created, raw_key = api_key_create(
            tenant=obj.tenant, role=obj.role, name=obj.name, user=obj.user, actor=request.user
        )
        obj.pk = created.pk
        messages.warning(request, f"New API key (copy it now; it is not shown again): {raw_key}")

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request, queryset):
        self.each_through_service(
            request, queryset, lambda api_key: api_key_revoke(api_key=api_key), done="key(s) revoked"
        )


# People: a staff member who is not a superuser sees only the people of the tenants they
# administer, in the user list and in every user picker (the membership form's
# autocomplete searches through this admin's queryset).
admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class ScopedUserAdmin(UserAdmin):
    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        tenant_ids = administered_tenant_ids(request)
        if tenant_ids is None:
            return queryset
        return queryset.filter(memberships__tenant_id__in=tenant_ids).distinct()
