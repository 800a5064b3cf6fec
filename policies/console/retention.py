"""``/console/retention/``: how long the tenant keeps outputs' payloads, and legal holds.

The period (never below 183 days) and the holds are written by ``policies.retention``,
each change versioned (who, when, why) and an audit event; the redaction itself is the
hourly job of ``reviews.services.retention``.
"""

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect

from hitl.errors import ApplicationError, NotFoundError
from policies.models import RETENTION_DEFAULT_DAYS, RETENTION_MIN_DAYS
from policies.retention import (
    RETENTION_MAX_DAYS,
    legal_hold_place,
    legal_hold_release,
    legal_holds,
    retention_days,
    retention_get,
    retention_set,
)
from tenants.pages import ConsoleForm, ConsolePage, form_errors_from


class RetentionForm(ConsoleForm):
    days = forms.IntegerField(
        min_value=RETENTION_MIN_DAYS,
        max_value=RETENTION_MAX_DAYS,
        help_text=f"At least {RETENTION_MIN_DAYS} days (six months, EU AI Act Art. 19 and 26(6)); "
        f"{RETENTION_DEFAULT_DAYS} unless set.",
    )
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why: it goes into the history and the audit log.",
        error_messages={"required": "Say why: the reason goes into the history."},
    )


class HoldForm(ConsoleForm):
    application = forms.CharField(
        max_length=100, required=False, help_text="Its outputs only; empty for every application."
    )
    received_from = forms.DateField(
        required=False, label="Received from", widget=forms.DateInput(attrs={"type": "date"}), help_text="UTC day."
    )
    received_until = forms.DateField(
        required=False,
        label="Received until",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="UTC day, inclusive.",
    )
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The matter, the request, who asked.",
        error_messages={"required": "Say why: the reason is kept with the hold."},
    )

    def clean(self):
        cleaned = super().clean()
        if (
            not (cleaned.get("application") or "").strip()
            and not cleaned.get("received_from")
            and not cleaned.get("received_until")
            and not self.errors
        ):
            raise forms.ValidationError("Name an application, a period, or both.")
        start, end = cleaned.get("received_from"), cleaned.get("received_until")
        if start and end and end < start:
            self.add_error("received_until", "Must not be before the start of the period.")
        return cleaned


class ReleaseForm(ConsoleForm):
    reason = forms.CharField(max_length=2000, error_messages={"required": "Say why the hold ends."})


def _day(day, *, end: bool = False) -> datetime | None:
    if not day:
        return None
    return datetime.combine(day + timedelta(days=1) if end else day, time.min, tzinfo=UTC)


class RetentionPage(ConsolePage):
    section = "retention"
    template_name = "policies/console_retention.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        retention = retention_get(tenant=self.tenant)
        context.setdefault("form", RetentionForm(initial={"days": retention_days(tenant=self.tenant)}))
        context.setdefault("hold_form", HoldForm())
        context.update(
            retention=retention,
            days=retention_days(tenant=self.tenant),
            default_days=RETENTION_DEFAULT_DAYS,
            minimum_days=RETENTION_MIN_DAYS,
            holds=list(legal_holds(tenant=self.tenant)),
            history=retention.history.select_related("history_user").order_by("-history_date")[:20]
            if retention
            else [],
        )
        return context

    def post(self, request):
        action = request.POST.get("action")
        if action == "retention":
            form = RetentionForm(request.POST)
            if form.is_valid():
                try:
                    retention_set(
                        tenant=self.tenant,
                        days=form.cleaned_data["days"],
                        user=self.person,
                        reason=form.cleaned_data["reason"].strip(),
                    )
                except ApplicationError as error:
                    form_errors_from(form, error)
                else:
                    messages.success(request, f"Payloads are now kept {form.cleaned_data['days']} days.")
                    return redirect("console:retention")
            return self.render_to_response(self.get_context_data(form=form), status=400)
        if action == "hold":
            form = HoldForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    legal_hold_place(
                        tenant=self.tenant,
                        application=data["application"],
                        received_from=_day(data["received_from"]),
                        received_until=_day(data["received_until"], end=True),
                        reason=data["reason"],
                        user=self.person,
                    )
                except ApplicationError as error:
                    form_errors_from(form, error)
                else:
                    messages.success(request, "Legal hold placed: retention no longer touches what it covers.")
                    return redirect("console:retention")
            return self.render_to_response(self.get_context_data(hold_form=form), status=400)
        if action == "release":
            form = ReleaseForm(request.POST)
            try:
                hold_id = int(request.POST.get("hold", ""))
            except ValueError:
                hold_id = 0
            if not form.is_valid():
                messages.error(request, "Say why the hold ends.")
                return redirect("console:retention")
            try:
                legal_hold_release(
                    tenant=self.tenant, hold_id=hold_id, reason=form.cleaned_data["reason"], user=self.person
                )
            except NotFoundError:
                raise Http404 from None
            except ApplicationError as error:
                messages.error(request, error.message)
                return redirect("console:retention")
            messages.success(request, "Legal hold released: retention applies again from its next run.")
            return redirect("console:retention")
        return redirect("console:retention")
