"""``/console/judges/``: the automated judges, how often they agree with people, and their
configuration (``judge_create`` and ``judge_update``, the API's services: each change a new
version, with who and why). An LLM judge's API key is write-only: never shown, kept unless
replaced or cleared."""

import json

from django import forms
from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404
from django.shortcuts import redirect

from hitl.errors import ApplicationError, ConflictError, NotFoundError
from policies.judges.registry import JUDGE_KINDS
from policies.models import Judge, JudgeKind, JudgeOnFail
from policies.selectors import judge_flags, judge_get, judge_history, judge_list, policy_get
from policies.services import judge_create, judge_update
from tenants.pages import ConsoleForm, ConsolePage, form_errors_from


def kinds_help() -> list[dict]:
    """Each kind with its parameters (name, default, what it does), from the kind's params model."""
    shown = []
    for name, spec in JUDGE_KINDS.items():
        params = []
        for field_name, field in spec.params.model_fields.items():
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            params.append(
                {
                    "name": field_name,
                    "required": field.is_required(),
                    "default": json.dumps(default, default=str) if not field.is_required() else "",
                    "description": field.description or "",
                }
            )
        shown.append({"name": name, "label": spec.label, "params": params})
    return shown


class JudgeForm(ConsoleForm):
    name = forms.RegexField(
        regex=r"^[a-z0-9][a-z0-9_-]*$",
        max_length=50,
        error_messages={"invalid": "Lower-case letters, digits, - and _ (starting with a letter or digit)."},
    )
    kind = forms.ChoiceField(choices=JudgeKind.choices)
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    applications = forms.CharField(
        required=False, max_length=20_000, help_text="Separated by commas; empty: every application."
    )
    tiers = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: every tier."
    )
    params = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "class": "code", "spellcheck": "false"}),
        max_length=100_000,
        initial="{}",
        help_text="A JSON object; the parameters of each kind are listed below.",
    )
    api_key = forms.CharField(
        label="API key",
        required=False,
        max_length=500,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="LLM judges: the endpoint's key. Write-only: it is never shown again.",
    )
    clear_api_key = forms.BooleanField(label="Clear the stored key", required=False)
    on_fail = forms.ChoiceField(choices=JudgeOnFail.choices, label="When it fails", initial="force_review")
    raise_to = forms.ChoiceField(required=False, label="Raise to tier", help_text="When it raises the tier.")
    unsure_low = forms.FloatField(min_value=0, max_value=1, initial=0.4, label="Unsure from score")
    unsure_high = forms.FloatField(
        min_value=0, max_value=1, initial=0.6, label="to score", help_text="Scores in this band go to a person."
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why: it goes into the judge's history.",
        error_messages={"required": "Say why: the reason goes into the judge's history."},
    )

    def __init__(self, *args, tiers=(), judge: Judge | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        names = list(tiers) + [tier for tier in (judge.tiers if judge else []) if tier not in tiers]
        self.fields["tiers"].choices = [(name, name) for name in names]
        self.fields["raise_to"].choices = [("", "the next tier")] + [(name, name) for name in names]
        self.judge = judge
        if judge is not None:
            del self.fields["kind"]  # a judge keeps its kind
            if judge.kind != JudgeKind.LLM:
                del self.fields["api_key"], self.fields["clear_api_key"]
            else:
                self.fields["api_key"].help_text = (
                    "A key is stored; type a new one to replace it, or leave this empty to keep it."
                    if judge.api_key
                    else "No key is stored. Write-only: a key typed here is never shown again."
                )
        else:
            del self.fields["clear_api_key"]

    def clean_params(self):
        try:
            params = json.loads(self.cleaned_data["params"] or "{}")
        except ValueError as error:
            raise forms.ValidationError(f"Not JSON: {error}.") from None
        if not isinstance(params, dict):
            raise forms.ValidationError('A JSON object: {"name": value, ...}.')
        return params

    def data_for_service(self) -> dict:
        """The judge as ``judge_create`` and ``judge_update`` take it (the key only when it changes)."""
        data = self.cleaned_data
        body = {
            "name": data["name"],
            "kind": self.judge.kind if self.judge else data["kind"],
            "description": data["description"],
            "applications": [name.strip() for name in data["applications"].split(",") if name.strip()],
            "tiers": data["tiers"],
            "params": data["params"],
            "on_fail": data["on_fail"],
            "raise_to": (data["raise_to"] or None) if data["on_fail"] == JudgeOnFail.RAISE_TIER else None,
            "unsure_low": data["unsure_low"],
            "unsure_high": data["unsure_high"],
            "is_active": data["is_active"],
            "reason": data["reason"],
        }
        if data.get("api_key"):
            body["api_key"] = data["api_key"]
        elif data.get("clear_api_key"):
            body["api_key"] = ""
        return body


def judge_initial(judge: Judge) -> dict:
    return {
        "name": judge.name,
        "description": judge.description,
        "applications": ", ".join(judge.applications),
        "tiers": judge.tiers,
        "params": json.dumps(judge.params, indent=2, ensure_ascii=False),
        "on_fail": judge.on_fail,
        "raise_to": judge.raise_to,
        "unsure_low": judge.unsure_low,
        "unsure_high": judge.unsure_high,
        "is_active": judge.is_active,
    }


class _JudgesBase(ConsolePage):
    section = "judges"
    # ``callable(tenant=..., judge_ids=...)``: judge id to its agreement with people's decisions
    # (``reviews`` knows the decisions, and sits above this app).
    agreements = None

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        if self.agreements is None:
            raise ImproperlyConfigured(f"{type(self).__name__} needs agreements (see reviews.console_urls).")

    def policy_tiers(self) -> list[str]:
        return [tier["name"] for tier in policy_get(tenant=self.tenant).document["tiers"]]


class JudgesPage(_JudgesBase):
    """The list, with each judge's agreement with people."""

    template_name = "policies/console_judges.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        judges = list(judge_list(tenant=self.tenant))
        agreements = self.agreements(tenant=self.tenant, judge_ids=[judge.pk for judge in judges])
        context.update(judges=[{"judge": judge, "agreement": agreements[judge.pk]} for judge in judges])
        return context


class JudgeCreatePage(_JudgesBase):
    """``/console/judges/new/``."""

    template_name = "policies/console_judge.html"

    def _render(self, form, status=200):
        return self.render_to_response(self.get_context_data(form=form, kinds=kinds_help()), status=status)

    def get(self, request):
        return self._render(JudgeForm(tiers=self.policy_tiers()))

    def post(self, request):
        form = JudgeForm(request.POST, tiers=self.policy_tiers())
        if form.is_valid():
            try:
                judge = judge_create(tenant=self.tenant, data=form.data_for_service(), user=self.person)
            except ConflictError as error:
                form.add_error("name", error.message)
            except ApplicationError as error:
                form_errors_from(form, error)
            else:
                messages.success(request, f"Judge {judge.name} created; it judges outputs received from now on.")
                return redirect("console:judge", judge_id=judge.pk)
        return self._render(form, status=400)


class JudgePage(_JudgesBase):
    """``/console/judges/<id>/``: its agreement, configuration and versions."""

    template_name = "policies/console_judge.html"

    def _judge(self, judge_id) -> Judge:
        try:
            return judge_get(tenant=self.tenant, judge_id=judge_id)
        except NotFoundError:
            raise Http404 from None

    def _render(self, judge, form, status=200):
        context = self.get_context_data(
            judge=judge,
            form=form,
            kinds=[kind for kind in kinds_help() if kind["name"] == judge.kind],
            agreement=self.agreements(tenant=self.tenant, judge_ids=[judge.pk])[judge.pk],
            history=judge_history(tenant=self.tenant, judge_id=judge.pk, limit=20),
            flag=judge_flags(tenant=self.tenant, judge_id=judge.pk, open_only=True).first(),
        )
        return self.render_to_response(context, status=status)

    def get(self, request, judge_id):
        judge = self._judge(judge_id)
        return self._render(judge, JudgeForm(initial=judge_initial(judge), tiers=self.policy_tiers(), judge=judge))

    def post(self, request, judge_id):
        judge = self._judge(judge_id)
        form = JudgeForm(request.POST, tiers=self.policy_tiers(), judge=judge)
        if form.is_valid():
            try:
                judge = judge_update(
                    tenant=self.tenant, judge_id=judge.pk, data=form.data_for_service(), user=self.person
                )
            except ConflictError as error:
                form.add_error("name", error.message)
            except NotFoundError:
                raise Http404 from None
            except ApplicationError as error:
                form_errors_from(form, error)
            else:
                messages.success(request, f"Judge {judge.name} is now at version {judge.version}.")
                return redirect("console:judge", judge_id=judge.pk)
        return self._render(judge, form, status=400)
