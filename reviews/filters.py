"""Query-string filters for the output list."""

from datetime import date

import django_filters
from django import forms
from django.core.validators import MaxValueValidator

from hitl.filters import DateTimeFilter, StrictForm
from reviews.models import Output, OutputStatus


class OutputFilter(django_filters.FilterSet):
    application = django_filters.CharFilter(help_text="Only outputs of this application.")
    status = django_filters.ChoiceFilter(choices=OutputStatus.choices, help_text="Only outputs in this status.")
    received_after = DateTimeFilter(
        field_name="received_at", lookup_expr="gte", help_text="ISO 8601; outputs received at or after."
    )
    received_before = DateTimeFilter(
        field_name="received_at", lookup_expr="lt", help_text="ISO 8601; outputs received before."
    )

    class Meta:
        model = Output
        form = StrictForm
        fields = ("application", "status", "received_after", "received_before")


# The last day a period may name: its end is the next day's midnight, which must exist.
LAST_DAY = MaxValueValidator(date(9999, 12, 30), "A day before 9999-12-31.")


class _PeriodForm(forms.Form):
    """The search's form: a period whose end comes before its start is an error, not an empty page."""

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("received_from"), cleaned.get("received_until")
        if start and end and end < start:
            self.add_error("received_until", "Must not be before the start of the period.")
        return cleaned


class AuditOutputFilter(django_filters.FilterSet):
    """The auditor's output search (``/audit/``): the form validates, ``reviews.audit_selectors``
    applies the values on the indexes. Dates are whole UTC days; ``received_until`` is inclusive.
    Choices (applications, tiers, reviewers) are the tenant's own, set by the page."""

    received_from = django_filters.DateFilter(
        label="Received from", method="_by_selector", validators=[LAST_DAY], help_text="UTC day."
    )
    received_until = django_filters.DateFilter(
        label="to (inclusive)", method="_by_selector", validators=[LAST_DAY], help_text="UTC day, included."
    )
    application = django_filters.ChoiceFilter(label="Application", method="_by_selector")
    tier = django_filters.ChoiceFilter(label="Tier", method="_by_selector")
    decision = django_filters.ChoiceFilter(label="Decision", method="_by_selector")
    reviewer = django_filters.ChoiceFilter(label="Reviewed by", method="_by_selector")

    class Meta:
        model = Output
        fields = ()
        form = _PeriodForm

    def __init__(self, *args, applications=(), tiers=(), decisions=(), reviewers=(), **kwargs):
        super().__init__(*args, **kwargs)
        choices = {
            "application": [(name, name) for name in applications],
            "tier": [(name, name) for name in tiers],
            "decision": list(decisions),
            "reviewer": [(str(pk), name) for pk, name in reviewers],
        }
        for name, options in choices.items():
            self.filters[name].extra["choices"] = options
            self.filters[name].extra["empty_label"] = "any"

    def _by_selector(self, queryset, name, value):
        return queryset  # the selector applies every filter at once (see reviews.audit_selectors)
