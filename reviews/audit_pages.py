"""The auditor's pages under ``/audit/``: the output search, an output's full story, the
history of every configuration with diffs.

Read-only: auditors and admins of the current tenant read what the selectors of
``reviews.audit_selectors`` return; nothing here changes governance state. Every time is
shown in UTC, named as such; every identifier can be copied (``reviews/copy.js``).
"""

from datetime import UTC, datetime, time, timedelta

from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from hitl.errors import NotFoundError
from policies.selectors import compiled_policy
from reviews.audit_selectors import (
    CONFIG_KINDS,
    DECISION_FILTERS,
    audit_config_history,
    audit_output_page,
    audit_output_search,
    audit_output_story,
    audit_output_trail,
    audit_policy_version,
    audit_queue_access,
    timeline_audit_events,
)
from reviews.filters import AuditOutputFilter
from reviews.models import Output
from reviews.selectors import applications_seen
from reviews.trace import input_view, trace_steps
from tenants.models import Role
from tenants.pages import TenantPage
from tenants.selectors import members_of
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


class OutputSearchPage(AuditPage):
    """``/audit/``: outputs by period, application, tier, decision and reviewer, newest first."""

    audit_section = "outputs"
    template_name = "reviews/audit_outputs.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.tenant
        members = members_of(tenant=tenant)
        search = AuditOutputFilter(
            self.request.GET or None,
            queryset=Output.objects.none(),
            applications=applications_seen(tenant=tenant),
            tiers=sorted(compiled_policy(tenant=tenant).tiers),
            decisions=[(key, label) for key, (label, _) in DECISION_FILTERS.items()],
            reviewers=[(m.user_id, m.user.get_username()) for m in members if m.role in (Role.REVIEWER, Role.ADMIN)],
        )
        search.form.label_suffix = ""
        rows, following, problems = [], "", False
        if search.is_bound and not search.form.is_valid():
            problems = True
        else:
            values = search.form.cleaned_data if search.is_bound else {}
            until = values.get("received_until")
            queryset = audit_output_search(
                tenant=tenant,
                received_from=_day_start(values.get("received_from")),
                received_until=_day_start(until + timedelta(days=1)) if until else None,
                application=values.get("application") or "",
                tier=values.get("tier") or "",
                decision=values.get("decision") or "",
                reviewer_id=int(values["reviewer"]) if values.get("reviewer") else None,
            )
            rows, following = audit_output_page(queryset, cursor=self.request.GET.get("after", ""))
        query = {key: value for key, value in self.request.GET.items() if key != "after" and value}
        context.update(
            search=search,
            form=search.form,
            rows=rows,
            problems=problems,
            next_url=f"?{urlencode({**query, 'after': following})}" if following else "",
            first_url=f"?{urlencode(query)}" if "after" in self.request.GET else "",
            filtered=bool(query),
        )
        return context


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
        story["events"] = sorted(
            story["events"] + timeline_audit_events(trail["rows"]), key=lambda event: (event.at, event.order)
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
        rows, following = (
            ([], None) if kind == "grants" else audit_config_history(tenant=self.tenant, kind=kind, before=before)
        )
        context.update(
            kinds=[(key, config.label) for key, config in CONFIG_KINDS.items()] + [("grants", "Queue grants")],
            kind=kind,
            kind_label=CONFIG_KINDS[kind].label if kind in CONFIG_KINDS else "Queue grants",
            rows=rows,
            grants=audit_queue_access(tenant=self.tenant) if kind == "grants" else [],
            next_url=f"{reverse('audit:config')}?{urlencode({'kind': kind, 'before': following})}" if following else "",
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
