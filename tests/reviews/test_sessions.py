"""Sessions: session_id on ingest, GET /api/v1/sessions/{id}, the earlier turns with a task (API and
workbench), and rubrics that score the whole session."""

import copy
import hashlib

import orjson
import pytest

from policies.services import rubric_publish
from reviews import selectors
from reviews.models import Output
from reviews.services.ingest import output_content_hash
from tests.conftest import make_client
from tests.factories import output_payload, output_submission
from tests.reviews.conftest import RUBRIC, claim, reviewer, submit
from tests.reviews.test_workbench import browser, task_id_of


def a_session(workflow, session_id="chat-7", turns=3, last_app="medium-app"):
    """``turns`` outputs nobody reviews (quiet-app), then one sampled for review; returns the last receipt."""
    for number in range(1, turns + 1):
        submit(workflow, number, "quiet-app", session_id=session_id, output=f"Turn {number} answer.")
    return submit(workflow, turns + 1, last_app, session_id=session_id, output="The answer under review.")


def test_session_id_is_stored_from_single_and_batch_submissions(tenant, service_client):
    single = service_client.post("/api/v1/outputs", output_payload(1, session_id="s-1"), format="json")
    batch = service_client.post(
        "/api/v1/outputs/batch",
        {"items": [output_payload(2, session_id="s-1"), output_payload(3)]},
        format="json",
    )

    assert single.status_code == 201 and batch.json()["created"] == 2
    stored = dict(Output.objects.for_tenant(tenant).values_list("external_id", "session_id"))
    assert stored == {"ext-1": "s-1", "ext-2": "s-1", "ext-3": ""}


@pytest.mark.parametrize("bad", ["", "x" * 256, 7, None])
def test_a_bad_session_id_is_a_400_naming_it(service_client, bad):
    response = service_client.post("/api/v1/outputs", output_payload(1, session_id=bad), format="json")

    if bad is None:  # null is the default: no session
        assert response.status_code == 201
    else:
        assert response.status_code == 400
        assert "session_id" in response.json()["fields"]


def test_an_output_without_a_session_hashes_as_before_sessions_existed():
    # Stored before this field existed, the same body must stay a repeat, not turn into a conflict.
    submission = output_submission(1)
    body = {key: value for key, value in submission.model_dump().items() if key != "session_id"}
    expected = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert output_content_hash(submission) == expected
    assert output_content_hash(output_submission(1, session_id="s")) != expected


def test_the_session_lists_its_outputs_in_order_page_by_page(tenant, workflow):
    a_session(workflow, turns=4)
    submit(workflow, 50, "quiet-app", session_id="another")
    auditor = make_client(tenant, "auditor")

    first = auditor.get("/api/v1/sessions/chat-7", {"page_size": 3})
    body = first.json()
    rest = auditor.get(body["next"]).json()

    assert first.status_code == 200 and body["session_id"] == "chat-7"
    outputs = [turn["output"] for turn in body["results"] + rest["results"]]
    assert outputs == [
        "Turn 1 answer.",
        "Turn 2 answer.",
        "Turn 3 answer.",
        "Turn 4 answer.",
        "The answer under review.",
    ]
    assert rest["next"] is None
    assert body["results"][0]["input"] == output_payload(1)["input"]


def test_an_unknown_or_foreign_session_is_a_404(tenant, other_tenant, workflow):
    a_session(workflow)
    outsider = make_client(other_tenant, "admin")

    assert make_client(tenant, "auditor").get("/api/v1/sessions/nope").status_code == 404
    response = outsider.get("/api/v1/sessions/chat-7")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert "Turn 1" not in response.content.decode()


def test_the_claimed_task_carries_the_earlier_turns(tenant, workflow):
    under_review = a_session(workflow, turns=3)
    rita = reviewer(tenant, 1, "rita")

    task = claim(rita).json()

    assert task["output"]["id"] == under_review["id"] and task["output"]["session_id"] == "chat-7"
    session = task["session"]
    assert session["scope"] == "output" and session["omitted"] is False and session["limit"] == 20
    assert [turn["output"] for turn in session["turns"]] == ["Turn 1 answer.", "Turn 2 answer.", "Turn 3 answer."]
    assert not any(turn["current"] for turn in session["turns"])


