"""Query-string filters for the output list."""

from datetime import UTC

import django_filters
from django import forms

from reviews.models import Output, OutputStatus


class _UtcDateTimeField(django_filters.fields.IsoDateTimeField):
    def clean(self, value):
        moment = super().clean(value)
        if moment is not None:
            try:
                moment.astimezone(UTC)
            except OverflowError as error:
                raise forms.ValidationError("Out of range.") from error
        return moment


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _UtcDateTimeField


class _StrictForm(forms.Form):
    """A filter given with no value is refused rather than ignored: leave the parameter out instead."""

    def clean(self):
        cleaned = super().clean()
        for name in self.fields:
            value = self.data.get(name)
            if value == "":
                self.add_error(name, "Must not be empty; leave the parameter out to not filter.")
            elif value is not None and "\x00" in value:
                self.add_error(name, "Must not contain a NUL character.")
        return cleaned


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
        form = _StrictForm
        fields = ("application", "status", "received_after", "received_before")
