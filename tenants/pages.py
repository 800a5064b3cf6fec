"""The one choke point every page for people goes through, and the pages of a person's own.

:class:`TenantPage` is to pages what ``hitl.api.TenantApi`` is to the API: it resolves
the signed-in person, the current tenant (chosen in the header, remembered in the
session) and their role there, refuses a role the page does not serve, and hands
``self.tenant``, ``self.membership`` and ``self.person`` to the page. Pages call the
same services and selectors as the API.
"""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from hitl.errors import ApplicationError
from hitl.tenancy import tenant_scope
from tenants.models import ApiKey, Membership, Role
from tenants.selectors import api_keys_of, memberships_of
from tenants.services import KEY_ROLES_BY_MEMBERSHIP_ROLE, api_key_create, api_key_revoke

SESSION_TENANT = "hitl_tenant_id"

# Where each role starts its day.
HOME_BY_ROLE = {
    Role.REVIEWER: "review:workbench",
    Role.ADMIN: "console:home",
    Role.AUDITOR: "audit:outputs",
    Role.VIEWER: "tenants:me",
    Role.QUALITY_LEAD: "quality:metrics",
}


def current_membership(request) -> Membership | None:
    """The membership of the tenant chosen in this session, else the person's first."""
    memberships = getattr(request, "_hitl_memberships", None)
    if memberships is None:
        memberships = request._hitl_memberships = memberships_of(user=request.user)
    chosen = request.session.get(SESSION_TENANT)
    for membership in memberships:
        if membership.tenant_id == chosen:
            return membership
    return memberships[0] if memberships else None


def forbidden(request, exception=None):
    """The 403 page (``handler403``) with the header every page has: the person's links for their
    role in the current tenant and the tenant switcher, so that a refused page leads on."""
    context = {"exception": str(exception) if exception else ""}
    if request.user.is_authenticated:
        context.update(membership=current_membership(request), memberships=getattr(request, "_hitl_memberships", []))
    return render(request, "403.html", context, status=403)


class TenantPage(LoginRequiredMixin, TemplateView):
    """Base of every page that acts inside one tenant.

    Subclasses set ``roles`` (membership roles allowed) and use ``self.tenant``,
    ``self.membership`` and ``self.person``. Another tenant's object is a 404 because
    every read goes through selectors that take ``self.tenant``.
    """

    roles: frozenset[str] = frozenset(Role.values)

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        membership = current_membership(request)
        if membership is None:
            return render(request, "tenants/no_tenant.html", status=403)
        if membership.role not in self.roles:
            role = membership.get_role_display().lower()
            raise PermissionDenied(f"{'An' if role[0] in 'aeiou' else 'A'} {role} does not use this page.")
        self.membership, self.tenant, self.person = membership, membership.tenant, request.user
        request.audit_role = membership.role  # the role audit events name this person in
        with tenant_scope(self.tenant):  # the database shows this tenant's rows only (hitl/tenancy.py)
            response = super().dispatch(request, *args, **kwargs)
            if hasattr(response, "render") and not response.is_rendered:
                response.render()  # templates read rows too: inside the scope
            return response

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            tenant=self.tenant,
            membership=self.membership,
            memberships=memberships_of(user=self.person),
        )
        return context


class ConsolePage(TenantPage):
    """Base of the tenant admin's console (``/console/``): admins only, each page one ``section``.

    The console's sections live in the apps that own their data (members here, the
    policy in ``policies``, queues and webhooks in ``reviews``) and share this base,
    so that the role check and the tenant come from one place.
    """

    roles = frozenset({Role.ADMIN})
    section = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("section", self.section)
        return context


class ConsoleForm(forms.Form):
    """A form of the console: labels without a trailing colon (the layout sets them apart).

    ``wide_fields`` take a whole row (text areas always do).
    """

    wide_fields: frozenset[str] = frozenset()

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