def test_only_the_last_n_earlier_turns_are_carried(tenant, workflow, monkeypatch):
    monkeypatch.setattr(selectors, "SESSION_TURNS_SHOWN", 2)
    a_session(workflow, turns=4)

    session = claim(reviewer(tenant, 1, "rita")).json()["session"]

    assert [turn["output"] for turn in session["turns"]] == ["Turn 3 answer.", "Turn 4 answer."]
    assert session["omitted"] is True and session["limit"] == 2


def test_a_task_without_a_session_has_none(tenant, workflow):
    submit(workflow, 1, "medium-app")
    task = claim(reviewer(tenant, 1, "rita")).json()
    assert task["session"] is None and task["output"]["session_id"] is None


@pytest.fixture
def session_rubric(tenant):
    """The workflow's rubric, published again scoring whole sessions."""
    document = copy.deepcopy(RUBRIC)
    document["scope"] = "session"
    rubric_publish(tenant=tenant, document=document)


def test_a_rubric_scoring_the_whole_session_shows_every_turn(tenant, workflow, session_rubric):
    under_review = a_session(workflow, turns=2)
    submit(workflow, 9, "quiet-app", session_id="chat-7", output="A later turn.")

    task = claim(reviewer(tenant, 1, "rita")).json()

    assert task["rubric"]["scope"] == "session" and task["session"]["scope"] == "session"
    turns = task["session"]["turns"]
    assert [turn["output"] for turn in turns] == [
        "Turn 1 answer.",
        "Turn 2 answer.",
        "The answer under review.",
        "A later turn.",
    ]
    assert [turn["current"] for turn in turns] == [False, False, True, False]
    assert turns[2]["id"] == under_review["id"]


def test_the_rubric_api_publishes_and_shows_its_scope(tenant):
    rubric_publish(tenant=tenant, document=RUBRIC)
    admin = make_client(tenant, "admin")
    document = {**copy.deepcopy(RUBRIC), "name": "whole", "scope": "session"}

    assert admin.post("/api/v1/rubrics", document, format="json").status_code == 201
    shown = admin.get("/api/v1/rubrics/whole").json()
    assert shown["scope"] == "session"
    assert admin.get("/api/v1/rubrics/quality").json()["scope"] == "output"
    refused = admin.post("/api/v1/rubrics", {**document, "scope": "conversation"}, format="json")
    assert refused.status_code == 400 and "scope" in refused.json()["fields"]


def test_the_task_page_shows_the_earlier_turns_above_the_output(tenant, workflow):
    a_session(workflow, turns=2)
    client = browser(reviewer(tenant, 1, "rita").person)

    page = client.get(f"/review/tasks/{task_id_of(client.post('/review/claim'))}/").content.decode()

    session = page.split('id="session"')[1].split("</section>")[0]
    assert "chat-7" in session and "2 earlier turns" in session
    assert session.index("Turn 1 answer.") < session.index("Turn 2 answer.")
    assert "The answer under review." not in session  # the output itself is shown below, as before
    assert page.index('id="session"') < page.index('id="original-output"')
    assert '<details class="session-turns" open>' in session  # short: open
    assert 'id="session-scope"' not in page


def test_a_long_session_is_collapsed_and_a_whole_session_rubric_says_so(tenant, workflow, session_rubric):
    a_session(workflow, turns=5)
    client = browser(reviewer(tenant, 1, "rita").person)

    page = client.get(f"/review/tasks/{task_id_of(client.post('/review/claim'))}/").content.decode()

    session = page.split('id="session"')[1].split("</section>")[0]
    assert '<details class="session-turns">' in session  # six turns: collapsed
    assert "Score the whole session" in session and "6 turns" in session
    assert 'class="turn current"' in session and "The answer under review." in session
