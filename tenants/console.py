"""``/console/members/``: who belongs to the tenant, with which role, reviewer level and skills.

Invitations, changes and removals go through the membership services (``member_invite``,
``membership_update``, ``membership_delete``), so that a change made here is in the same
history as one made through the admin; the person who made it is recorded with it.
"""

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect

from hitl.errors import ApplicationError, NotFoundError
from tenants.models import Membership, Role
from tenants.pages import ConsoleForm, ConsolePage, form_errors_from, home_url
from tenants.selectors import admins_count, members_of, membership_get_for_tenant
from tenants.services import member_invite, membership_delete, membership_update

LEVELS = [(1, "1: entry level"), (2, "2: experienced"), (3, "3: specialist")]
LAST_ADMIN = "The tenant needs at least one admin: make someone else admin first."


def skills_parse(text: str) -> list[str]:
    """'legal, medical' as ['legal', 'medical'] (each once, in the order given)."""
    skills: list[str] = []
    for part in text.split(","):
        skill = part.strip().lower()
        if skill and skill not in skills:
            skills.append(skill)
    return skills


class MemberForm(ConsoleForm):
    role = forms.ChoiceField(choices=Role.choices, initial=Role.REVIEWER)
    reviewer_level = forms.TypedChoiceField(
        label="Reviewer level", choices=LEVELS, coerce=int, initial=1, help_text="Reviewers and admins who review."
    )
    skills = forms.CharField(
        required=False, max_length=1000, help_text="Separated by commas, e.g. legal, medical; queues may require them."
    )

    def clean_skills(self) -> list[str]:
        skills = skills_parse(self.cleaned_data["skills"])
        if any(len(skill) > 50 for skill in skills):
            raise forms.ValidationError("A skill has at most 50 characters.")
        return skills


class InviteForm(MemberForm):
    email = forms.EmailField(max_length=150, help_text="They get a link to choose a password.")
    field_order = ["email", "role", "reviewer_level", "skills"]


class MembersPage(ConsolePage):
    """The members, and an invitation by email."""

    section = "members"
    template_name = "tenants/console_members.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", InviteForm())
        context.update(members=members_of(tenant=self.tenant))
        return context

    def post(self, request):
        form = InviteForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                membership = member_invite(
                    tenant=self.tenant,
                    email=data["email"],
                    role=data["role"],
                    reviewer_level=data["reviewer_level"],
                    skills=data["skills"],
                    domain=request.get_host(),
                    use_https=request.is_secure(),
                )
            except ApplicationError as error:
                form_errors_from(form, error, fields={"user": "email"})
            else:
                messages.success(
                    request,
                    f"{membership.user.email} was added as {membership.get_role_display().lower()}; "
                    "an email with a link to choose a password is on its way.",
                )
                return redirect("console:members")
        return self.render_to_response(self.get_context_data(form=form), status=400)


class MemberPage(ConsolePage):
    """``/console/members/<id>/``: change a member's role, level and skills, or remove them."""

    section = "members"
    template_name = "tenants/console_member.html"

    def _member(self, membership_id) -> Membership:
        try:
            return membership_get_for_tenant(tenant=self.tenant, membership_id=membership_id)
        except NotFoundError:
            raise Http404 from None

    def _last_admin(self, member: Membership) -> bool:
        return member.role == Role.ADMIN and admins_count(tenant=self.tenant) <= 1

    def _render(self, member, form, status=200):
        history = member.history.select_related("history_user").order_by("-history_date")[:20]
        context = self.get_context_data(member=member, form=form, history=history, last_admin=self._last_admin(member))
        return self.render_to_response(context, status=status)

    def get(self, request, membership_id):
        member = self._member(membership_id)
        initial = {"role": member.role, "reviewer_level": member.reviewer_level, "skills": ", ".join(member.skills)}
        return self._render(member, MemberForm(initial=initial))

    def post(self, request, membership_id):
        member = self._member(membership_id)
        if request.POST.get("action") == "remove":
            return self._remove(request, member)
        form = MemberForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            if data["role"] != Role.ADMIN and self._last_admin(member):
                form.add_error("role", LAST_ADMIN)
            else:
                try:
                    membership_update(
                        membership=member,
                        role=data["role"],
                        reviewer_level=data["reviewer_level"],
                        skills=data["skills"],
                        actor=self.person,
                    )
                except ApplicationError as error:
                    form_errors_from(form, error)
                else:
                    messages.success(request, f"{member.user.get_username()} updated.")
                    if member.user_id == self.person.pk and data["role"] != Role.ADMIN:
                        return redirect(home_url(member))  # no longer an admin here
                    return redirect("console:member", membership_id=member.pk)
        return self._render(member, form, status=400)

    def _remove(self, request, member):
        if self._last_admin(member):
            messages.error(request, LAST_ADMIN)
            return redirect("console:member", membership_id=member.pk)
        name = member.user.get_username()
        leaving = member.user_id == self.person.pk
        membership_delete(membership=member, actor=self.person)
        messages.success(request, f"{name} was removed from {self.tenant.name}; their keys here are revoked.")
        return redirect("tenants:home" if leaving else "console:members")
