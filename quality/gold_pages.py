"""The quality lead's pages of golden sets and certifications (on ``quality.pages.QualityPage``).

Golden sets (list, items by version, import, promote, remove, export), certifications
(suspended first, reinstate, revoke, each queue's rules and recertification) and exam
results. They call the same selectors and services as the API.
"""

from django import forms
from django.contrib import messages
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect

from hitl.errors import ApplicationError, NotFoundError
from quality import selectors
from quality.pages import QualityPage
from quality.services import (
    gold_item_promote,
    gold_item_remove,
    gold_items_import,
    golden_set_create,
    golden_set_export,
)
from reviews.services.gold import (
    QUEUE_CERTIFICATION_RULES,
    certification_reinstate,
    certification_revoke,
    queue_certification_rules_set,
    queue_recertification_require,
)
from tenants.pages import ConsoleForm, form_errors_from

MAX_IMPORT_BYTES = 32 * 1024 * 1024

# Golden sets ------------------------------------------------------------------------------


class GoldenSetForm(ConsoleForm):
    name = forms.CharField(max_length=100)
    queue = forms.ChoiceField(required=False, help_text="The queue whose exams and live gold it feeds.")
    skill = forms.CharField(required=False, max_length=100, help_text="Or a skill: every queue requiring it.")
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, queues=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["queue"].choices = [("", "(none: by skill)")] + [(queue.name, queue.name) for queue in queues]


class GoldenSetsPage(QualityPage):
    """``/quality/golden-sets/``: every set with its version and size; a new set."""

    quality_section = "golden-sets"
    template_name = "quality/golden_sets.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(golden_sets=list(selectors.golden_sets(tenant=self.tenant)))
        context.setdefault("form", GoldenSetForm(queues=selectors.queues(tenant=self.tenant)))
        return context

    def post(self, request):
        form = GoldenSetForm(request.POST, queues=selectors.queues(tenant=self.tenant))
        if form.is_valid():
            data = form.cleaned_data
            try:
                golden_set = golden_set_create(
                    tenant=self.tenant,
                    name=data["name"].strip(),
                    description=data["description"],
                    queue=data["queue"] or None,
                    skill=data["skill"].strip().lower() or None,
                    actor=self.person,
                )
            except ApplicationError as error:
                form_errors_from(form, error)
            else:
                messages.success(request, f"Golden set {golden_set.name} created: promote or import its items.")
                return redirect("quality:golden-set", golden_set.pk)
        return self.render_to_response(self.get_context_data(form=form), status=400)


class PromoteForm(ConsoleForm):
    output_id = forms.UUIDField(label="Output id", help_text="A reviewed output (its id, from its page).")
    expected_decision = forms.ChoiceField(
        required=False,
        choices=[("", "as decided"), ("approve", "approve"), ("reject", "reject"), ("correct", "correct")],
        help_text="Default: the output's decision, with the deciding review's scores.",
    )
    note = forms.CharField(required=False, max_length=2000, help_text="Why this is the answer.")


class ImportForm(ConsoleForm):
    file = forms.FileField(label="JSON Lines file", help_text="One item a line; one bad line and nothing is imported.")


