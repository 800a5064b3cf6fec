"""The policy in the console: one form per tier, the ordered rules, a preview over the latest
outputs, then publishing with a reason through ``policy_publish`` (the API's history)."""

import copy
import re

import pytest

from policies.defaults import DEFAULT_POLICY
from policies.engine import sampling_draw
from policies.models import Policy
from policies.services import policy_publish
from tests.conftest import make_client
from tests.factories import output_payload
from tests.pages import field_errors, form_data, member, signed_in

URL = "/console/policy/"


@pytest.fixture
def admin(tenant):
    return member(tenant, "admin", "ada")


@pytest.fixture
def outputs(tenant):
    """120 outputs of support-bot: every fifth with a low confidence (the default rule sends those to high)."""
    service = make_client(tenant, "service")
    for number in range(120):
        body = output_payload(number, confidence=0.3 if number % 5 == 0 else 0.9)
        assert service.post("/api/v1/outputs", body, format="json").status_code == 201
    return [f"ext-{number}" for number in range(120)]


def current(tenant) -> Policy:
    return Policy.objects.for_tenant(tenant).get()


def opened(client) -> dict:
    response = client.get(URL)
    assert response.status_code == 200
    return form_data(response.content.decode(), "policy-form")


def post(client, data: dict, action: str):
    return client.post(URL, {**data, "action": action})


def preview_cells(page: str, tier: str) -> list[str]:
    row = re.search(rf'<tr class="[^"]*" data-tier="{tier}">(.*?)</tr>', page, re.S)
    assert row, f"no preview row for {tier}"
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def test_the_policy_is_one_form_per_tier_with_rates_in_per_cent(tenant, admin):
    data = opened(signed_in(admin))

    assert data["tier-TOTAL_FORMS"] == "4" and data["rule-TOTAL_FORMS"] == "1"
    assert [data[f"tier-{index}-name"] for index in range(4)] == ["low", "medium", "high", "critical"]
    assert (data["tier-0-review_rate"], data["tier-0-overlap_rate"], data["tier-3-required_approvals"]) == (
        "5",
        "10",
        "2",
    )
    assert data["tier-1-mode"] == "parallel" and data["tier-2-escalation"] == "on" and "tier-0-escalation" not in data
    assert (data["rule-0-confidence_below"], data["rule-0-tier"], data["default_tier"]) == ("0.5", "high", "medium")


def test_preview_shows_per_tier_what_the_change_would_do_and_publishes_nothing(tenant, admin, outputs):
    client = signed_in(admin)
    data = opened(client)
    data["tier-1-review_rate"] = "60"

    response = post(client, data, "preview")

    assert response.status_code == 200
    page = response.content.decode()
    draws = [sampling_draw(tenant_id=tenant.pk, external_id=e, policy_version=1) for e in outputs]
    medium = [draw for number, draw in enumerate(draws) if number % 5]
    now, after = sum(d < 0.25 for d in medium), sum(d < 0.6 for d in medium)
    # outputs now, with the change, difference; sampled now, with the change, difference; recorded
    assert preview_cells(page, "medium")[:6] == ["96", "96", "no change", str(now), str(after), f"+{after - now}"]
    assert preview_cells(page, "high")[2] == "no change" and preview_cells(page, "high")[5] == "no change"
    assert "tier medium: rate 25 % → 60 %" in page
    assert 'id="publish-button"' in page and "Publish version 2" in page
    assert current(tenant).version == 1  # nothing published


def test_publish_after_preview_with_a_reason_is_a_new_version_in_the_same_history_as_the_api(tenant, admin, outputs):
    client = signed_in(admin)
    data = opened(client)
    data["tier-1-review_rate"] = "60"
    previewed = form_data(post(client, data, "preview").content.decode(), "policy-form")

    response = post(client, {**previewed, "reason": "more eyes on support"}, "publish")

    assert response.status_code == 302 and response["Location"] == URL
    policy = current(tenant)
    assert policy.version == 2 and policy.document["tiers"][1]["review_rate"] == 0.6
    record = policy.history.order_by("-history_date").first()
    assert (record.history_user, record.history_change_reason) == (admin, "more eyes on support")
    api = make_client(tenant, "auditor").get("/api/v1/policy/history").json()["results"][0]
    assert (api["version"], api["changed_by"], api["reason"]) == (2, "ada", "more eyes on support")
    # Everything else is as it was: the form round-trips the document.
    unchanged = copy.deepcopy(DEFAULT_POLICY)
    assert [t["name"] for t in policy.document["tiers"]] == [t["name"] for t in unchanged["tiers"]]
    assert policy.document["rules"] == current_rules_of(1, tenant)


