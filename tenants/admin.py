from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from simple_history.admin import SimpleHistoryAdmin

from tenants.admin_scoping import (
    AdministeredTenantFilter,
    ScopedHistoryMixin,
    TenantScopedAdminMixin,
    administered_tenant_ids,
)
from tenants.models import ApiKey, Membership, Tenant
from tenants.services import api_key_create, api_key_revoke, membership_create, tenant_config_changed, tenant_create


@admin.register(Tenant)
class TenantAdmin(ScopedHistoryMixin, SimpleHistoryAdmin):
    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")
    readonly_fields = ("created_at",)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        tenant_ids = administered_tenant_ids(request)
        return queryset if tenant_ids is None else queryset.filter(pk__in=tenant_ids)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
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
class MembershipAdmin(TenantScopedAdminMixin, SimpleHistoryAdmin):
    form = MembershipForm
    list_display = ("user", "tenant", "role", "reviewer_level", "skills")
    list_filter = ("role", "reviewer_level", AdministeredTenantFilter)
    search_fields = ("user__username", "user__email")
    list_select_related = ("tenant", "user")
    autocomplete_fields = ("user",)

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            tenant_config_changed(tenant=obj.tenant)  # reviewer levels and skills are cached per token
            return
        created = membership_create(
            tenant=obj.tenant, user=obj.user, role=obj.role, reviewer_level=obj.reviewer_level, skills=obj.skills
        )
        obj.pk = created.pk

    @transaction.atomic
    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        tenant_config_changed(tenant=obj.tenant)

    def delete_queryset(self, request, queryset):
        tenants = {membership.tenant for membership in queryset.select_related("tenant")}
        with transaction.atomic():
            super().delete_queryset(request, queryset)
            for tenant in tenants:
                tenant_config_changed(tenant=tenant)


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("tenant", "name", "role", "user")

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None and cleaned.get("tenant"):
            # Dry-run the service's rules so that the form shows them next to the fields.
            from tenants.services import KEY_ROLES_BY_MEMBERSHIP_ROLE

            user, role = cleaned.get("user"), cleaned.get("role")
            if role == "reviewer" and user is None:
                self.add_error("user", "A reviewer key acts for a person; choose the user.")
            if user is not None:
                membership = Membership.objects.for_tenant(cleaned["tenant"]).filter(user=user).first()
                if membership is None:
                    self.add_error("user", "This person is not a member of the tenant.")
                elif role and role not in KEY_ROLES_BY_MEMBERSHIP_ROLE[membership.role]:
                    self.add_error("role", f"A member with role {membership.role} may not hold a {role} key.")
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdminMixin, SimpleHistoryAdmin):
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

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created, raw_key = api_key_create(
            tenant=obj.tenant, role=obj.role, name=obj.name, user=obj.user, actor=request.user
        )
        obj.pk = created.pk
        messages.warning(request, f"New API key (copy it now; it is not shown again): {raw_key}")

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request, queryset):
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        messages.success(request, f"Revoked {queryset.count()} key(s).")