class GoldenSetPage(QualityPage):
    """``/quality/golden-sets/{id}/``: the items of a version, import, promote, remove, export."""

    quality_section = "golden-sets"
    template_name = "quality/golden_set.html"

    def _set(self, golden_set_id):
        try:
            return selectors.golden_set_get(tenant=self.tenant, golden_set_id=golden_set_id)
        except NotFoundError:
            raise Http404 from None

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        golden_set = self._set(kwargs["golden_set_id"])
        raw = self.request.GET.get("version", "")
        version = int(raw) if raw.isdigit() and int(raw) <= golden_set.version else golden_set.version
        context.update(
            golden_set=golden_set,
            version=version,
            versions=list(range(golden_set.version, 0, -1)),
            items=list(selectors.gold_items(tenant=self.tenant, golden_set=golden_set, version=version)),
            candidates=selectors.outputs_promotable(tenant=self.tenant, limit=20),
        )
        context.setdefault("promote_form", PromoteForm())
        context.setdefault("import_form", ImportForm())
        return context

    def post(self, request, golden_set_id):
        """One of three actions, by the button pressed: promote, import, remove."""
        golden_set = self._set(golden_set_id)
        action = request.POST.get("action", "")
        if action == "remove":
            try:
                gold_item_remove(
                    tenant=self.tenant, golden_set_id=golden_set.pk, item_id=request.POST.get("item"), actor=self.person
                )
            except ApplicationError as error:
                messages.error(request, error.message)
            else:
                messages.success(request, "Item removed: the set has a new version; older ones keep it.")
            return redirect("quality:golden-set", golden_set.pk)
        if action == "import":
            form = ImportForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["file"]
                if upload.size > MAX_IMPORT_BYTES:
                    form.add_error("file", "At most 32 MB.")
                else:
                    try:
                        _, count = gold_items_import(
                            tenant=self.tenant, golden_set_id=golden_set.pk, body=upload.read(), actor=self.person
                        )
                    except ApplicationError as error:
                        form.add_error(None, error.message.split(". ")[0] + ".")
                        for field, problems in error.fields.items():
                            form.add_error(None, f"{field}: {' '.join(problems)}")
                    else:
                        messages.success(request, f"Imported {count} items as a new version.")
                        return redirect("quality:golden-set", golden_set.pk)
            context = self.get_context_data(golden_set_id=golden_set.pk, import_form=form)
            return self.render_to_response(context, status=400)
        form = PromoteForm(request.POST)
        if form.is_valid():
            try:
                gold_item_promote(
                    tenant=self.tenant,
                    golden_set_id=golden_set.pk,
                    output_id=form.cleaned_data["output_id"],
                    expected_decision=form.cleaned_data["expected_decision"] or None,
                    note=form.cleaned_data["note"],
                    actor=self.person,
                )
            except ApplicationError as error:
                form_errors_from(form, error)
            else:
                messages.success(request, "Promoted to gold: the set has a new version.")
                return redirect("quality:golden-set", golden_set.pk)
        context = self.get_context_data(golden_set_id=golden_set.pk, promote_form=form)
        return self.render_to_response(context, status=400)


class GoldenSetExport(QualityPage):
    """``/quality/golden-sets/{id}/export.jsonl``: the version's items, streamed and audited."""

    def get(self, request, golden_set_id):
        try:
            golden_set = selectors.golden_set_get(tenant=self.tenant, golden_set_id=golden_set_id)
            raw = request.GET.get("version", "")
            version = int(raw) if raw.isdigit() and len(raw) < 9 else None
            chunks = golden_set_export(
                tenant=self.tenant, golden_set_id=golden_set.pk, version=version, actor=self.person
            )
        except NotFoundError:
            raise Http404 from None
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("quality:golden-set", golden_set_id)
        response = StreamingHttpResponse(chunks, content_type="application/x-ndjson")
        shown = golden_set.version if version is None else version
        response["Content-Disposition"] = f'attachment; filename="golden-set-{golden_set.pk}-v{shown}.jsonl"'
        response["Cache-Control"] = "no-store"
        return response


class OutputPromotePage(QualityPage):
    """``/quality/outputs/{id}/``: a reviewed output, as promoted to gold from its page."""

    quality_section = "golden-sets"
    template_name = "quality/output_promote.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        try:
            output = selectors.output_for_promotion(tenant=self.tenant, output_id=kwargs["output_id"])
        except NotFoundError:
            raise Http404 from None
        context.update(output=output, golden_sets=list(selectors.golden_sets(tenant=self.tenant)))
        return context


# Certifications --------------------------------------------------------------------------------


