"""Members in the console: invitations by email (a link to choose a password), role, level and
skills through the membership services, removal; the last admin stays."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from tenants.models import ApiKey, Membership
from tenants.services import api_key_create
from tests.pages import field_errors, member, signed_in


@pytest.fixture
def admin(tenant):
    return member(tenant, "admin", "ada")


def invite(client, email, role="reviewer", level="2", skills="Legal, medical, legal"):
    return client.post("/console/members/", {"email": email, "role": role, "reviewer_level": level, "skills": skills})


def test_members_are_listed_with_role_level_and_skills(tenant, admin, other_tenant):
    member(tenant, "reviewer", "rita", reviewer_level=2, skills=["legal"])
    member(other_tenant, "reviewer", "olga")

    page = signed_in(admin).get("/console/members/").content.decode()

    assert "rita" in page and "legal" in page and "olga" not in page


def test_an_invited_person_gets_an_account_without_a_password_and_a_link_to_choose_one(
    tenant, admin, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = invite(signed_in(admin), "New.Person@Example.com")

    assert response.status_code == 302 and response["Location"] == "/console/members/"
    user = get_user_model().objects.get(email="New.Person@Example.com")
    assert user.username == "new.person@example.com" and not user.has_usable_password()
    membership = Membership.objects.for_tenant(tenant).get(user=user)
    assert (membership.role, membership.reviewer_level, membership.skills) == ("reviewer", 2, ["legal", "medical"])
    assert membership.history.get().history_user == admin  # who added them

    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["New.Person@Example.com"]
    assert tenant.name in mail.outbox[0].subject and "new.person@example.com" in mail.outbox[0].body
    link = re.search(r"http://testserver(/password-reset/\S+/)", mail.outbox[0].body).group(1)
    browser = Client()
    chosen = browser.get(link, follow=True)
    assert chosen.status_code == 200 and b"new_password1" in chosen.content
    browser.post(
        chosen.redirect_chain[-1][0], {"new_password1": "a-long-password-9", "new_password2": "a-long-password-9"}
    )
    user.refresh_from_db()
    assert user.check_password("a-long-password-9")


def test_inviting_someone_with_an_account_adds_that_account_and_says_the_same(
    tenant, other_tenant, admin, django_capture_on_commit_callbacks
):
    elsewhere = member(other_tenant, "reviewer", "olga")
    users = get_user_model().objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        response = invite(signed_in(admin), elsewhere.email.upper(), role="auditor", skills="")

    assert response.status_code == 302 and get_user_model().objects.count() == users
    assert Membership.objects.for_tenant(tenant).get(user=elsewhere).role == "auditor"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [elsewhere.email]


def test_bad_invitations_name_the_field_and_write_nothing(tenant, admin, django_capture_on_commit_callbacks):
    client = signed_in(admin)
    member(tenant, "reviewer", "rita")
    count = Membership.objects.for_tenant(tenant).count()
    with django_capture_on_commit_callbacks(execute=True):
        not_email = invite(client, "not an email")
        again = invite(client, "rita@example.com")
        bad_role = invite(client, "x@example.com", role="owner")
    assert not_email.status_code == again.status_code == bad_role.status_code == 400
    assert "valid email" in field_errors(not_email.content.decode(), "id_email")
    assert "Already a member" in field_errors(again.content.decode(), "id_email")
    assert "Select a valid choice" in field_errors(bad_role.content.decode(), "id_role")
    assert Membership.objects.for_tenant(tenant).count() == count and not mail.outbox


def test_role_level_and_skills_are_changed_in_the_history_and_keys_follow_the_role(tenant, admin):
    rita = member(tenant, "admin", "rita")
    api_key_create(tenant=tenant, role="admin", name="rita's admin key", user=rita, actor=rita)
    membership = Membership.objects.for_tenant(tenant).get(user=rita)

    response = signed_in(admin).post(
        f"/console/members/{membership.pk}/", {"role": "reviewer", "reviewer_level": "3", "skills": "medical"}
    )

    assert response.status_code == 302
    membership.refresh_from_db()
    assert (membership.role, membership.reviewer_level, membership.skills) == ("reviewer", 3, ["medical"])
    assert membership.history.order_by("-history_date").first().history_user == admin
    assert ApiKey.objects.for_tenant(tenant).get(user=rita).revoked_at is not None  # no admin key for a reviewer
    assert "reviewer" in signed_in(admin).get(f"/console/members/{membership.pk}/").content.decode()


def test_the_last_admin_can_be_neither_demoted_nor_removed(tenant, admin):
    mine = Membership.objects.for_tenant(tenant).get(user=admin)
    client = signed_in(admin)

    demoted = client.post(f"/console/members/{mine.pk}/", {"role": "reviewer", "reviewer_level": "1", "skills": ""})
    assert demoted.status_code == 400 and "at least one admin" in field_errors(demoted.content.decode(), "id_role")
    client.post(f"/console/members/{mine.pk}/", {"action": "remove"})
    assert Membership.objects.for_tenant(tenant).get(pk=mine.pk).role == "admin"


def test_a_member_is_removed(tenant, admin):
    rita = member(tenant, "reviewer", "rita")
    membership = Membership.objects.for_tenant(tenant).get(user=rita)

    response = signed_in(admin).post(f"/console/members/{membership.pk}/", {"action": "remove"})

    assert response.status_code == 302 and not Membership.objects.for_tenant(tenant).filter(user=rita).exists()
    assert signed_in(rita).get("/review/").status_code == 403  # no tenant left: refused


def test_another_tenants_member_is_not_found_and_other_roles_are_refused(tenant, other_tenant, admin):
    olga = member(other_tenant, "reviewer", "olga")
    theirs = Membership.objects.for_tenant(other_tenant).get(user=olga)
    client = signed_in(admin)
    assert client.get(f"/console/members/{theirs.pk}/").status_code == 404
    assert client.post(f"/console/members/{theirs.pk}/", {"action": "remove"}).status_code == 404
    body = {"role": "admin", "reviewer_level": "3", "skills": ""}
    assert client.post(f"/console/members/{theirs.pk}/", body).status_code == 404
    for role in ("reviewer", "auditor"):
        someone = signed_in(member(tenant, role))
        assert someone.get("/console/members/").status_code == 403
        assert someone.post("/console/members/", {"email": "x@example.com", "role": "admin"}).status_code == 403
    theirs.refresh_from_db()
    assert theirs.role == "reviewer" and not get_user_model().objects.filter(email="x@example.com").exists()
