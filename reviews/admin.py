from django.contrib import admin

from hitl.admin import AdministeredTenantFilter, TenantScopedAdminMixin
from reviews.models import Output


@admin.register(Output)
class OutputAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Outputs arrive through the API; the admin shows them and changes nothing."""

    list_display = ("external_id", "application", "tenant", "status", "risk_tier", "delivery", "received_at")
    list_filter = ("status", AdministeredTenantFilter)
    search_fields = ("external_id",)
    date_hierarchy = "received_at"
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return request.method in ("GET", "HEAD")

    def has_delete_permission(self, request, obj=None):
        return False