def form_errors_from(form: forms.Form, error: ApplicationError, fields: dict[str, str] | None = None) -> None:
    """Show a service's error beside the fields it names (``fields`` maps a path's first part to a
    form field where the names differ); what names no field of the form goes above it."""
    for path, problems in (error.fields or {"": [error.message]}).items():
        head, _, rest = path.partition(".")
        field = (fields or {}).get(head, head)
        if field not in form.fields:
            field, rest = None, path
        for problem in problems:
            form.add_error(field, f"{rest}: {problem}" if rest and not problem.startswith(rest) else problem)


def home_url(membership: Membership | None) -> str:
    if membership is None:
        return reverse("tenants:me")
    return reverse(HOME_BY_ROLE.get(membership.role, "tenants:me"))


class LoginPage(auth_views.LoginView):
    """Sign-in for every member (not only staff); each role then lands on its own home."""

    template_name = "tenants/login.html"
    redirect_authenticated_user = True

    def get_success_url(self):
        wanted = self.get_redirect_url()
        if wanted:
            return wanted
        return home_url(current_membership(self.request))


class HomeRedirect(LoginRequiredMixin, View):
    def get(self, request):
        return redirect(home_url(current_membership(request)))


class TenantSwitch(LoginRequiredMixin, View):
    """``POST /tenant/`` picks the current tenant among the person's own, then opens the home of
    their role there (the page they were on shows the other tenant's objects)."""

    def post(self, request):
        try:
            tenant_id = int(request.POST.get("tenant", ""))
        except ValueError:
            raise Http404 from None
        membership = next((m for m in memberships_of(user=request.user) if m.tenant_id == tenant_id), None)
        if membership is None:
            raise Http404  # not theirs: as missing as a tenant that does not exist
        request.session[SESSION_TENANT] = tenant_id
        messages.info(request, f"Now working in {membership.tenant.name}.")
        return redirect(home_url(membership))


class MePage(TenantPage):
    """A person's own settings: their memberships and the API keys that act for them."""

    template_name = "tenants/me.html"

    def key_roles(self) -> list[str]:
        return sorted(role for role in KEY_ROLES_BY_MEMBERSHIP_ROLE[self.membership.role] if role != "service")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(keys=api_keys_of(tenant=self.tenant, user=self.person), key_roles=self.key_roles())
        return context

    def post(self, request):
        action = request.POST.get("action")
        if action == "create":
            role = request.POST.get("role", "")
            if role not in self.key_roles():
                messages.error(request, "role: not a key role you may hold here.")
                return redirect("tenants:me")
            try:
                _, raw = api_key_create(
                    tenant=self.tenant,
                    role=role,
                    name=request.POST.get("name", "").strip(),
                    user=self.person,
                    actor=self.person,  # a key that acts for a person is created by that person
                )
            except ApplicationError as error:
                messages.error(request, error.message)
                return redirect("tenants:me")
            return self.render_to_response(self.get_context_data(new_key=raw))
        if action == "revoke":
            key = ApiKey.objects.for_tenant(self.tenant).filter(pk=request.POST.get("key"), user=self.person).first()
            if key is None:
                raise Http404
            api_key_revoke(api_key=key)
            messages.info(request, f"Key {key.name} revoked.")
            return redirect("tenants:me")
        raise Http404


def password_reset_urls():
    """Django's password reset flow with our templates; mail goes to ``EMAIL_BACKEND``."""
    return [
        (
            "password-reset/",
            auth_views.PasswordResetView.as_view(
                template_name="tenants/password_reset.html",
                email_template_name="tenants/password_reset_email.txt",
                subject_template_name="tenants/password_reset_subject.txt",
                success_url="/password-reset/sent/",
                from_email=settings.DEFAULT_FROM_EMAIL,
            ),
            "password_reset",
        ),
        (
            "password-reset/sent/",
            auth_views.PasswordResetDoneView.as_view(template_name="tenants/password_reset_sent.html"),
            "password_reset_done",
        ),
        (
            "password-reset/<uidb64>/<token>/",
            auth_views.PasswordResetConfirmView.as_view(
                template_name="tenants/password_reset_confirm.html", success_url="/password-reset/done/"
            ),
            "password_reset_confirm",
        ),
        (
            "password-reset/done/",
            auth_views.PasswordResetCompleteView.as_view(template_name="tenants/password_reset_done.html"),
            "password_reset_complete",
        ),
    ]
