"""The role check every tenant endpoint goes through (kept apart from views to avoid import cycles)."""

from rest_framework import exceptions
from rest_framework.permissions import BasePermission


class TenantRolePermission(BasePermission):
    """401 without a valid key; 403 when the key's role is not in the view's ``permission_map``.

    A view without a map, or without an entry for the method, refuses everyone.
    """

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if api_key is None or not hasattr(api_key, "tenant_id"):
            raise exceptions.NotAuthenticated()
        method = "GET" if request.method in ("HEAD", "OPTIONS") else request.method
        allowed = getattr(view, "permission_map", {}).get(method, ())
        if api_key.role not in allowed:
            raise exceptions.PermissionDenied(
                f"A key with role '{api_key.role}' may not {request.method} here; "
                f"allowed: {', '.join(sorted(allowed)) or 'none'}."
            )
        return True