class QueueRulesForm(ConsoleForm):
    requires_certification = forms.BooleanField(required=False, label="Requires certification")
    exam_items = forms.IntegerField(min_value=1, max_value=500, label="Exam items")
    exam_pass_mark = forms.IntegerField(min_value=0, max_value=100, label="Pass mark (%)")
    certification_days = forms.IntegerField(min_value=1, max_value=3650, label="Valid for (days)")
    gold_rate = forms.IntegerField(min_value=0, max_value=100, label="Live gold (% of reviews)")
    gold_window = forms.IntegerField(min_value=1, max_value=1000, label="Window (last K answers)")
    gold_threshold = forms.IntegerField(min_value=0, max_value=100, label="Suspend below (%)")

    PERCENT = ("exam_pass_mark", "gold_rate", "gold_threshold")

    @classmethod
    def initial_of(cls, queue) -> dict:
        return {
            field: round(getattr(queue, field) * 100) if field in cls.PERCENT else getattr(queue, field)
            for field in QUEUE_CERTIFICATION_RULES
        }

    def rules(self) -> dict:
        return {
            field: self.cleaned_data[field] / 100 if field in self.PERCENT else self.cleaned_data[field]
            for field in QUEUE_CERTIFICATION_RULES
        }


class CertificationsPage(QualityPage):
    """``/quality/certifications/``: who holds what until when, suspended first; each queue's rules."""

    quality_section = "certifications"
    template_name = "quality/certifications.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        rows = selectors.certifications(tenant=self.tenant)
        queues = selectors.queues(tenant=self.tenant)
        forms_by_queue = kwargs.get("queue_forms") or {}
        context.update(
            certifications=[selectors.certification_view(row) for row in rows],
            queues=[
                {
                    "queue": queue,
                    "form": forms_by_queue.get(queue.pk)
                    or QueueRulesForm(initial=QueueRulesForm.initial_of(queue), prefix=f"q{queue.pk}"),
                }
                for queue in queues
            ],
        )
        return context

    def post(self, request):
        action = request.POST.get("action", "")
        try:
            if action in ("reinstate", "revoke"):
                certification = selectors.certification_get(
                    tenant=self.tenant, certification_id=_int(request.POST.get("certification"))
                )
                change = certification_reinstate if action == "reinstate" else certification_revoke
                change(
                    tenant=self.tenant,
                    certification_id=certification.pk,
                    actor=self.person,
                    reason=request.POST.get("reason", "").strip()[:2000] or f"{action}d by a quality lead",
                )
                messages.success(request, f"{certification.user.username} on {certification.queue.name}: {action}d.")
            elif action in ("rules", "recertify"):
                queue = next(
                    (q for q in selectors.queues(tenant=self.tenant) if q.pk == _int(request.POST.get("queue"))), None
                )
                if queue is None:
                    raise Http404
                if action == "recertify":
                    expired = queue_recertification_require(
                        tenant=self.tenant,
                        queue_id=queue.pk,
                        actor=self.person,
                        reason=request.POST.get("reason", "").strip()[:2000] or "asked by a quality lead",
                    )
                    messages.success(request, f"{expired} certifications of {queue.name} expired: exams again.")
                else:
                    form = QueueRulesForm(request.POST, prefix=f"q{queue.pk}")
                    if not form.is_valid():
                        context = self.get_context_data(queue_forms={queue.pk: form})
                        return self.render_to_response(context, status=400)
                    queue_certification_rules_set(
                        tenant=self.tenant, queue_id=queue.pk, rules=form.rules(), actor=self.person
                    )
                    messages.success(request, f"Certification rules of {queue.name} saved.")
            else:
                messages.error(request, "Unknown action.")
        except NotFoundError:
            raise Http404 from None
        except ApplicationError as error:
            messages.error(request, error.message)
        return redirect("quality:certifications")


def _int(raw) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise Http404 from None


class ExamsPage(QualityPage):
    """``/quality/exams/``: exam results, newest first."""

    quality_section = "exams"
    template_name = "quality/exams.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(exams=[selectors.exam_view(exam) for exam in selectors.exams(tenant=self.tenant)])
        return context
