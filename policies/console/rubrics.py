"""``/console/rubrics/``: the rubrics reviewers score against, their versions, and publishing a
new version (``rubric_publish``, the API's service) from a validated JSON list of criteria."""

import json

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect

from hitl.errors import ApplicationError, NotFoundError
from policies.models import Rubric
from policies.selectors import policy_get, rubric_get, rubric_history, rubric_list
from policies.services import rubric_publish
from tenants.pages import ConsoleForm, ConsolePage

EXAMPLE_CRITERIA = [
    {"key": "correct", "label": "Factually correct", "kind": "binary"},
    {
        "key": "helpful",
        "label": "Helpful",
        "kind": "graded",
        "min": 1,
        "max": 5,
        "anchors": {"1": "useless", "5": "fully answers"},
    },
    {"key": "tone", "label": "Tone", "kind": "categorical", "options": ["ok", "too casual", "rude"]},
    {"key": "notes", "label": "Notes", "kind": "text", "required": False},
]
CRITERION_KINDS = [
    ("binary", "yes or no"),
    ("graded", "a score from min to max, with optional anchors saying what each score means"),
    ("categorical", "one of options (at least two)"),
    ("text", "a free comment"),
]


# Stored criteria carry every field; the editor leaves out those at their defaults.
_CRITERION_DEFAULTS = {"description": "", "required": True, "anchors": {}, "options": []}


def criteria_text(criteria: list) -> str:
    shown = [
        {key: value for key, value in criterion.items() if _CRITERION_DEFAULTS.get(key, object()) != value}
        for criterion in criteria
    ]
    return json.dumps(shown, indent=2, ensure_ascii=False)


def _where(path: str, criteria) -> str:
    """'criteria.1.max' as 'criterion 2 (helpful), max' for people."""
    parts = path.split(".")
    if len(parts) >= 2 and parts[0] == "criteria" and parts[1].isdigit():
        index = int(parts[1])
        item = criteria[index] if isinstance(criteria, list) and index < len(criteria) else None
        key = item.get("key") if isinstance(item, dict) else None
        where = f"criterion {index + 1}" + (f" ({key})" if key else "")
        return ", ".join([where, *parts[2:]])
    return path


