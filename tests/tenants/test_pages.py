"""People's pages of the tenants app: sign-in, each role's home, the tenant switcher, own keys."""

import pytest
from django.test import Client

from tenants.models import ApiKey
from tenants.services import api_key_create, api_key_hash, membership_create
from tests.factories import TenantFactory, UserFactory


def person(tenant, role="reviewer", username=None, **extra):
    user = UserFactory(username=username) if username else UserFactory()
    membership_create(tenant=tenant, user=user, role=role, **extra)
    return user


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_any_member_signs_in_and_lands_on_the_home_of_their_role(tenant):
    rita = person(tenant, "reviewer", "rita")
    rita.set_password("a-long-password-1")
    rita.save()
    assert not rita.is_staff  # not staff: the admin would refuse her

    response = Client().post("/login/", {"username": "rita", "password": "a-long-password-1"})

    assert response.status_code == 302 and response["Location"] == "/review/"


@pytest.mark.parametrize(("role", "home"), [("reviewer", "/review/"), ("admin", "/console/"), ("auditor", "/audit/")])
def test_each_role_has_its_home(tenant, role, home):
    response = signed_in(person(tenant, role)).get("/home/")
    assert response.status_code == 302 and response["Location"] == home


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(tenant):
    person(tenant, "reviewer", "rita")
    response = Client().post("/login/", {"username": "rita", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_anonymous_people_are_sent_to_sign_in(db):
    for path in ("/review/", "/me/", "/review/mine/", "/audit/"):
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path


def test_an_auditor_cannot_reach_the_workbench(tenant):
    client = signed_in(person(tenant, "auditor"))
    assert client.get("/review/").status_code == 403
    assert client.post("/review/claim").status_code == 403
    assert client.get("/audit/").status_code == 200


def test_the_switcher_offers_only_the_persons_own_tenants_and_remembers_the_choice(tenant, other_tenant):
    third = TenantFactory(slug="third")
    both = person(tenant, "reviewer")
    membership_create(tenant=other_tenant, user=both, role="auditor")
    client = signed_in(both)

    page = client.get("/me/").content.decode()
    assert tenant.name in page and other_tenant.name in page and third.name not in page

    assert client.post("/tenant/", {"tenant": third.pk}).status_code == 404  # not hers: as if missing
    assert client.post("/tenant/", {"tenant": "x"}).status_code == 404
    response = client.post("/tenant/", {"tenant": other_tenant.pk})
    assert response.status_code == 302 and response["Location"] == "/audit/"  # her role there
    assert client.get("/review/").status_code == 403  # an auditor in the current tenant
    assert other_tenant.name in client.get("/me/").content.decode().split("My API keys in ")[1][:80]


def test_a_person_creates_a_key_that_acts_for_them_and_sees_it_once(tenant):
    rita = person(tenant, "reviewer")
    client = signed_in(rita)

    response = client.post("/me/", {"action": "create", "name": "laptop", "role": "reviewer"})

    assert response.status_code == 200
    raw = response.content.decode().split('id="new-key">')[1].split("<")[0]
    key = ApiKey.objects.for_tenant(tenant).get(name="laptop")
    assert key.user == rita and key.role == "reviewer" and key.key_hash == api_key_hash(raw)
    assert raw not in client.get("/me/").content.decode()  # shown once
    # The new key works against the API as her.
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.post("/api/v1/tasks/claim", content_type="application/json").status_code == 204


def test_a_person_may_not_mint_a_key_above_their_role(tenant):
    client = signed_in(person(tenant, "reviewer"))
    client.post("/me/", {"action": "create", "name": "sneaky", "role": "admin"})
    assert not ApiKey.objects.for_tenant(tenant).filter(name="sneaky").exists()


def test_a_person_revokes_their_own_key_and_no_one_elses(tenant, other_tenant):
    rita, sam = person(tenant, "reviewer"), person(tenant, "reviewer")
    mine, _ = api_key_create(tenant=tenant, role="reviewer", name="mine", user=rita, actor=rita)
    his, _ = api_key_create(tenant=tenant, role="reviewer", name="his", user=sam, actor=sam)
    client = signed_in(rita)

    assert client.post("/me/", {"action": "revoke", "key": his.pk}).status_code == 404
    assert client.post("/me/", {"action": "revoke", "key": mine.pk}).status_code == 302

    his.refresh_from_db(), mine.refresh_from_db()
    assert his.revoked_at is None and mine.revoked_at is not None


def test_someone_in_no_tenant_is_told_so(db):
    client = signed_in(UserFactory())
    response = client.get("/review/")
    assert response.status_code == 403 and b"not a member of any tenant" in response.content


def test_password_reset_sends_a_link_by_email(tenant, mailoutbox):
    person(tenant, "reviewer", "rita")
    response = Client().post("/password-reset/", {"email": "rita@example.com"})
    assert response.status_code == 302
    assert len(mailoutbox) == 1 and "/password-reset/" in mailoutbox[0].body


def test_every_page_carries_a_strict_content_security_policy(tenant):
    response = signed_in(person(tenant, "reviewer")).get("/review/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "<script>" not in response.content.decode()  # no inline script


def test_a_refused_page_keeps_the_header_of_the_persons_role(tenant):
    client = signed_in(person(tenant, "auditor"))
    response = client.get("/review/")

    assert response.status_code == 403
    page = response.content.decode()
    assert "An auditor does not use this page." in page
    assert 'href="/audit/' in page  # the auditor's own section, from the refused page
    assert 'href="/review/"' not in page  # (not the workbench it was refused)
