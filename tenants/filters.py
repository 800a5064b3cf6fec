"""Query-string filters for the audit events API."""

import django_filters

from hitl.filters import DateTimeFilter, StrictForm
from tenants.models import AuditEvent


def _kind(queryset, name, value):
    # "task." selects every task event; "task.claimed" exactly that kind.
    return queryset.filter(kind__startswith=value) if value.endswith(".") else queryset.filter(kind=value)


# ``from`` is a Python keyword, so the filter set is built from a dict.
AuditEventFilter = type(
    "AuditEventFilter",
    (django_filters.FilterSet,),
    {
        "from": DateTimeFilter(field_name="at", lookup_expr="gte", help_text="ISO 8601; events at or after."),
        "to": DateTimeFilter(field_name="at", lookup_expr="lt", help_text="ISO 8601; events before."),
        "kind": django_filters.CharFilter(
            method=_kind, max_length=64, help_text="An event kind (task.claimed), or a prefix ending in a dot (task.)."
        ),
        "person": django_filters.NumberFilter(
            field_name="actor_person_id", min_value=1, max_value=2**63 - 1, help_text="Events of this person (user id)."
        ),
        "key": django_filters.NumberFilter(
            field_name="actor_key_id", min_value=1, max_value=2**63 - 1, help_text="Events made with this API key (id)."
        ),
        "object_type": django_filters.CharFilter(max_length=64, help_text="Events about objects of this type."),
        "object_id": django_filters.CharFilter(max_length=255, help_text="Events about the object with this id."),
        "Meta": type(
            "Meta",
            (),
            {
                "model": AuditEvent,
                "form": StrictForm,
                "fields": ("from", "to", "kind", "person", "key", "object_type", "object_id"),
            },
        ),
    },
)