def current_rules_of(version, tenant):
    return current(tenant).history.get(version=version).document["rules"]


def test_publishing_needs_a_preview_of_exactly_this_form_and_a_reason(tenant, admin, outputs):
    client = signed_in(admin)
    data = opened(client)
    data["tier-0-review_rate"] = "7.5"

    unpreviewed = post(client, {**data, "reason": "why not"}, "publish")
    assert unpreviewed.status_code == 200 and "here is what this version would do" in unpreviewed.content.decode()
    assert current(tenant).version == 1

    previewed = form_data(unpreviewed.content.decode(), "policy-form")
    edited = {**previewed, "tier-0-review_rate": "8", "reason": "why not"}
    changed = post(client, edited, "publish")
    assert changed.status_code == 200 and "rate 5 % → 8 %" in changed.content.decode()
    assert current(tenant).version == 1

    no_reason = post(client, {**form_data(changed.content.decode(), "policy-form"), "reason": "  "}, "publish")
    assert no_reason.status_code == 400
    assert "Say why" in field_errors(no_reason.content.decode(), "id_reason")
    assert current(tenant).version == 1

    done = post(client, {**form_data(changed.content.decode(), "policy-form"), "reason": "spot checks"}, "publish")
    assert done.status_code == 302 and current(tenant).document["tiers"][0]["review_rate"] == 0.08


def test_bad_input_is_shown_beside_its_field_and_nothing_is_written(tenant, admin):
    client = signed_in(admin)
    data = opened(client)

    rate = post(client, {**data, "tier-2-review_rate": "150"}, "preview")
    assert rate.status_code == 400
    assert "less than or equal to 100" in field_errors(rate.content.decode(), "id_tier-2-review_rate")
    assert '<a href="#id_tier-2-review_rate">Tier 3 (high), Review rate (%)</a>' in rate.content.decode()

    metadata = post(client, {**data, "rule-0-metadata": "no equals sign"}, "preview")
    assert "Line 1: write key = value" in field_errors(metadata.content.decode(), "id_rule-0-metadata")

    # The service's own checks, beside the field they name: a rule without a condition, the default tier removed.
    no_condition = post(client, {**data, "rule-0-confidence_below": ""}, "preview").content.decode()
    assert "a rule needs at least one condition" in no_condition and 'id="form-problems"' in no_condition
    no_default = post(client, {**data, "tier-1-DELETE": "on"}, "preview")
    assert "default_tier 'medium' is not one of the tiers" in field_errors(
        no_default.content.decode(), "id_default_tier"
    )
    twice = post(client, {**data, "tier-3-name": "high"}, "preview")
    assert "is used twice" in field_errors(twice.content.decode(), "id_tier-3-name")

    assert current(tenant).version == 1 and current(tenant).history.count() == 1


