"""Shared helpers of the review-workflow tests: a policy that samples every tier, reviewers, calls."""

import copy

import pytest

from policies.defaults import DEFAULT_POLICY
from policies.services import policy_publish, rubric_publish
from reviews.services.queues import queue_grant
from tenants.services import PLATFORM_OPERATOR, membership_create
from tests.conftest import make_client
from tests.factories import UserFactory, output_payload

RUBRIC = {
    "name": "quality",
    "criteria": [
        {"key": "correct", "label": "Correct", "kind": "binary"},
        {"key": "helpful", "label": "Helpful", "kind": "graded", "min": 1, "max": 5},
        {"key": "tone", "label": "Tone", "kind": "categorical", "options": ["ok", "rude"], "required": False},
        {"key": "notes", "label": "Notes", "kind": "text", "required": False},
    ],
}
GOOD_SCORES = {"correct": True, "helpful": 4}


@pytest.fixture
def workflow(tenant):
    """Every tier samples everything (rate 1); tiers by application; a rubric on every tier;
    escalation allowed on medium, high and critical, not on low (as the default policy, but medium)."""
    rubric_publish(tenant=tenant, document=RUBRIC)
    tiers = copy.deepcopy(DEFAULT_POLICY["tiers"])
    for tier in tiers:
        tier.update(review_rate=1.0, rubric="quality", overlap_rate=0.0)
        if tier["name"] == "medium":
            tier["escalation"] = True
    tiers.append({"name": "quiet", "review_rate": 0.0, "mode": "parallel", "sla_minutes": 60})
    rules = [
        {"tier": name, "match": {"application": f"{name}-app"}}
        for name in ("low", "medium", "high", "critical", "quiet")
    ]
    policy_publish(tenant=tenant, document={"default_tier": "medium", "tiers": tiers, "rules": rules})
    return {"service": make_client(tenant, "service")}


def reviewer(tenant, level: int, name: str, skills=()):
    person = UserFactory(username=name)
    membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=level, skills=list(skills))
    from reviews.models import Queue

    queue_grant(queue=Queue.objects.for_tenant(tenant).get(name="default"), user=person, actor=PLATFORM_OPERATOR)
    client = make_client(tenant, "reviewer", user=person)
    client.person = person
    return client


def submit(workflow, number, application, **overrides):
    return (
        workflow["service"]
        .post("/api/v1/outputs", output_payload(number, application=application, **overrides), format="json")
        .json()
    )


def claim(client, **body):
    return client.post("/api/v1/tasks/claim", body, format="json")


def review(client, task_id, **body):
    return client.post(f"/api/v1/tasks/{task_id}/review", body, format="json")
