"""``/console/policy/``: the risk policy as one form per tier and an ordered list of rules,
a preview of what a change would do to the latest outputs, then publishing with a reason.

Nothing here decides anything: the document the forms build is checked by
``policy_validate`` and published by ``policy_publish`` (the API's service, so that a
change made here is a version in the same history), and the preview runs the policy
engine itself (``policies.preview``).
"""

import gc
import hashlib
import json
import re
import time
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured
from django.forms import formset_factory
from django.shortcuts import redirect

from hitl.errors import ApplicationError, ConflictError, DomainValidationError
from policies.preview import policy_changes, policy_preview
from policies.selectors import compiled_policy, policy_get, policy_history, rubric_list
from policies.services import policy_document_normalized, policy_publish, policy_validate
from tenants.pages import ConsoleForm, ConsolePage

PREVIEW_LIMIT = 10_000
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
MODES = [
    ("sequential", "Sequential: held until people decide"),
    ("parallel", "Parallel: delivered, reviewed after"),
    ("adaptive", "Adaptive: the rate follows the judges' confidence"),
]
TIER_MODES = [*MODES, ("hybrid", "Hybrid: per content category, as the rules say")]
LEVELS = [(1, "1: entry level"), (2, "2: experienced"), (3, "3: specialist")]


def percent_text(rate) -> str:
    """0.075 as "7.5" (the forms show rates in per cent)."""
    return f"{float(rate) * 100:.4f}".rstrip("0").rstrip(".")


def rate_of(percent: Decimal | None) -> float:
    return float((percent or Decimal(0)) / 100)


class PercentField(forms.DecimalField):
    def __init__(self, **kwargs):
        super().__init__(min_value=0, max_value=100, max_digits=8, decimal_places=4, **kwargs)