def test_rules_are_added_reordered_and_removed_and_metadata_keeps_its_types(tenant, admin, outputs):
    client = signed_in(admin)
    added = post(client, opened(client), "add_rule")
    data = form_data(added.content.decode(), "policy-form")
    assert data["rule-TOTAL_FORMS"] == "2" and data["rule-1-tier"] == ""
    data.update(
        {
            "rule-1-name": "vip accounts",
            "rule-1-application": "support-bot, billing-bot",
            "rule-1-metadata": 'vip = true\ncount = 3\ncode = "3"\nplan in ["pro", "team"]',
            "rule-1-tier": "critical",
            "rule-1-ORDER": "0",  # first
        }
    )
    data = form_data(post(client, data, "preview").content.decode(), "policy-form")
    post(client, {**data, "reason": "vips first"}, "publish")

    rules = current(tenant).document["rules"]
    assert [rule["tier"] for rule in rules] == ["critical", "high"]
    assert rules[0]["match"]["application"] == ["support-bot", "billing-bot"]
    assert rules[0]["match"]["metadata"] == [
        {"key": "vip", "equals": True},
        {"key": "count", "equals": 3},
        {"key": "code", "equals": "3"},
        {"key": "plan", "in": ["pro", "team"]},
    ]

    # Shown back as written: opening and previewing it again changes nothing.
    data = opened(client)
    assert data["rule-0-metadata"] == 'vip = true\ncount = 3\ncode = "3"\nplan in ["pro", "team"]'
    assert "This form is the policy in force" in post(client, data, "preview").content.decode()

    data["rule-0-DELETE"] = "on"
    data = form_data(post(client, data, "preview").content.decode(), "policy-form")
    post(client, {**data, "reason": "no more vips"}, "publish")
    assert [rule["tier"] for rule in current(tenant).document["rules"]] == ["high"]


def test_a_tier_is_added_from_the_usual_defaults(tenant, admin):
    client = signed_in(admin)
    data = form_data(post(client, opened(client), "add_tier").content.decode(), "policy-form")
    assert data["tier-TOTAL_FORMS"] == "5" and data["tier-4-mode"] == "parallel" and data["tier-4-sla_minutes"] == "480"

    untouched = post(client, data, "preview")  # a new row left blank is no tier
    assert untouched.status_code == 200 and "new tier" not in untouched.content.decode()

    data.update({"tier-4-name": "quiet", "tier-4-review_rate": "0"})
    data = form_data(post(client, data, "preview").content.decode(), "policy-form")
    post(client, {**data, "reason": "a quiet tier"}, "publish")
    assert [tier["name"] for tier in current(tenant).document["tiers"]][-1] == "quiet"


def test_a_version_published_meanwhile_is_not_overwritten(tenant, admin):
    client = signed_in(admin)
    data = opened(client)
    data["tier-0-review_rate"] = "9"
    data = form_data(post(client, data, "preview").content.decode(), "policy-form")
    policy_publish(tenant=tenant, document=DEFAULT_POLICY, reason="someone else")

    response = post(client, {**data, "reason": "mine"}, "publish")

    assert response.status_code == 409 and "The policy changed since you opened it" in response.content.decode()
    assert (
        current(tenant).version == 2
        and current(tenant).history.order_by("-history_date")[0].history_change_reason == "someone else"
    )


@pytest.mark.parametrize("role", ["reviewer", "auditor", "viewer"])
def test_other_roles_may_not_open_or_publish(tenant, role):
    client = signed_in(member(tenant, role))
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"action": "publish"}).status_code == 403
    assert current(tenant).version == 1


def test_a_hybrid_tier_and_its_rules_modes_are_set_in_the_console(tenant, admin, outputs):
    client = signed_in(admin)
    data = opened(client)
    data.update({"tier-1-mode": "hybrid", "rule-0-mode": "sequential"})

    no_default = post(client, data, "preview").content.decode()
    assert "a hybrid tier needs default_mode" in no_default
    not_hybrid = post(client, {**data, "tier-1-default_mode": "parallel"}, "preview")
    assert "only a hybrid tier takes its mode from the rule" in field_errors(
        not_hybrid.content.decode(), "id_rule-0-mode"
    )  # rule 0 maps to tier high, which is sequential

    data.update({"tier-1-default_mode": "parallel", "rule-0-tier": "medium"})
    data = form_data(post(client, data, "preview").content.decode(), "policy-form")
    post(client, {**data, "reason": "low confidence held within medium"}, "publish")

    document = current(tenant).document
    assert (document["tiers"][1]["mode"], document["tiers"][1]["default_mode"]) == ("hybrid", "parallel")
    assert (document["rules"][0]["tier"], document["rules"][0]["mode"]) == ("medium", "sequential")
    assert opened(client)["rule-0-mode"] == "sequential"
