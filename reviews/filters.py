"""Query-string filters for the output list."""

import django_filters

from reviews.models import Output, OutputStatus


class OutputFilter(django_filters.FilterSet):
    application = django_filters.CharFilter(help_text="Only outputs of this application.")
    status = django_filters.ChoiceFilter(choices=OutputStatus.choices, help_text="Only outputs in this status.")
    received_after = django_filters.IsoDateTimeFilter(
        field_name="received_at", lookup_expr="gte", help_text="ISO 8601; outputs received at or after."
    )
    received_before = django_filters.IsoDateTimeFilter(
        field_name="received_at", lookup_expr="lt", help_text="ISO 8601; outputs received before."
    )

    class Meta:
        model = Output
        fields = ("application", "status", "received_after", "received_before")
