"""``/console/applications/``: the stop button of each application, behind a confirmation.

``application_override_set`` (the API's service) switches an application to review all
(every new output held for people) or block (none delivered), or back; the reason goes
into the application's history.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404
from django.shortcuts import redirect

from hitl.errors import ApplicationError
from policies.models import Override
from policies.selectors import application_history, application_list
from policies.services import application_override_set
from tenants.pages import ConsoleForm, ConsolePage, form_errors_from

# What each mode does, in the words the confirmation uses.
EFFECTS = {
    Override.NONE: "follows the policy again: its outputs are sampled by their tier",
    Override.REVIEW_ALL: "every new output is held until a person has reviewed it, whatever its tier",
    Override.BLOCK: "every new output is refused delivery (blocked) until the stop button is switched off",
}
VERBS = {Override.NONE: "Switch off the stop button of", Override.REVIEW_ALL: "Review all of", Override.BLOCK: "Block"}


class StopForm(ConsoleForm):
    mode = forms.ChoiceField(choices=Override.choices, widget=forms.HiddenInput)  # chosen on the list page
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why: it goes into the application's history.",
        error_messages={"required": "Say why: the reason goes into the application's history."},
    )


class _ApplicationsBase(ConsolePage):
    section = "applications"
    # ``callable(tenant=...)``: names of the applications that sent outputs (``reviews`` knows them).
    applications_seen = None

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        if self.applications_seen is None:
            raise ImproperlyConfigured(f"{type(self).__name__} needs applications_seen (see reviews.console_urls).")

    def applications(self) -> list[dict]:
        """Every application seen in outputs or configured, with its stop button."""
        configured = {application.name: application for application in application_list(tenant=self.tenant)}
        names = sorted(set(self.applications_seen(tenant=self.tenant)) | set(configured))
        return [{"name": name, "application": configured.get(name)} for name in names]


class ApplicationsPage(_ApplicationsBase):
    """The list: each application's stop button, and a form to change it (confirmed on the next page)."""

    template_name = "policies/console_applications.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(applications=self.applications(), modes=Override.choices)
        return context


class ApplicationStopPage(_ApplicationsBase):
    """``/console/applications/<name>/stop``: what the change does, a reason, Confirm or Cancel."""

    template_name = "policies/console_application_stop.html"

    def _application(self, name: str) -> dict:
        found = next((item for item in self.applications() if item["name"] == name), None)
        if found is None:
            raise Http404  # not this tenant's: as missing as one that does not exist
        return found

    def _render(self, item, form, status=200):
        mode = form["mode"].value() or Override.NONE
        current = item["application"].override if item["application"] else Override.NONE
        context = self.get_context_data(
            item=item,
            form=form,
            mode=mode,
            mode_label=dict(Override.choices).get(mode, mode),
            current=current,
            current_label=dict(Override.choices)[current],
            effect=EFFECTS.get(mode, ""),
            verb=VERBS.get(mode, "Change"),
            unchanged=mode == current,
            history=application_history(tenant=self.tenant, name=item["name"]),
        )
        return self.render_to_response(context, status=status)

    def get(self, request, name):
        item = self._application(name)
        mode = request.GET.get("mode", "")
        if mode not in Override.values:
            mode = Override.NONE
        return self._render(item, StopForm(initial={"mode": mode}))

    def post(self, request, name):
        item = self._application(name)
        form = StopForm(request.POST)
        if not form.is_valid():
            return self._render(item, form, status=400)
        mode, reason = form.cleaned_data["mode"], form.cleaned_data["reason"].strip()
        try:
            application_override_set(tenant=self.tenant, name=name, mode=mode, user=self.person, reason=reason)
        except ApplicationError as error:
            form_errors_from(form, error)
            return self._render(item, form, status=400)
        done = {
            Override.NONE: f"{name} follows the policy again.",
            Override.REVIEW_ALL: f"{name}: every new output is held for review.",
            Override.BLOCK: f"{name} is blocked: its new outputs are not delivered.",
        }[mode]
        messages.success(request, done)
        return redirect("console:applications")
