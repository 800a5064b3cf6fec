"""Signal rules on the console's policy page: shown, added, checked and kept when publishing."""

import copy

import pytest

from policies.defaults import DEFAULT_POLICY
from policies.models import Policy
from policies.services import policy_publish
from tests.pages import form_data, member, signed_in

URL = "/console/policy/"
SIGNALS = [
    {"name": "costly", "signal": "outlier", "measure": "cost", "quantile": 0.95, "action": "force_review"},
    {"name": "tools", "signal": "tool_failed", "action": "raise_tier", "raise_to": "critical"},
]


@pytest.fixture
def admin(tenant):
    policy_publish(tenant=tenant, document={**copy.deepcopy(DEFAULT_POLICY), "signals": SIGNALS})
    return member(tenant, "admin", "ada")


def opened(client) -> dict:
    response = client.get(URL)
    assert response.status_code == 200
    return form_data(response.content.decode(), "policy-form")


def publish(client, data: dict, reason: str):
    previewed = form_data(client.post(URL, {**data, "action": "preview"}).content.decode(), "policy-form")
    return client.post(URL, {**previewed, "reason": reason, "action": "publish"})


def test_the_policy_page_shows_each_signal_and_publishing_keeps_them(tenant, admin):
    client = signed_in(admin)
    data = opened(client)

    assert data["signal-TOTAL_FORMS"] == "2"
    assert (data["signal-0-signal"], data["signal-0-measure"], data["signal-0-quantile"]) == ("outlier", "cost", "0.95")
    assert (data["signal-1-action"], data["signal-1-raise_to"]) == ("raise_tier", "critical")

    data["tier-1-review_rate"] = "30"
    response = publish(client, data, "a little more review")
    assert response.status_code == 302, response.content.decode()[:2000]
    document = Policy.objects.for_tenant(tenant).get().document
    assert [(signal["name"], signal["signal"], signal["action"]) for signal in document["signals"]] == [
        ("costly", "outlier", "force_review"),
        ("tools", "tool_failed", "raise_tier"),
    ]
    assert document["signals"][0]["quantile"] == 0.95


def test_a_signal_added_on_the_page_is_checked_like_the_api_checks_it(tenant, admin):
    client = signed_in(admin)
    data = opened(client)
    added = form_data(client.post(URL, {**data, "action": "add_signal"}).content.decode(), "policy-form")
    assert added["signal-TOTAL_FORMS"] == "3"
    added.update({"signal-2-signal": "outlier", "signal-2-action": "force_review", "signal-2-name": "slow"})

    refused = client.post(URL, {**added, "action": "preview"})
    assert refused.status_code == 400
    assert "names its measure" in refused.content.decode()

    added["signal-2-measure"] = "latency"
    response = publish(client, added, "slow answers get a look")
    assert response.status_code == 302
    document = Policy.objects.for_tenant(tenant).get().document
    assert document["signals"][2] == {
        "name": "slow",
        "signal": "outlier",
        "measure": "latency",
        "action": "force_review",
    }