class TierForm(ConsoleForm):
    """One risk tier: how much human oversight its outputs get."""

    name = forms.RegexField(
        regex=NAME_PATTERN,
        max_length=50,
        error_messages={"invalid": "Lower-case letters, digits, - and _ (starting with a letter or digit)."},
    )
    description = forms.CharField(max_length=500, required=False)
    review_rate = PercentField(label="Review rate (%)", help_text="Share of its outputs sampled for review.")
    mode = forms.ChoiceField(choices=TIER_MODES, initial="parallel")
    default_mode = forms.ChoiceField(
        label="Hybrid: otherwise",
        choices=[("", "-"), *MODES],
        required=False,
        help_text="Hybrid tiers: the mode of outputs whose rule names none.",
    )
    required_approvals = forms.IntegerField(
        label="Approvals needed", min_value=1, max_value=5, initial=1, help_text="Distinct reviewers who approve."
    )
    min_reviewer_level = forms.TypedChoiceField(label="Reviewer level", choices=LEVELS, coerce=int, initial=1)
    sla_minutes = forms.IntegerField(
        label="SLA (minutes)", min_value=1, max_value=60 * 24 * 30, initial=480, help_text="From receipt to decision."
    )
    escalation = forms.BooleanField(label="May escalate to specialists", required=False)
    overlap_rate = PercentField(
        label="Overlap (%)", initial=Decimal(0), help_text="Sampled outputs given a second, independent review."
    )
    min_review_rate = PercentField(
        label="Adaptive floor (%)", initial=Decimal(0), help_text="Adaptive tiers: the rate never falls below this."
    )
    rubric = forms.ChoiceField(required=False, help_text="What its reviewers score.")

    field_order = [
        "name",
        "review_rate",
        "mode",
        "default_mode",
        "required_approvals",
        "min_reviewer_level",
        "sla_minutes",
        "overlap_rate",
        "min_review_rate",
        "rubric",
        "escalation",
    ]
    wide_fields = frozenset({"description"})

    def __init__(self, *args, rubrics=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rubric"].choices = [("", "none")] + [(name, name) for name in rubrics]

    def spec(self) -> dict:
        data = self.cleaned_data
        spec = {
            "name": data["name"],
            "description": data["description"],
            "review_rate": rate_of(data["review_rate"]),
            "mode": data["mode"],
            "required_approvals": data["required_approvals"],
            "min_reviewer_level": data["min_reviewer_level"],
            "sla_minutes": data["sla_minutes"],
            "escalation": data["escalation"],
            "overlap_rate": rate_of(data["overlap_rate"]),
            "min_review_rate": rate_of(data["min_review_rate"]),
        }
        if data["rubric"]:
            spec["rubric"] = data["rubric"]
        if data["mode"] == "hybrid" or data["default_mode"]:
            spec["default_mode"] = data["default_mode"] or None  # the policy's check names what is missing
        return spec


def tier_initial(tier: dict) -> dict:
    return {
        "name": tier["name"],
        "description": tier.get("description", ""),
        "review_rate": percent_text(tier["review_rate"]),
        "mode": tier["mode"],
        "default_mode": tier.get("default_mode") or "",
        "required_approvals": tier.get("required_approvals", 1),
        "min_reviewer_level": tier.get("min_reviewer_level", 1),
        "sla_minutes": tier["sla_minutes"],
        "escalation": tier.get("escalation", False),
        "overlap_rate": percent_text(tier.get("overlap_rate", 0)),
        "min_review_rate": percent_text(tier.get("min_review_rate", 0)),
        "rubric": tier.get("rubric") or "",
    }


# Rules ---------------------------------------------------------------------------

_IN_LINE = re.compile(r"^(?P<key>.+?)\s+in\s+(?P<values>\[.*\]|.+)$")


def _scalar(text: str):
    """A metadata value as written: JSON true, 3 or "3" when it reads as JSON, else the text itself."""
    text = text.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def _scalar_text(value) -> str:
    if isinstance(value, str):
        return value if _scalar(value) == value and value == value.strip() else json.dumps(value)
    return json.dumps(value)


def metadata_parse(text: str) -> list[dict]:
    """``key = value`` and ``key in [a, b]`` lines as the policy's metadata conditions."""
    conditions = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        found = _IN_LINE.match(line)
        if found and "=" not in found.group("key"):
            listed = found.group("values").strip()
            try:
                values = json.loads(listed)
            except ValueError:
                values = [_scalar(part) for part in listed.strip("[]").split(",") if part.strip()]
            if not isinstance(values, list) or not values:
                raise forms.ValidationError(f"Line {number}: list at least one value after 'in'.")
            conditions.append({"key": found.group("key").strip(), "in": values})
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip() or not value.strip():
            raise forms.ValidationError(f'Line {number}: write key = value, or key in ["a", "b"].')
        conditions.append({"key": key.strip(), "equals": _scalar(value)})
    return conditions


def metadata_text(conditions: list[dict]) -> str:
    lines = []
    for condition in conditions:
        if condition.get("in") is not None:
            lines.append(f"{condition['key']} in {json.dumps(condition['in'])}")
        else:
            lines.append(f"{condition['key']} = {_scalar_text(condition['equals'])}")
    return "\n".join(lines)


def _names(text: str) -> str | list[str] | None:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        return None
    return names[0] if len(names) == 1 else names


def _names_text(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else ", ".join(value)


def _tier_choices(form: forms.Form, name: str, tiers, blank: str | None = None) -> None:
    """The tiers to pick from, and the value submitted even if no tier has that name any more:
    the service then says so beside the field ("tier 'x' is not one of the tiers ...")."""
    choices = [("", blank)] if blank is not None else []
    choices += [(tier, tier) for tier in tiers]
    submitted = form.data.get(form.add_prefix(name)) if form.is_bound else None
    if submitted and submitted not in tiers:
        choices.append((submitted, f"{submitted} (no such tier)"))
    form.fields[name].widget.choices = choices


class RuleForm(ConsoleForm):
    """One rule: every condition given must hold; the first matching rule names the tier."""

    name = forms.CharField(max_length=200, required=False)
    application = forms.CharField(
        label="Application is", required=False, max_length=5000, help_text="One name, or several separated by commas."
    )
    model = forms.CharField(label="Model is", required=False, max_length=5000, help_text="Separate several by commas.")
    metadata = forms.CharField(
        label="Metadata",
        required=False,
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='One condition a line: plan = enterprise, or locale in ["de", "fr"].',
    )
    confidence_below = forms.DecimalField(
        label="Confidence below",
        required=False,
        min_value=Decimal("0.0001"),
        max_value=1,
        max_digits=6,
        decimal_places=4,
        help_text="0 to 1; outputs sent without a confidence never match.",
    )
    tier = forms.CharField(label="Then tier", max_length=50, widget=forms.Select)
    mode = forms.ChoiceField(
        label="Mode",
        choices=[("", "the tier's"), *MODES],
        required=False,
        help_text="For a hybrid tier: the mode of this content category.",
    )

    field_order = ["name", "application", "model", "confidence_below", "tier", "mode"]

    def __init__(self, *args, tiers=(), **kwargs):
        super().__init__(*args, **kwargs)
        _tier_choices(self, "tier", tiers, blank="choose a tier")

    def clean_metadata(self) -> list[dict]:
        return metadata_parse(self.cleaned_data["metadata"])

    def spec(self) -> dict:
        data = self.cleaned_data
        match = {}
        for key in ("application", "model"):
            names = _names(data[key])
            if names is not None:
                match[key] = names
        if data["metadata"]:
            match["metadata"] = data["metadata"]
        if data["confidence_below"] is not None:
            match["confidence_below"] = float(data["confidence_below"])
        spec = {"name": data["name"], "tier": data["tier"], "match": match}
        if data["mode"]:
            spec["mode"] = data["mode"]
        return spec


def rule_initial(rule: dict) -> dict:
    match = rule.get("match", {})
    below = match.get("confidence_below")
    return {
        "name": rule.get("name", ""),
        "application": _names_text(match.get("application")),
        "model": _names_text(match.get("model")),
        "metadata": metadata_text(match.get("metadata", [])),
        "confidence_below": f"{below:g}" if below is not None else "",
        "tier": rule["tier"],
        "mode": rule.get("mode") or "",
    }


SIGNALS = [
    ("outlier", "Outlier: a measure above a quantile of its application"),
    ("tool_failed", "A tool step failed"),
    ("user_asked_for_human", "The user asked for a human"),
    ("user_abandoned", "The user abandoned"),
]
MEASURE_CHOICES = [
    ("length", "length (characters)"),
    ("cost", "cost (USD)"),
    ("latency", "latency (ms)"),
    ("steps", "steps"),
    ("tool_errors", "tool errors"),
]


class SignalForm(ConsoleForm):
    """One signal rule: every one that fires raises the tier or forces a review (docs/policies.md#signals)."""

    name = forms.CharField(max_length=200, required=False)
    signal = forms.ChoiceField(choices=SIGNALS)
    application = forms.CharField(
        label="Application is",
        required=False,
        max_length=5000,
        help_text="Empty for every application; several separated by commas.",
    )
    measure = forms.ChoiceField(label="Measure", choices=[("", "outliers only"), *MEASURE_CHOICES], required=False)
    quantile = forms.DecimalField(
        label="Above quantile",
        required=False,
        min_value=Decimal("0.5"),
        max_value=Decimal("0.9999"),
        max_digits=5,
        decimal_places=4,
        help_text="Outliers: 0.99 is the application's p99.",
    )
    min_observations = forms.IntegerField(
        label="After outputs",
        required=False,
        min_value=10,
        max_value=1_000_000_000,
        help_text="Outliers: acts once the application's statistics hold this many outputs (100 if empty).",
    )
    action = forms.ChoiceField(
        choices=[("force_review", "Force a review"), ("raise_tier", "Raise the tier")], label="Then"
    )
    raise_to = forms.CharField(label="Raise to", max_length=50, required=False, widget=forms.Select)

    def __init__(self, *args, tiers=(), **kwargs):
        super().__init__(*args, **kwargs)
        _tier_choices(self, "raise_to", tiers, blank="the next tier")

    def spec(self) -> dict:
        data = self.cleaned_data
        spec = {"name": data["name"], "signal": data["signal"], "action": data["action"]}
        names = _names(data["application"])
        if names is not None:
            spec["application"] = names
        if data["measure"]:
            spec["measure"] = data["measure"]
        if data["quantile"] is not None:
            spec["quantile"] = float(data["quantile"])
        if data["min_observations"] is not None:
            spec["min_observations"] = data["min_observations"]
        if data["raise_to"]:
            spec["raise_to"] = data["raise_to"]
        return spec


def signal_initial(rule: dict) -> dict:
    return {
        "name": rule.get("name", ""),
        "signal": rule["signal"],
        "application": _names_text(rule.get("application")),
        "measure": rule.get("measure") or "",
        "quantile": f"{rule['quantile']:g}" if rule.get("signal") == "outlier" and "quantile" in rule else "",
        "min_observations": rule.get("min_observations", "") if rule.get("signal") == "outlier" else "",
        "action": rule["action"],
        "raise_to": rule.get("raise_to") or "",
    }


class SignalFormSet(forms.BaseFormSet):
    def add_fields(self, form, index):
        super().add_fields(form, index)
        form.fields[forms.formsets.DELETION_FIELD_NAME].label = "Remove this signal"


SignalForms = formset_factory(SignalForm, formset=SignalFormSet, extra=0, can_delete=True, max_num=50, absolute_max=100)


class RuleFormSet(forms.BaseFormSet):
    def add_fields(self, form, index):
        super().add_fields(form, index)
        form.fields[forms.formsets.ORDERING_FIELD_NAME].label = "Position"
        form.fields[forms.formsets.DELETION_FIELD_NAME].label = "Remove this rule"
        form.fields["metadata"] = form.fields.pop("metadata")  # the wide box last, under the row


class TierFormSet(forms.BaseFormSet):
    def add_fields(self, form, index):
        super().add_fields(form, index)
        form.fields[forms.formsets.DELETION_FIELD_NAME].label = "Remove this tier"
        form.fields["description"] = form.fields.pop("description")  # the wide box last, under the row


TierForms = formset_factory(TierForm, formset=TierFormSet, extra=0, can_delete=True, max_num=20, absolute_max=40)
RuleForms = formset_factory(
    RuleForm, formset=RuleFormSet, extra=0, can_order=True, can_delete=True, max_num=500, absolute_max=600
)


class PolicyForm(ConsoleForm):
    """The rest of the document, and what publishing needs: a reason, the version it started from."""

    default_tier = forms.CharField(max_length=50, widget=forms.Select, help_text="The tier of outputs no rule matches.")
    reason = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required to publish; it goes into the policy's history.",
    )
    base_version = forms.IntegerField(widget=forms.HiddenInput)
    previewed = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, tiers=(), **kwargs):
        super().__init__(*args, **kwargs)
        _tier_choices(self, "default_tier", tiers)


