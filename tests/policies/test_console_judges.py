"""Judges in the console: agreement with people, a new judge, a new version with a reason, the
write-only key of an LLM judge."""

import json

import pytest

from policies.models import Judge
from policies.services import judge_create
from tests.pages import field_errors, form_data, member, signed_in
from tests.reviews.test_judge_agreement import seed

LLM = {
    "name": "llm-quality",
    "kind": "llm",
    "params": {"base_url": "https://llm.example.com/v1", "model": "judge-1", "prompt_template": "Judge: {{output}}"},
    "api_key": "sk-very-secret-key",
}


@pytest.fixture
def admin(tenant):
    return member(tenant, "admin", "ada")


@pytest.fixture
def pii(tenant):
    return judge_create(tenant=tenant, data={"name": "pii", "kind": "pii", "on_fail": "record"})


def test_the_list_shows_each_judges_agreement_with_people(tenant, admin, pii):
    # 20 both pass, 5 judge pass / people fail, 10 judge fail / people pass, 15 both fail: 70 %, kappa 0.4
    seed(
        tenant,
        pii,
        {("pass", "approved"): 20, ("pass", "rejected"): 5, ("fail", "approved"): 10, ("fail", "rejected"): 15},
    )

    page = signed_in(admin).get("/console/judges/").content.decode()

    assert "70 % agreed over 50 outputs, κ 0.40" in page
    detail = signed_in(admin).get(f"/console/judges/{pii.pk}/").content.decode()
    assert "judge failed what people passed 10" in detail


def test_a_change_is_a_new_version_with_who_and_why(tenant, admin, pii):
    client = signed_in(admin)
    data = form_data(client.get(f"/console/judges/{pii.pk}/").content.decode())
    data.pop("is_active")  # switch it off
    data.update(params=json.dumps({"detect": ["email"]}), reason="only emails matter", on_fail="force_review")

    response = client.post(f"/console/judges/{pii.pk}/", data)

    assert response.status_code == 302
    judge = Judge.objects.for_tenant(tenant).get()
    assert (judge.version, judge.is_active, judge.params["detect"], judge.on_fail) == (
        2,
        False,
        ["email"],
        "force_review",
    )
    record = judge.history.order_by("-history_date").first()
    assert (record.history_user, record.history_change_reason) == (admin, "only emails matter")
    assert "only emails matter" in client.get(f"/console/judges/{pii.pk}/").content.decode()


def test_the_api_key_is_never_shown_kept_when_left_empty_replaced_or_cleared(tenant, admin):
    judge = judge_create(tenant=tenant, data=LLM)
    client = signed_in(admin)
    url = f"/console/judges/{judge.pk}/"
    page = client.get(url).content.decode()
    assert "sk-very-secret-key" not in page and "A key is stored" in page
    data = {**form_data(page), "reason": "keep the key"}
    assert data["api_key"] == ""

    client.post(url, data)
    assert Judge.objects.for_tenant(tenant).get().api_key == "sk-very-secret-key"
    client.post(url, {**data, "api_key": "sk-new", "reason": "rotated"})
    assert Judge.objects.for_tenant(tenant).get().api_key == "sk-new"
    client.post(url, {**data, "clear_api_key": "on", "reason": "no key"})
    judge = Judge.objects.for_tenant(tenant).get()
    assert judge.api_key == "" and judge.version == 4
    assert "sk-new" not in client.get(url).content.decode()


def test_a_new_judge_is_created_and_a_taken_name_is_refused(tenant, admin, pii):
    client = signed_in(admin)
    data = form_data(client.get("/console/judges/new/").content.decode())
    body = {**data, "name": "length", "kind": "length", "params": '{"max_chars": 2000}', "reason": "long answers"}

    response = client.post("/console/judges/new/", body)

    judge = Judge.objects.for_tenant(tenant).get(name="length")
    assert response.status_code == 302 and response["Location"] == f"/console/judges/{judge.pk}/"
    assert judge.params["max_chars"] == 2000 and judge.history.get().history_change_reason == "long answers"
    taken = client.post("/console/judges/new/", {**body, "name": "pii"})
    assert taken.status_code == 400
    assert "a judge named 'pii' exists" in field_errors(taken.content.decode(), "id_name")


def test_bad_params_are_named_and_nothing_is_written(tenant, admin, pii):
    client = signed_in(admin)
    data = {**form_data(client.get(f"/console/judges/{pii.pk}/").content.decode()), "reason": "try"}

    not_json = client.post(f"/console/judges/{pii.pk}/", {**data, "params": "{detect"})
    assert not_json.status_code == 400 and "Not JSON" in field_errors(not_json.content.decode(), "id_params")
    unknown = client.post(f"/console/judges/{pii.pk}/", {**data, "params": '{"detect": ["dna"]}'})
    assert unknown.status_code == 400 and "detect" in field_errors(unknown.content.decode(), "id_params")
    band = client.post(f"/console/judges/{pii.pk}/", {**data, "unsure_low": "0.9", "unsure_high": "0.1"})
    assert band.status_code == 400 and "unsure_low must not exceed unsure_high" in band.content.decode()
    assert Judge.objects.for_tenant(tenant).get().version == 1


def test_another_tenants_judge_is_not_found_and_other_roles_are_refused(tenant, other_tenant, pii):
    outsider = signed_in(member(other_tenant, "admin"))
    assert outsider.get(f"/console/judges/{pii.pk}/").status_code == 404
    assert outsider.post(f"/console/judges/{pii.pk}/", {"name": "mine", "reason": "x"}).status_code == 404
    for role in ("reviewer", "auditor"):
        client = signed_in(member(tenant, role))
        assert client.get("/console/judges/").status_code == 403
        assert client.post("/console/judges/new/", {"name": "x", "kind": "pii", "reason": "x"}).status_code == 403
    assert Judge.unscoped.count() == 1 and Judge.unscoped.get().version == 1
