"""Django admin plumbing: tenant-owned rows are shown per the person's tenants.

A superuser sees every tenant; any other staff user sees only the tenants they
administer (an ``admin`` membership) and the rows that belong to them.
"""

from django.contrib import admin

from tenants.selectors import tenants_administered_by


def administered_tenant_ids(request) -> list[int] | None:
    """None for a superuser (no restriction); otherwise the tenant ids they administer."""
    if request.user.is_superuser:
        return None
    cache = getattr(request, "_administered_tenant_ids", None)
    if cache is None:
        cache = tenants_administered_by(user=request.user)
        request._administered_tenant_ids = cache
    return cache


class TenantScopedAdminMixin:
    """Scopes an admin of a tenant-owned model to the person's tenants."""

    list_select_related = ("tenant",)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        tenant_ids = administered_tenant_ids(request)
        return queryset if tenant_ids is None else queryset.filter(tenant_id__in=tenant_ids)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "tenant":
            tenant_ids = administered_tenant_ids(request)
            if tenant_ids is not None:
                from tenants.models import Tenant

                kwargs["queryset"] = Tenant.objects.filter(pk__in=tenant_ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff


admin.site.site_header = "HITL governance"
admin.site.site_title = "HITL governance"
admin.site.index_title = "Administration"
