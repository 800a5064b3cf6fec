"""The auditor's pages under ``/audit/``: the output search, an output's full story, the
history of every configuration with diffs.

Read-only: auditors and admins of the current tenant read what the selectors of
``reviews.audit_selectors`` return; nothing here changes governance state. Every time is
shown in UTC, named as such; every identifier can be copied (``reviews/copy.js``).
"""

import base64
import hashlib
import mimetypes
import re
import uuid
import zipfile
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from django import forms
from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from hitl.db import page_and_next
from hitl.errors import NotFoundError, RuleViolationError
from policies.selectors import compiled_policy
from reviews.audit_selectors import (
    CONFIG_KINDS,
    DECISION_FILTERS,
    audit_applications,
    audit_config_history,
    audit_output_page,
    audit_output_search,
    audit_output_story,
    audit_output_trail,
    audit_policy_version,
    audit_queue_access,
    audit_record_matches,
    audit_reviewers,
    timeline_audit_events,
    username_of,
)
from reviews.bundle import (
    SUMMARY_STYLE,
    compliance_export_archive,
    compliance_export_get,
    compliance_export_request,
    compliance_exports,
)
from reviews.export import JSONL_CONTENT_TYPE, csv_chunks, export_records
from reviews.filters import LAST_DAY, AuditOutputFilter
from reviews.models import Output
from reviews.trace import input_view, trace_steps
from tenants import auditchain
from tenants.audit import Actor
from tenants.models import Role
from tenants.pages import TenantPage
from tenants.verification import (
    audit_chain_status,
    audit_verification_get,
    audit_verification_start,
    audit_verifications_recent,
)

AUDITING = frozenset({Role.AUDITOR, Role.ADMIN})


class AuditPage(TenantPage):
    """Base of the auditor's pages: auditors and admins of the current tenant, GET only."""

    roles = AUDITING
    http_method_names = ["get", "head", "options"]
    audit_section = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("audit_section", self.audit_section)
        return context


def _day_start(day) -> datetime | None:
    return datetime.combine(day, time.min, tzinfo=UTC) if day else None


class _SearchMixin:
    """The output search's filters, read from the query string (the page and its CSV share them)."""

    def search_filter(self) -> AuditOutputFilter:
        tenant = self.tenant
        search = AuditOutputFilter(
            self.request.GET or None,
            queryset=Output.objects.none(),
            applications=audit_applications(tenant=tenant),
            tiers=list(compiled_policy(tenant=tenant).tiers),  # in the policy's order, as its admin wrote them
            decisions=[(key, label) for key, (label, _) in DECISION_FILTERS.items()],
            reviewers=audit_reviewers(tenant=tenant),
        )
        search.form.label_suffix = ""
        return search

    @staticmethod
    def search_values(search: AuditOutputFilter) -> dict:
        values = search.form.cleaned_data if search.is_bound else {}
        until = values.get("received_until")
        return {
            "received_from": _day_start(values.get("received_from")),
            "received_until": _day_start(until + timedelta(days=1)) if until else None,
            "application": values.get("application") or "",
            "tier": values.get("tier") or "",
            "decision": values.get("decision") or "",
            "reviewer_id": int(values["reviewer"]) if values.get("reviewer") else None,
        }


class OutputSearchPage(_SearchMixin, AuditPage):
    """``/audit/``: outputs by period, application, tier, decision and reviewer, newest first."""

    audit_section = "outputs"
    template_name = "reviews/audit_outputs.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        search = self.search_filter()
        rows, older, newer, problems = [], "", "", False
        if search.is_bound and not search.form.is_valid():
            problems = True
        else:
            queryset = audit_output_search(tenant=self.tenant, **self.search_values(search))
            page = audit_output_page(
                queryset, after=self.request.GET.get("after", ""), before=self.request.GET.get("before", "")
            )
            rows, older, newer = page.rows, page.older, page.newer
        paging = ("after", "before")
        query = {key: value for key, value in self.request.GET.items() if key not in paging and value}
        here = {key: value for key, value in self.request.GET.items() if value}  # this page, its cursor too
        context.update(
            story_query=f"?{urlencode({'back': urlencode(here)})}" if here else "",  # "← Outputs" comes back here
            search=search,
            form=search.form,
            rows=rows,
            problems=problems,
            next_url=f"?{urlencode({**query, 'after': older})}" if older else "",
            previous_url=f"?{urlencode({**query, 'before': newer})}" if newer else "",
            first_url=f"?{urlencode(query)}" if any(key in self.request.GET for key in paging) else "",
            csv_url=f"{reverse('audit:outputs-csv')}?{urlencode(query)}",
            filtered=bool(query),
        )
        return context


