"""The Django admin's tenant scoping: tenant-owned rows are shown per the person's tenants.

A superuser sees every tenant; any other staff user sees only the tenants they
administer (an ``admin`` membership) and the rows that belong to them: in lists,
change forms, history pages, filters and the choices of every foreign key.
"""

import re

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import BadRequest, PermissionDenied, ValidationError
from django.http import Http404

from hitl.models import TenantOwnedModel
from tenants.models import Tenant
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


class AdministeredTenantFilter(admin.SimpleListFilter):
    """A tenant filter that lists only the tenants the person administers."""

    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        tenant_ids = administered_tenant_ids(request)
        tenants = Tenant.objects.all() if tenant_ids is None else Tenant.objects.filter(pk__in=tenant_ids)
        return [(str(tenant.pk), tenant.slug) for tenant in tenants.order_by("slug")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not re.fullmatch(r"[0-9]{1,18}", value):
            raise BadRequest(f"tenant: {value!r} is not a tenant id.")
        return queryset.filter(tenant_id=int(value))


class ScopedHistoryMixin:
    """simple-history's history pages go through the admin's scoped queryset too, and only show.

    Reverting is off (``SIMPLE_HISTORY_REVERT_DISABLED``), but that only hides the
    button: a POST to a history page would still save the old version past the
    services. So a history page answers a POST with 403; to go back to an old
    version, copy it into the change form.
    """

    def history_view(self, request, object_id, extra_context=None):
        self._object_in_scope(request, object_id)
        return super().history_view(request, object_id, extra_context=extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self._object_in_scope(request, object_id)
        if request.method not in ("GET", "HEAD"):
            raise PermissionDenied("Old versions are shown, not restored, here; use the change form.")
        return super().history_form_view(request, object_id, version_id, extra_context=extra_context)

    def _object_in_scope(self, request, object_id) -> None:
        try:
            visible = self.get_queryset(request).filter(pk=object_id).exists()
        except (ValueError, TypeError, ValidationError):  # a malformed id is as missing as a foreign one
            visible = False
        if not visible:
            raise Http404


class TenantScopedAdminMixin(ScopedHistoryMixin):
    """Scopes an admin of a tenant-owned model to the person's tenants."""

    list_select_related = ("tenant",)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        tenant_ids = administered_tenant_ids(request)
        return queryset if tenant_ids is None else queryset.filter(tenant_id__in=tenant_ids)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        tenant_ids = administered_tenant_ids(request)
        related = db_field.related_model
        if tenant_ids is not None:
            if db_field.name == "tenant":
                kwargs["queryset"] = related.objects.filter(pk__in=tenant_ids)
            elif issubclass(related, TenantOwnedModel):
                kwargs["queryset"] = related.unscoped.filter(tenant_id__in=tenant_ids)
            elif related is get_user_model():
                kwargs["queryset"] = related.objects.filter(memberships__tenant_id__in=tenant_ids).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff


admin.site.site_header = "HITL governance"
admin.site.site_title = "HITL governance"
admin.site.index_title = "Administration"