class RubricForm(ConsoleForm):
    name = forms.RegexField(
        regex=r"^[a-z0-9][a-z0-9_-]*$",
        max_length=50,
        error_messages={"invalid": "Lower-case letters, digits, - and _ (starting with a letter or digit)."},
        help_text="Tiers and applications name the rubric by it.",
    )
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    criteria = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 18, "class": "code", "spellcheck": "false"}),
        max_length=100_000,
        help_text="A JSON list of criteria; each has a key, a label, a kind, and required (true unless said).",
    )
    scope = forms.ChoiceField(
        choices=[("output", "the output under review"), ("session", "the whole session")],
        initial="output",
        required=False,  # left out: the output under review
        help_text="What reviewers score: with the whole session, they are shown every turn of the conversation.",
    )
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why: it goes into the rubric's history.",
        error_messages={"required": "Say why: the reason goes into the rubric's history."},
    )
    require_recertification = forms.BooleanField(
        required=False,
        label="Require recertification",
        help_text="This version changes what a right answer is: everyone certified for a queue whose reviews use "
        "this rubric takes the exam again (their certifications expire now).",
    )

    def __init__(self, *args, name_fixed: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if name_fixed:
            del self.fields["name"]
        else:  # a new rubric: nobody was certified under an earlier version of it
            del self.fields["require_recertification"]

    def clean_criteria(self):
        try:
            criteria = json.loads(self.cleaned_data["criteria"])
        except ValueError as error:
            raise forms.ValidationError(f"Not JSON: {error}.") from None
        if not isinstance(criteria, list):
            raise forms.ValidationError("A JSON list of criteria: [{...}, {...}].")
        return criteria


def _publish(page: ConsolePage, form: RubricForm, name: str):
    """rubric_publish with the form's document; errors beside the field they name. Returns the rubric or None."""
    data = form.cleaned_data
    document = {
        "name": name,
        "description": data["description"],
        "criteria": data["criteria"],
        "scope": data.get("scope") or "output",
    }
    try:
        rubric, _ = rubric_publish(
            tenant=page.tenant,
            document=document,
            user=page.person,
            reason=data["reason"],
            require_recertification=data.get("require_recertification", False),
        )
    except ApplicationError as error:
        for path, problems in (error.fields or {"": [error.message]}).items():
            field = path.split(".")[0]
            field = field if field in form.fields else None
            for problem in problems:
                where = _where(path, data["criteria"]) if path.startswith("criteria.") else ""
                form.add_error(field, f"{where}: {problem}" if where else problem)
        return None
    return rubric


def _in_use(page: ConsolePage) -> dict[str, list[str]]:
    """Rubric name to the tiers whose reviews use it."""
    used: dict[str, list[str]] = {}
    for tier in policy_get(tenant=page.tenant).document["tiers"]:
        if tier.get("rubric"):
            used.setdefault(tier["rubric"], []).append(tier["name"])
    return used


class RubricsPage(ConsolePage):
    """The list, and a new rubric."""

    section = "rubrics"
    template_name = "policies/console_rubrics.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        used = _in_use(self)
        rubrics = list(rubric_list(tenant=self.tenant).select_related("updated_by"))
        context.update(
            rubrics=[{"rubric": rubric, "tiers": used.get(rubric.name, [])} for rubric in rubrics],
            kinds=CRITERION_KINDS,
        )
        context.setdefault("form", RubricForm(initial={"criteria": criteria_text(EXAMPLE_CRITERIA)}))
        return context

    def post(self, request):
        form = RubricForm(request.POST)
        if form.is_valid():
            name = form.cleaned_data["name"]
            if Rubric.objects.for_tenant(self.tenant).filter(name=name).exists():
                form.add_error("name", f"A rubric named {name} exists: open it to publish a new version.")
            else:
                rubric = _publish(self, form, name)
                if rubric is not None:
                    messages.success(request, f"Rubric {rubric.name} created (version 1).")
                    return redirect("console:rubric", name=rubric.name)
        return self.render_to_response(self.get_context_data(form=form), status=400)


class RubricPage(ConsolePage):
    """One rubric: its criteria, its versions, and a new version."""

    section = "rubrics"
    template_name = "policies/console_rubric.html"

    def _rubric(self, name: str) -> Rubric:
        try:
            return rubric_get(tenant=self.tenant, name=name)
        except NotFoundError:
            raise Http404 from None

    def _render(self, rubric, form, status=200):
        context = self.get_context_data(
            rubric=rubric,
            form=form,
            history=rubric_history(tenant=self.tenant, name=rubric.name, limit=20),
            tiers=_in_use(self).get(rubric.name, []),
            kinds=CRITERION_KINDS,
        )
        return self.render_to_response(context, status=status)

    def get(self, request, name):
        rubric = self._rubric(name)
        initial = {
            "description": rubric.description,
            "criteria": criteria_text(rubric.criteria),
            "scope": rubric.scope,
        }
        return self._render(rubric, RubricForm(initial=initial, name_fixed=True))

    def post(self, request, name):
        rubric = self._rubric(name)
        form = RubricForm(request.POST, name_fixed=True)
        if form.is_valid():
            published = _publish(self, form, rubric.name)
            if published is not None:
                recertify = (
                    " People certified for its queues take the exam again."
                    if form.cleaned_data.get("require_recertification")
                    else ""
                )
                messages.success(
                    request, f"Published version {published.version} of rubric {published.name}.{recertify}"
                )
                return redirect("console:rubric", name=published.name)
        return self._render(rubric, form, status=400)