def _tier_names(data, document: dict) -> list[str]:
    """Tier names for the rule and default-tier choices: those in the form as submitted, else the policy's."""
    if data is None:
        return [tier["name"] for tier in document["tiers"]]
    names = []
    try:
        total = min(int(data.get("tier-TOTAL_FORMS", 0)), 40)
    except ValueError:
        total = 0
    for index in range(total):
        name = (data.get(f"tier-{index}-name") or "").strip()
        if name and name not in names and not data.get(f"tier-{index}-DELETE"):
            names.append(name)
    return names or [tier["name"] for tier in document["tiers"]]


def _document_digest(document: dict, base_version: int) -> str:
    canonical = json.dumps({"base": base_version, "document": document}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _signed(number: int) -> str:
    if number > 0:
        return f"+{number:,}"
    if number < 0:
        return f"\u2212{-number:,}"  # a minus sign, not a hyphen
    return "no change"


def preview_rows(preview) -> list[dict]:
    rows = []
    for entry in [*preview.tiers, preview.total]:
        rows.append(
            {
                "tier": entry.tier,
                "total": entry is preview.total,
                "note": "new" if not entry.in_current else ("removed" if not entry.in_candidate else ""),
                "outputs_now": entry.outputs_now,
                "outputs_after": entry.outputs_after,
                "outputs_difference": _signed(entry.outputs_difference),
                "outputs_direction": (entry.outputs_difference > 0) - (entry.outputs_difference < 0),
                "sampled_now": entry.sampled_now,
                "sampled_after": entry.sampled_after,
                "sampled_difference": _signed(entry.sampled_difference),
                "sampled_direction": (entry.sampled_difference > 0) - (entry.sampled_difference < 0),
                "recorded_outputs": entry.recorded_outputs,
                "recorded_sampled": entry.recorded_sampled,
            }
        )
    return rows


# Where each field of a validation error's path is shown: tier and rule fields beside the field.
_RULE_FIELDS = {"name": "name", "tier": "tier", "mode": "mode"}
_MATCH_FIELDS = {name: name for name in ("application", "model", "metadata", "confidence_below")}


class PolicyPage(ConsolePage):
    """The policy, one form per tier and the ordered rules; Preview, then Publish with a reason."""

    section = "policy"
    template_name = "policies/console_policy.html"
    # ``callable(tenant=...)`` returning the latest outputs as ``policies.preview`` reads them;
    # given by the URL conf (``reviews`` owns outputs and sits above this app).
    recent_outputs = None

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        if self.recent_outputs is None:
            raise ImproperlyConfigured("PolicyPage needs recent_outputs (see reviews.console_urls).")

    # Forms ------------------------------------------------------------------------

    def _forms(self, policy, data=None):
        document = policy.document
        rubrics = [rubric.name for rubric in rubric_list(tenant=self.tenant)]
        tiers = _tier_names(data, document)
        if data is None:
            tier_forms = TierForms(
                prefix="tier",
                initial=[tier_initial(tier) for tier in document["tiers"]],
                form_kwargs={"rubrics": rubrics},
            )
            rule_forms = RuleForms(
                prefix="rule", initial=[rule_initial(rule) for rule in document["rules"]], form_kwargs={"tiers": tiers}
            )
            policy_form = PolicyForm(
                initial={"default_tier": document["default_tier"], "base_version": policy.version}, tiers=tiers
            )
            self.signal_forms = SignalForms(
                prefix="signal",
                initial=[signal_initial(rule) for rule in document.get("signals", [])],
                form_kwargs={"tiers": tiers},
            )
        else:
            tier_forms = TierForms(data, prefix="tier", form_kwargs={"rubrics": rubrics})
            rule_forms = RuleForms(data, prefix="rule", form_kwargs={"tiers": tiers})
            policy_form = PolicyForm(data, tiers=tiers)
            self.signal_forms = SignalForms(data, prefix="signal", form_kwargs={"tiers": tiers})
        for form in [*tier_forms.forms[1:], *rule_forms.forms[1:], *self.signal_forms.forms[1:]]:
            for field in form.fields.values():  # each form's own copies: the help shows once per list
                field.help_text = ""
        return tier_forms, rule_forms, policy_form

    def _document(self, tier_forms, rule_forms, policy_form):
        """The document the forms describe, with the forms that built each tier and rule (None when invalid)."""
        valid = [form.is_valid() for form in (tier_forms, rule_forms, policy_form, self.signal_forms)]
        if not all(valid):
            return None, [], []
        deleted = {id(form) for form in tier_forms.deleted_forms}
        kept_tiers = [
            form
            for index, form in enumerate(tier_forms.forms)
            if id(form) not in deleted and (index < tier_forms.initial_form_count() or form.has_changed())
        ]
        kept_rules = list(rule_forms.ordered_forms)
        document = {
            "default_tier": policy_form.cleaned_data["default_tier"],
            "tiers": [form.spec() for form in kept_tiers],
            "rules": [form.spec() for form in kept_rules],
        }
        self.kept_signals = [form for form in self.signal_forms.forms if form not in self.signal_forms.deleted_forms]
        if self.kept_signals:
            document["signals"] = [form.spec() for form in self.kept_signals]
        return document, kept_tiers, kept_rules

    def _show_errors(self, error: ApplicationError, kept_tiers, kept_rules, policy_form) -> None:
        """Put each error of the service beside the field it names (the rest above the form)."""
        kept_signals = getattr(self, "kept_signals", [])
        for path, problems in (error.fields or {"": [error.message]}).items():
            parts = path.split(".")
            form, field = policy_form, None
            if parts[0] == "signals" and len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < len(kept_signals):
                form = kept_signals[int(parts[1])]
                field = parts[2] if len(parts) >= 3 and parts[2] in form.fields else None
            elif parts[0] == "tiers" and len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < len(kept_tiers):
                form = kept_tiers[int(parts[1])]
                field = parts[2] if len(parts) >= 3 and parts[2] in form.fields else None
            elif parts[0] == "rules" and len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < len(kept_rules):
                form = kept_rules[int(parts[1])]
                if len(parts) >= 3 and parts[2] in _RULE_FIELDS:
                    field = _RULE_FIELDS[parts[2]]
                elif len(parts) >= 4 and parts[2] == "match":
                    field = _MATCH_FIELDS.get(parts[3])
            elif parts[0] == "default_tier":
                field = "default_tier"
            for problem in problems:
                form.add_error(field, problem)

    # Requests ---------------------------------------------------------------------

    def get(self, request):
        policy = policy_get(tenant=self.tenant)
        return self.render_to_response(self._context(policy, *self._forms(policy)))

    def post(self, request):
        policy = policy_get(tenant=self.tenant)
        data = request.POST.copy()
        action = data.get("action", "preview")
        if action in ("add_tier", "add_rule", "add_signal"):
            self._add_row(data, action)
            return self.render_to_response(self._context(policy, *self._forms(policy, data), quiet=True))
        forms_ = self._forms(policy, data)
        policy_form = forms_[2]
        document, kept_tiers, kept_rules = self._document(*forms_)
        if document is None:
            return self.render_to_response(self._context(policy, *forms_), status=400)
        try:
            # As it would be stored (defaults explicit), so that what is previewed, compared
            # and published is the same document.
            document = policy_document_normalized(policy_validate(tenant=self.tenant, document=document))
        except DomainValidationError as error:
            self._show_errors(error, kept_tiers, kept_rules, policy_form)
            return self.render_to_response(self._context(policy, *forms_), status=400)
        base_version = policy_form.cleaned_data["base_version"]
        digest = _document_digest(document, base_version)
        if action == "publish":
            reason = policy_form.cleaned_data["reason"].strip()
            if policy_form.cleaned_data["previewed"] != digest:
                messages.info(request, "The form changed since the last preview: here is what this version would do.")
            elif not reason:
                policy_form.add_error("reason", "Say why: the reason goes into the policy's history.")
            else:
                try:
                    published = policy_publish(
                        tenant=self.tenant,
                        document=document,
                        user=self.person,
                        reason=reason,
                        expected_version=base_version,
                    )
                except ConflictError as error:
                    policy_form.add_error(None, error.message)
                    return self.render_to_response(self._context(policy, *forms_), status=409)
                except DomainValidationError as error:
                    self._show_errors(error, kept_tiers, kept_rules, policy_form)
                    return self.render_to_response(self._context(policy, *forms_), status=400)
                messages.success(request, f"Published version {published.version} of the policy: {reason}")
                return redirect("console:policy")
        context = self._context(policy, *forms_, preview_of=(document, digest))
        return self.render_to_response(context, status=400 if policy_form.errors else 200)

    @staticmethod
    def _add_row(data, action: str) -> None:
        """One more (blank) tier or rule row; a new tier starts from the usual defaults."""
        prefix = {"add_tier": "tier", "add_rule": "rule", "add_signal": "signal"}[action]
        try:
            index = int(data.get(f"{prefix}-TOTAL_FORMS", 0))
        except ValueError:
            index = 0
        data[f"{prefix}-TOTAL_FORMS"] = str(index + 1)
        if prefix == "tier":
            for name, field in TierForm.base_fields.items():
                if field.initial is not None and not isinstance(field, forms.BooleanField):
                    data[f"tier-{index}-{name}"] = str(field.initial)

    def _problems(self, tier_forms, rule_forms, policy_form) -> list[dict]:
        """Every error of the forms, each with where it is and a link to its field, for the summary."""
        problems = []

        def title(kind: str, index: int, form) -> str:
            name = form["name"].value()
            return f"{kind} {index + 1}" + (f" ({name})" if name else "")

        named = [(title("Tier", i, form), f"tier-{i}", form) for i, form in enumerate(tier_forms.forms)]
        named += [(title("Rule", i, form), f"rule-{i}", form) for i, form in enumerate(rule_forms.forms)]
        named += [(title("Signal", i, form), f"signal-{i}", form) for i, form in enumerate(self.signal_forms.forms)]
        named.append(("", "policy-form", policy_form))
        for where, anchor, form in named:
            for field, messages_ in form.errors.items():
                bound = form[field] if field in form.fields else None
                label = ", ".join(part for part in (where, bound.label if bound else "") if part)
                for message in messages_:
                    problems.append({"where": label, "anchor": bound.auto_id if bound else anchor, "message": message})
        return problems

    def _context(self, policy, tier_forms, rule_forms, policy_form, preview_of=None, quiet=False):
        problems = [] if quiet or not tier_forms.is_bound else self._problems(tier_forms, rule_forms, policy_form)
        problems += [{"where": "", "anchor": "tiers", "message": error} for error in tier_forms.non_form_errors()]
        problems += [{"where": "", "anchor": "rules", "message": error} for error in rule_forms.non_form_errors()]
        context = self.get_context_data(
            policy=policy,
            tier_forms=tier_forms,
            rule_forms=rule_forms,
            signal_forms=self.signal_forms,
            policy_form=policy_form,
            history=policy_history(tenant=self.tenant, limit=10),
            preview_limit=PREVIEW_LIMIT,
            problems=problems,
        )
        if preview_of is not None:
            document, digest = preview_of
            current = compiled_policy(tenant=self.tenant)
            # 10,000 rows of small dicts set off the cyclic garbage collector, whose full passes
            # over a web process's heap cost a few hundred milliseconds; reference counting frees
            # these rows, so the collector waits until the preview is done.
            collecting = gc.isenabled()
            gc.disable()
            try:
                started = time.perf_counter()
                rows = self.recent_outputs(tenant=self.tenant, limit=PREVIEW_LIMIT)
                read = time.perf_counter()
                preview = policy_preview(current=current, candidate_document=document, rows=rows)
                done = time.perf_counter()
            finally:
                if collecting:
                    gc.enable()
            data = policy_form.data.copy()
            data["previewed"] = digest
            policy_form.data = data  # the publish button now stands for exactly this document
            context.update(
                preview=preview,
                preview_rows=preview_rows(preview),
                preview_read_ms=round((read - started) * 1000),
                preview_ms=round((done - read) * 1000),
                changes=policy_changes(current=policy.document, candidate=document),
            )
        return context
