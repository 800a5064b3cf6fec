"""What every query-string filter of the API shares: instants that fit in UTC, and a form that
refuses a filter given with no value (or with a NUL) rather than ignoring it."""

from datetime import UTC

import django_filters
from django import forms


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
    """An ISO 8601 instant; one beyond what UTC can hold is a clear error, not a 500."""

    field_class = _UtcDateTimeField


class StrictForm(forms.Form):
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