class OutputSearchCsv(_SearchMixin, AuditPage):
    """``/audit/outputs.csv``: the current search as the compliance export's CSV (its columns, its
    streaming at constant memory, ``reviews.export``), oldest first."""

    def get(self, request):
        search = self.search_filter()
        if search.is_bound and not search.form.is_valid():
            raise Http404
        values = self.search_values(search)
        start = values["received_from"] or datetime(1970, 1, 1, tzinfo=UTC)
        end = values["received_until"] or timezone.now() + timedelta(days=1)
        # the username the export's records name reviewers by (a choice's label may say more)
        reviewer = None if values["reviewer_id"] is None else username_of(user_id=values["reviewer_id"])
        records = (
            record
            for record in export_records(tenant=self.tenant, start=start, end=end)
            if audit_record_matches(record, values, reviewer)
        )
        response = StreamingHttpResponse(csv_chunks(records), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="outputs-{self.tenant.slug}.csv"'
        return response


class OutputStoryPage(AuditPage):
    """``/audit/outputs/{id}/``: everything that happened to one output, in order."""

    audit_section = "outputs"
    template_name = "reviews/audit_story.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        try:
            story = audit_output_story(tenant=self.tenant, output_id=kwargs["output_id"])
        except NotFoundError:
            raise Http404 from None
        output = story["output"]
        redacted = output.redacted_at is not None
        trail = audit_output_trail(tenant=self.tenant, output=output, tasks=story["tasks"], reviews=story["reviews"])
        logged = timeline_audit_events(trail["rows"])
        # Each claim once: the audit events list every claim of a task; the task's row only its last.
        claims_logged = {
            str(event.data["event"].object_id) for event in logged if event.data["event"].kind == "task.claimed"
        }
        story["events"] = sorted(
            [
                event
                for event in story["events"]
                if not (event.kind == "claimed" and str(event.data["task"].pk) in claims_logged)
            ]
            + logged,
            key=lambda event: (event.at, event.order),
        )
        context.update(
            story,
            trail=trail,
            redacted=redacted,
            input=None if redacted else input_view(output.input),
            steps=[] if redacted else trace_steps(output.trace),
            back=self.request.GET.get("back", ""),
        )
        return context


GRANTS_PAGE_SIZE = 100


class ConfigHistoryPage(AuditPage):
    """``/audit/config/``: every change of one kind of configuration, who, when, why, with its diff."""

    audit_section = "config"
    template_name = "reviews/audit_config.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        kind = self.request.GET.get("kind", "policy")
        if kind not in CONFIG_KINDS and kind != "grants":
            raise Http404
        try:
            before = int(self.request.GET["before"]) if self.request.GET.get("before") else None
        except ValueError:
            raise Http404 from None
        rows, following, grants = [], None, []
        if kind == "grants":
            grants, following = page_and_next(
                audit_queue_access(tenant=self.tenant, limit=GRANTS_PAGE_SIZE + 1, before=before), GRANTS_PAGE_SIZE
            )
        else:
            rows, following = audit_config_history(tenant=self.tenant, kind=kind, before=before)
        context.update(
            kinds=[(key, config.label) for key, config in CONFIG_KINDS.items()] + [("grants", "Queue grants")],
            kind=kind,
            kind_label=CONFIG_KINDS[kind].label if kind in CONFIG_KINDS else "Queue grants",
            rows=rows,
            grants=grants,
            next_url=f"{reverse('audit:config')}?{urlencode({'kind': kind, 'before': following})}" if following else "",
            first_url=f"{reverse('audit:config')}?{urlencode({'kind': kind})}" if before is not None else "",
        )
        return context


class PolicyVersionPage(AuditPage):
    """``/audit/config/policy/{version}/``: one policy version as published, and its diff against the one before."""

    audit_section = "config"
    template_name = "reviews/audit_policy_version.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        try:
            version = audit_policy_version(tenant=self.tenant, version=kwargs["version"])
        except NotFoundError:
            raise Http404 from None
        context.update(version)
        return context


class ChainPage(AuditPage):
    """``/audit/chain/``: the head of the tenant's audit chain, its last signed checkpoint, the last
    verifications, and "Verify now"."""

    audit_section = "chain"
    template_name = "reviews/audit_chain.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        recent = audit_verifications_recent(tenant=self.tenant)
        context.update(
            status=audit_chain_status(tenant=self.tenant),
            verifications=recent,
            verification=recent[0] if recent else None,
        )
        return context


class VerifyAction(AuditPage):
    """``POST /audit/chain/verify``: run ``verify_audit``'s check in a background task; the page polls it."""

    http_method_names = ["post"]

    def post(self, request):
        verification = audit_verification_start(tenant=self.tenant, user=self.person)
        if request.headers.get("HX-Request"):
            verification.refresh_from_db()  # with tasks in-process it finished on commit
            response = render(request, "reviews/_verification.html", {"verification": verification, "poll": True})
            return _verified_trigger(response, verification)
        return redirect("audit:chain")


class VerificationPartial(AuditPage):
    """``/audit/chain/verifications/{id}``: one verification's state (htmx polls it while it runs)."""

    template_name = "reviews/_verification.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        verification = audit_verification_get(tenant=self.tenant, verification_id=kwargs["verification_id"])
        if verification is None:
            raise Http404
        context.update(verification=verification, poll=True)
        return context

    def render_to_response(self, context, **kwargs):
        return _verified_trigger(super().render_to_response(context, **kwargs), context["verification"])


def _verified_trigger(response, verification):
    """A finished verification tells the page (htmx event ``verified``) to reload its table."""
    if verification.finished_at is not None:
        response["HX-Trigger"] = "verified"
    return response


class ExportForm(forms.Form):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")  # as the search form's labels
        super().__init__(*args, **kwargs)

    received_from = forms.DateField(
        label="Received from",
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[LAST_DAY],
        help_text="UTC day, from its first instant.",
    )
    received_until = forms.DateField(
        label="to (inclusive)",
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[LAST_DAY],
        help_text="UTC day, included: the period ends at the next day's midnight.",
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("received_from"), cleaned.get("received_until")
        if start and end and end < start:
            self.add_error("received_until", "Must not be before the start of the period.")
        if start and start > timezone.now().astimezone(UTC).date():
            self.add_error("received_from", "The period starts in the future: nothing in it can be exported yet.")
        return cleaned


EXPORTS_PAGE_SIZE = 50


def _uuid_or_none(text: str):
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


class ExportsPage(AuditPage):
    """``/audit/exports/``: start a compliance export for a period, follow its progress, download its bundle.

    Building runs in ``reviews.bundle`` (Celery); starting one is the only write here, and it
    writes no governance state (an ``export.requested`` audit event records who asked)."""

    audit_section = "exports"
    template_name = "reviews/audit_exports.html"
    http_method_names = ["get", "post", "head", "options"]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        today = timezone.now().date()
        context.setdefault("form", ExportForm(initial={"received_from": today.replace(day=1), "received_until": today}))
        before = _uuid_or_none(self.request.GET.get("before", ""))
        exports, older = page_and_next(
            compliance_exports(tenant=self.tenant, limit=EXPORTS_PAGE_SIZE + 1, before=before), EXPORTS_PAGE_SIZE
        )
        context.update(
            exports=exports,
            poll=True,
            older_url=f"?{urlencode({'before': older})}" if older else "",
            newest_url=reverse("audit:exports") if before is not None else "",
        )
        return context

    def post(self, request):
        form = ExportForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        start = _day_start(form.cleaned_data["received_from"])
        end = _day_start(form.cleaned_data["received_until"] + timedelta(days=1))
        try:
            compliance_export_request(
                tenant=self.tenant, start=start, end=end, actor=Actor.of_person(self.person, self.membership.role)
            )
        except RuleViolationError as error:  # (the form checks the same rules first)
            form.add_error(None, error.message)
            return self.render_to_response(self.get_context_data(form=form), status=400)
        messages.success(request, "Export started: it appears below and updates by itself.")
        return redirect("audit:exports")


class ExportPartial(AuditPage):
    """``/audit/exports/{id}/row``: one export's row; htmx polls it while the bundle is built."""

    template_name = "reviews/_export_row.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        try:
            context.update(export=compliance_export_get(tenant=self.tenant, export_id=kwargs["export_id"]), poll=True)
        except NotFoundError:
            raise Http404 from None
        return context


class ExportDownload(AuditPage):
    """``/audit/exports/{id}/bundle.zip`` (the whole bundle) and ``/audit/exports/{id}/files/{name}`` (one file)."""

    def get(self, request, export_id, name=None):
        try:
            archive = compliance_export_archive(tenant=self.tenant, export_id=export_id)
        except NotFoundError:
            raise Http404 from None
        if name is None:
            name = f"compliance-{self.tenant.slug}-{export_id}.zip"  # as the API names it
            return FileResponse(archive.open("rb"), as_attachment=True, filename=name)
        bundle = zipfile.ZipFile(archive)
        if name not in bundle.namelist():
            bundle.close()
            raise Http404
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith(".jsonl"):
            kind = JSONL_CONTENT_TYPE
        if name.endswith(".html"):  # the summary, shown to be read and printed: its own style, nothing else inline
            page = bundle.read(name)
            bundle.close()
            response = HttpResponse(page, content_type="text/html; charset=utf-8")
            response["Content-Disposition"] = f'inline; filename="{name}"'
            response._csp_update = {"style-src": _style_hashes(page)}
            return response
        response = FileResponse(bundle.open(name), content_type=kind, as_attachment=True)
        # named after its export, so that files of two exports saved side by side do not collide
        response["Content-Disposition"] = f'attachment; filename="compliance-{self.tenant.slug}-{export_id}-{name}"'
        return response


class VerifierDownload(AuditPage):
    """``/audit/verifier/auditchain.py``: the offline verifier of this version, for a regulator who has
    no access to our source (one file: the Python standard library and ``cryptography``)."""

    def get(self, request):
        script = Path(auditchain.__file__).read_bytes()  # (a small file: read whole)
        response = HttpResponse(script, content_type="text/x-python; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="auditchain.py"'
        return response


def _style_hashes(page: bytes) -> list[str]:
    """The CSP hash source of the summary's own style sheet (``reviews.bundle``'s), when the page
    holds it: that style applies under the site's policy, and no other inline style (whatever a
    stored page holds) nor any script."""
    own = SUMMARY_STYLE.encode()
    if not any(style == own for style in re.findall(rb"<style>(.*?)</style>", page, flags=re.S)):
        return []
    return ["'sha256-" + base64.b64encode(hashlib.sha256(own).digest()).decode() + "'"]
