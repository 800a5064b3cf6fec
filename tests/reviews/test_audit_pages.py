"""The auditor's pages: who may read them, the output search (filters, keyset pages), an
output's story, the configuration history with diffs."""

import base64
import hashlib
import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from policies.defaults import DEFAULT_POLICY
from policies.selectors import policy_get
from policies.services import policy_publish
from reviews import audit_selectors
from reviews.models import Output
from reviews.services.retention import retention_apply
from tests.pages import member, signed_in
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(tenant, other_tenant, workflow):
    rita = reviewer(tenant, 2, "rita")
    corrected = submit(workflow, "corrected", "medium-app")
    task = claim(rita).json()
    response = review(
        rita,
        task["id"],
        decision="correct",
        scores=GOOD_SCORES,
        corrected_output="Answer corrected, fixed.",
        comment="the number was wrong",
        time_spent_seconds=42,
    )
    assert response.status_code == 201, response.content
    workflow["service"].post(
        f"/api/v1/outputs/{corrected['id']}/feedback", {"rating": "down", "comment": "still wrong"}, format="json"
    )
    quiet = submit(workflow, "quiet", "quiet-app")
    from tests.conftest import make_client

    foreign = (
        make_client(other_tenant, "service")
        .post(
            "/api/v1/outputs",
            {"external_id": "theirs", "application": "x", "input": "secret question", "output": "secret"},
            format="json",
        )
        .json()
    )
    return {"corrected": corrected["id"], "quiet": quiet["id"], "foreign": foreign["id"], "rita": rita.person}


def pages(seeded):
    return [
        "/audit/",
        f"/audit/outputs/{seeded['corrected']}/",
        "/audit/config/",
        "/audit/config/policy/1/",
        "/audit/chain/",
        "/audit/exports/",
    ]


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_auditors_and_admins_read_every_page(tenant, seeded, role):
    client = signed_in(member(tenant, role))
    for path in pages(seeded):
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"All times UTC" in response.content


def test_reviewers_are_refused_and_anonymous_people_sent_to_sign_in(tenant, seeded):
    reviewer_client = signed_in(member(tenant, "reviewer"))
    for path in pages(seeded):
        refused = reviewer_client.get(path)
        assert refused.status_code == 403, path
        assert b"This page is not open to you" in refused.content and b"Back to your home page" in refused.content
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path


def test_another_tenants_output_is_missing_and_never_listed(tenant, seeded):
    client = signed_in(member(tenant, "auditor"))
    assert client.get(f"/audit/outputs/{seeded['foreign']}/").status_code == 404
    assert client.get("/audit/outputs/00000000-0000-7000-8000-000000000000/").status_code == 404
    listed = client.get("/audit/").content.decode()
    assert "ext-corrected" in listed and "theirs" not in listed
    assert client.get("/audit/config/policy/99/").status_code == 404


def test_the_pages_change_nothing(tenant, seeded):
    client = signed_in(member(tenant, "auditor"))
    for path in pages(seeded)[:-1]:  # starting an export is the one POST of these pages (and Verify now)
        assert client.post(path).status_code in (403, 405), path


def search(client, **params):
    return client.get("/audit/", params).content.decode()


def test_the_search_filters_by_application_tier_decision_reviewer_and_period(tenant, seeded):
    client = signed_in(member(tenant, "auditor"))
    assert "ext-corrected" in search(client, application="medium-app")
    assert "ext-corrected" not in search(client, application="quiet-app")
    assert "ext-quiet" in search(client, tier="quiet") and "ext-corrected" not in search(client, tier="quiet")
    assert "ext-corrected" in search(client, decision="corrected") and "ext-quiet" not in search(
        client, decision="corrected"
    )
    assert "ext-quiet" in search(client, decision="auto_approved")
    by_rita = search(client, reviewer=str(seeded["rita"].pk))
    assert "ext-corrected" in by_rita and "ext-quiet" not in by_rita
    today = timezone.now().date()
    assert "ext-corrected" in search(client, received_from=today.isoformat(), received_until=today.isoformat())
    assert "ext-corrected" not in search(client, received_until=(today - timedelta(days=1)).isoformat())
    refused = client.get("/audit/", {"tier": "no-such-tier"})
    assert refused.status_code == 200 and b"not valid" in refused.content
    # The table's columns: decided by, the SLA, why it was sampled, a link to the story.
    row = search(client, decision="corrected")
    assert "rita" in row and 'class="sla met"' in row and f"/audit/outputs/{seeded['corrected']}/" in row


def test_keyset_pages_cover_every_output_once_at_a_constant_cost(tenant, workflow, monkeypatch):
    for number in range(7):
        submit(workflow, f"many-{number}", "quiet-app")
    # Some share one instant: the id breaks the tie.
    Output.objects.for_tenant(tenant).filter(external_id__in=["ext-many-1", "ext-many-2", "ext-many-3"]).update(
        received_at=timezone.now() - timedelta(minutes=5)
    )
    monkeypatch.setattr(audit_selectors, "SEARCH_PAGE_SIZE", 3)
    client = signed_in(member(tenant, "auditor"))
    seen, url, costs, pages = [], "/audit/", [], []
    while url:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        costs.append(len(queries))
        page = response.content.decode()
        pages.append([part.split("<")[0] for part in page.split('class="story-link">')[1:]])
        seen += pages[-1]
        assert (re.search(r'rel="prev" id="newer"', page) is not None) == (len(pages) > 1)
        found = re.search(r'<a href="([^"]+)" rel="next" id="older">', page)
        url = "/audit/" + html.unescape(found.group(1)) if found else ""
        assert len(costs) < 10
    assert sorted(seen) == sorted(f"ext-many-{n}" for n in range(7))  # each once
    # And back, newer page by newer page, to the first: the same pages, ties included.
    back = []
    while found := re.search(r'<a href="([^"]+)" rel="prev" id="newer">', page):
        page = client.get("/audit/" + html.unescape(found.group(1))).content.decode()
        back.append([part.split("<")[0] for part in page.split('class="story-link">')[1:]])
        assert len(back) < 10
    assert back == pages[-2::-1]
    assert (
        costs[1] == costs[-1] and costs[0] <= costs[1] + 2
    )  # a page deep in costs what the second does (the first warms caches)


def test_a_cursor_that_is_not_ours_starts_from_the_newest(tenant, seeded):
    client = signed_in(member(tenant, "auditor"))
    assert "ext-corrected" in client.get("/audit/", {"after": "not-a-cursor!"}).content.decode()


def test_the_story_tells_every_event_in_order(tenant, seeded):
    page = signed_in(member(tenant, "auditor")).get(f"/audit/outputs/{seeded['corrected']}/").content.decode()
    order = [
        page.index(f'class="kind">{kind}<')
        for kind in ("received", "classified", "task", "claimed", "review", "decided", "feedback")
    ]
    assert order == sorted(order)
    assert "/audit/config/policy/" in page  # the policy version that classified it, linked
    assert "<ins>fixed." in page or "<ins>corrected, fixed." in page  # the correction as a diff
    assert "the number was wrong" in page and "42 s spent" in page and "still wrong" in page
    assert "same content as received" in page
    assert "Question corrected?" in page  # what arrived
    assert "Correct" in page and "Helpful" in page  # scores per criterion, by label


def test_after_retention_the_story_says_redacted_instead_of_the_payload(tenant, seeded):
    Output.objects.for_tenant(tenant).filter(pk=seeded["corrected"]).update(
        received_at=timezone.now() - timedelta(days=400)
    )
    retention_apply(tenant=tenant)
    page = signed_in(member(tenant, "auditor")).get(f"/audit/outputs/{seeded['corrected']}/").content.decode()
    assert "redacted on" in page and "under retention" in page
    assert "Question corrected?" not in page and "the number was wrong" not in page and "still wrong" not in page
    assert "42 s spent" in page  # the story stays


def test_the_configuration_history_shows_who_when_why_and_a_diff(tenant, seeded):
    admin = member(tenant, "admin", username="ada")
    document = policy_get(tenant=tenant).document
    document["tiers"][0]["review_rate"] = 0.123
    policy_publish(tenant=tenant, document=document, user=admin, reason="raise the low tier's sampling")
    version = policy_get(tenant=tenant).version
    client = signed_in(member(tenant, "auditor"))

    page = client.get("/audit/config/", {"kind": "policy"}).content.decode()
    assert "raise the low tier&#x27;s sampling" in page and "ada" in page
    assert '<span class="add">+' in page and "0.123" in page

    version_page = client.get(f"/audit/config/policy/{version}/").content.decode()
    assert "0.123" in version_page and f"Changes since version {version - 1}" in version_page

    for kind in audit_selectors.CONFIG_KINDS:
        assert client.get("/audit/config/", {"kind": kind}).status_code == 200, kind
    assert client.get("/audit/config/", {"kind": "grants"}).status_code == 200
    assert client.get("/audit/config/", {"kind": "nope"}).status_code == 404
    assert "rita" in client.get("/audit/config/", {"kind": "grants"}).content.decode()
    assert "membership of rita" in client.get("/audit/config/", {"kind": "members"}).content.decode()


def test_history_pages_keep_going(tenant, monkeypatch):
    for rate in (0.2, 0.3, 0.4):
        document = policy_get(tenant=tenant).document
        document["tiers"][0]["review_rate"] = rate
        policy_publish(tenant=tenant, document=document, reason=f"rate {rate}")
    monkeypatch.setattr(audit_selectors, "CONFIG_PAGE_SIZE", 2)
    rows, following = audit_selectors.audit_config_history(tenant=tenant, kind="policy")
    assert [row["why"] for row in rows] == ["rate 0.4", "rate 0.3"]
    rows, following = audit_selectors.audit_config_history(tenant=tenant, kind="policy", before=following)
    assert rows[0]["why"] == "rate 0.2" and rows[0]["diff"]
    # The page: older changes onwards, and from there the way back to the newest.
    client = signed_in(member(tenant, "auditor"))
    first = client.get("/audit/config/", {"kind": "policy"}).content.decode()
    assert 'rel="next"' in first and 'id="newest"' not in first
    older = html.unescape(re.search(r'<a href="([^"]+)" rel="next"', first).group(1))
    second = client.get(older).content.decode()
    assert "rate 0.2" in second and 'href="/audit/config/?kind=policy" id="newest"' in second


def test_the_default_policy_is_the_first_version(tenant):
    assert policy_get(tenant=tenant).document["tiers"][0]["name"] == DEFAULT_POLICY["tiers"][0]["name"]


def test_the_story_lists_the_outputs_audit_events_and_says_its_digest_is_committed(tenant, seeded):
    client = signed_in(member(tenant, "auditor"))
    page = client.get(f"/audit/outputs/{seeded['corrected']}/").content.decode()
    assert "<code>output.received</code>" in page and 'class="badge pass">committed' in page
    assert "<code>task.reviewed</code>" in page and "<code>feedback.added</code>" in page
    assert "Task claimed (rita)" in page  # every claim, from the audit events, in the timeline
    assert page.count("Task claimed (rita)") == 1 and "Claimed by rita" not in page  # each claim once
    assert "does not recompute" not in page
    seq = re.search(r'Merkle root of event <a href="#seq-(\d+)">seq \1</a>', page).group(1)
    assert f'<tr id="seq-{seq}">' in page  # the link leads to the event's row on the page

    # An edit of the classification after the fact: the digest no longer recomputes from the record.
    Output.objects.for_tenant(tenant).filter(pk=seeded["corrected"]).update(risk_tier="low")
    page = client.get(f"/audit/outputs/{seeded['corrected']}/").content.decode()
    assert "NOT committed" in page and "differs from the stored one" in page


def test_chain_page_verify_now_stores_who_when_and_the_outcome(tenant, seeded, django_capture_on_commit_callbacks):
    from tenants.models import AuditEvent, AuditVerification

    auditor = member(tenant, "auditor", username="alex")
    client = signed_in(auditor)
    page = client.get("/audit/chain/").content.decode()
    assert "Never verified" in page and 'id="verify-now"' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/audit/chain/verify")
    assert response.status_code == 302  # tasks run in-process here: already finished
    verification = AuditVerification.objects.for_tenant(tenant).get()
    assert (verification.status, verification.requested_by, verification.bad_seq) == ("passed", auditor, None)
    assert verification.events == AuditEvent.objects.for_tenant(tenant).count() > 0
    page = client.get("/audit/chain/").content.decode()
    assert "Intact" in page and "alex" in page

    partial = client.get(f"/audit/chain/verifications/{verification.pk}", HTTP_HX_REQUEST="true").content.decode()
    assert "Intact" in partial and "hx-trigger" not in partial  # finished: no more polling

    # Tampering: the page names the first bad seq.
    second = AuditEvent.objects.for_tenant(tenant).order_by("seq")[1]
    from hitl import tenancy

    with tenancy.as_owner(), connection.cursor() as cursor:  # the app role may not: only the owner could
        cursor.execute("UPDATE tenants_auditevent SET object_id = 'x' WHERE id = %s", [second.pk])
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/audit/chain/verify", HTTP_HX_REQUEST="true")
    latest = AuditVerification.objects.for_tenant(tenant).order_by("-started_at").first()
    assert latest.status == "failed" and latest.bad_seq == second.seq
    assert f'id="bad-seq">{second.seq}<' in client.get("/audit/chain/").content.decode()


def test_chain_pages_are_for_auditors_and_admins_of_the_tenant(tenant, other_tenant, seeded):
    from tenants.verification import audit_verification_start

    theirs = audit_verification_start(tenant=other_tenant)
    assert signed_in(member(tenant, "reviewer")).post("/audit/chain/verify").status_code == 403
    assert signed_in(member(tenant, "reviewer")).get("/audit/chain/").status_code == 403
    assert Client().post("/audit/chain/verify").status_code == 302
    admin = signed_in(member(tenant, "admin"))
    assert admin.get("/audit/chain/").status_code == 200
    assert admin.get(f"/audit/chain/verifications/{theirs.pk}").status_code == 404
    assert admin.get("/audit/chain/verify").status_code == 405


def test_an_auditor_starts_an_export_follows_it_and_downloads_its_files(
    tenant, seeded, settings, tmp_path, django_capture_on_commit_callbacks
):
    import zipfile

    from reviews.models import ComplianceExport

    settings.HITL_EXPORT_DIR = str(tmp_path)
    client = signed_in(member(tenant, "auditor", username="alex"))
    today = timezone.now().date()
    refused = client.post("/audit/exports/", {"received_from": today.isoformat(), "received_until": "2000-01-01"})
    assert refused.status_code == 400 and not ComplianceExport.objects.for_tenant(tenant).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/audit/exports/", {"received_from": today.isoformat(), "received_until": today.isoformat()}
        )
    assert response.status_code == 302
    export = ComplianceExport.objects.for_tenant(tenant).get()
    assert export.status == "done" and export.requested_by.username == "alex" and export.outputs_total == 2

    page = client.get("/audit/exports/").content.decode()
    assert "bundle.zip" in page and "outputs.csv" in page and "hx-trigger" not in page  # done: no polling
    row = client.get(f"/audit/exports/{export.pk}/row").content.decode()
    assert "Done" in row
    bundle = client.get(f"/audit/exports/{export.pk}/bundle.zip")
    assert bundle.status_code == 200
    archive = tmp_path / "bundle.zip"
    archive.write_bytes(b"".join(bundle.streaming_content))
    assert "manifest.json" in zipfile.ZipFile(archive).namelist()
    csv = client.get(f"/audit/exports/{export.pk}/files/outputs.csv")
    assert csv.status_code == 200 and b"".join(csv.streaming_content).startswith("\ufeff".encode())
    assert client.get(f"/audit/exports/{export.pk}/files/nope.txt").status_code == 404
    jsonl = client.get(f"/audit/exports/{export.pk}/files/outputs.jsonl")
    assert jsonl["Content-Type"] == "application/x-ndjson"
    assert jsonl["Content-Disposition"] == f'attachment; filename="compliance-{tenant.slug}-{export.pk}-outputs.jsonl"'
    # The summary is shown to be read and printed: its own style applies (its hash in the policy), nothing else inline.
    summary = client.get(f"/audit/exports/{export.pk}/files/summary.html")
    assert summary.status_code == 200 and summary["Content-Disposition"].startswith("inline")
    [style] = re.findall(rb"<style>(.*?)</style>", summary.content, flags=re.S)
    digest = base64.b64encode(hashlib.sha256(style).digest()).decode()
    policy = dict(part.strip().split(" ", 1) for part in summary["Content-Security-Policy"].split(";") if part.strip())
    assert policy["style-src"] == f"'self' 'sha256-{digest}'" and policy["script-src"] == "'self'"

    # Another tenant's auditor, a reviewer: nothing.
    assert signed_in(member(tenant, "reviewer")).get(f"/audit/exports/{export.pk}/bundle.zip").status_code == 403


def test_a_running_export_is_polled_and_another_tenants_is_missing(tenant, other_tenant, seeded):
    from reviews.models import ComplianceExport

    theirs = ComplianceExport.objects.for_tenant(other_tenant).create(
        period_start=timezone.now() - timedelta(days=1), period_end=timezone.now()
    )
    mine = ComplianceExport.objects.for_tenant(tenant).create(
        period_start=timezone.now() - timedelta(days=1), period_end=timezone.now(), status="running", outputs_done=1
    )
    client = signed_in(member(tenant, "admin"))
    page = client.get("/audit/exports/").content.decode()
    assert f'hx-get="/audit/exports/{mine.pk}/row"' in page and str(theirs.pk) not in page
    for path in (f"/audit/exports/{theirs.pk}/row", f"/audit/exports/{theirs.pk}/bundle.zip"):
        assert client.get(path).status_code == 404
    assert client.get(f"/audit/exports/{mine.pk}/bundle.zip").status_code == 404  # not ready


def test_verify_audit_at_the_command_line_is_kept_for_the_chain_page(tenant, seeded):
    from django.core.management import call_command

    from tenants.models import AuditVerification

    call_command("verify_audit", tenant.slug)
    run = AuditVerification.objects.for_tenant(tenant).get()
    assert (run.source, run.status, run.requested_by) == ("command", "passed", None)
    assert "(command)" in signed_in(member(tenant, "auditor")).get("/audit/chain/").content.decode()


def test_the_current_search_as_csv(tenant, seeded):
    client = signed_in(member(tenant, "auditor"))
    page = client.get("/audit/", {"decision": "corrected"}).content.decode()
    assert 'href="/audit/outputs.csv?decision=corrected"' in page

    def csv(**params):
        response = client.get("/audit/outputs.csv", params)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        return b"".join(response.streaming_content).decode("utf-8-sig")

    everything = csv()
    assert "ext-corrected" in everything and "ext-quiet" in everything and "theirs" not in everything
    corrected = csv(decision="corrected")
    assert "ext-corrected" in corrected and "ext-quiet" not in corrected
    assert "ext-quiet" in csv(tier="quiet") and "ext-corrected" not in csv(tier="quiet")
    assert "ext-corrected" in csv(reviewer=str(seeded["rita"].pk)) and "ext-quiet" not in csv(
        reviewer=str(seeded["rita"].pk)
    )
    assert client.get("/audit/outputs.csv", {"tier": "nope"}).status_code == 404
    assert signed_in(member(tenant, "reviewer")).get("/audit/outputs.csv").status_code == 403


def test_a_day_past_the_calendar_or_a_period_in_the_future_is_a_form_error(tenant, settings, tmp_path):
    from reviews.models import ComplianceExport

    settings.HITL_EXPORT_DIR = str(tmp_path)
    client = signed_in(member(tenant, "auditor", username="alex"))
    page = client.get("/audit/", {"received_until": "9999-12-31"})  # the end would be the next day's midnight
    assert page.status_code == 200 and "A day before 9999-12-31." in page.content.decode()
    assert client.get("/audit/outputs.csv", {"received_until": "9999-12-31"}).status_code == 404
    refused = client.post("/audit/exports/", {"received_from": "2026-01-01", "received_until": "9999-12-31"})
    assert refused.status_code == 400 and "A day before 9999-12-31." in refused.content.decode()
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    refused = client.post("/audit/exports/", {"received_from": tomorrow, "received_until": tomorrow})
    assert refused.status_code == 400 and "starts in the future" in refused.content.decode()
    assert not ComplianceExport.objects.for_tenant(tenant).exists()


def test_the_search_page_and_the_export_name_an_sla_alike():
    from reviews.audit_selectors import sla_state
    from reviews.export import _iso, _sla

    now = timezone.now()
    for due, decided in (
        (now + timedelta(hours=1), None),  # pending
        (now - timedelta(hours=1), None),  # missed: undecided past due
        (now, now - timedelta(minutes=1)),  # met
        (now - timedelta(hours=1), now),  # missed: decided late
    ):
        page = sla_state(review_required=True, due=due, decided_at=decided, now=now)
        _, exported = _sla(_iso(decided), [{"purpose": "approval", "due_at": _iso(due)}], _iso(now))
        assert page == exported and page in ("met", "missed", "pending")
    assert sla_state(review_required=False, due=None, decided_at=None, now=now) == ""
    assert _sla(None, [], _iso(now)) == (None, "none")


def test_people_who_reviewed_once_can_still_be_searched_for_after_they_left(tenant, other_tenant):
    from tenants.models import Membership
    from tenants.services import membership_delete

    leaver = member(tenant, "reviewer", username="rita-left")
    stays = member(tenant, "reviewer", username="sam-stays")
    member(tenant, "auditor", username="never-reviewed")
    member(other_tenant, "reviewer", username="theirs")
    membership_delete(membership=Membership.objects.for_tenant(tenant).get(user=leaver))

    client = signed_in(member(tenant, "auditor", username="alex"))
    page = client.get("/audit/", {"reviewer": leaver.pk})
    body = page.content.decode()
    assert page.status_code == 200 and "Select a valid choice" not in body
    assert "rita-left (former reviewer)" in body and f'value="{stays.pk}"' in body
    assert "never-reviewed" not in body.split('name="reviewer"')[1].split("</select>")[0]
    assert "theirs" not in body


def test_a_story_opened_from_a_search_leads_back_to_that_search(tenant, seeded):
    import html as markup
    from urllib.parse import parse_qs, urlsplit

    client = signed_in(member(tenant, "auditor"))
    page = client.get("/audit/", {"application": "medium-app", "decision": "corrected"}).content.decode()
    link = markup.unescape(page.split('class="story-link"')[0].rsplit('href="', 1)[1].split('"')[0])
    back = parse_qs(urlsplit(link).query)["back"][0]
    assert parse_qs(back) == {"application": ["medium-app"], "decision": ["corrected"]}
    story = client.get(link).content.decode()
    crumb = markup.unescape(story.split('class="crumbs"><a href="')[1].split('"')[0])
    assert parse_qs(urlsplit(crumb).query) == {"application": ["medium-app"], "decision": ["corrected"]}


def test_the_search_csv_finds_a_former_reviewers_outputs_too(tenant, seeded):
    from tenants.models import Membership
    from tenants.services import membership_delete

    rita = Membership.objects.for_tenant(tenant).get(user__username="rita")
    client = signed_in(member(tenant, "auditor"))
    before = b"".join(client.get("/audit/outputs.csv", {"reviewer": rita.user_id}).streaming_content).decode()
    membership_delete(membership=rita)
    after = b"".join(client.get("/audit/outputs.csv", {"reviewer": rita.user_id}).streaming_content).decode()
    assert "ext-corrected" in before and after == before


def test_only_the_summarys_own_style_is_allowed_inline():
    from reviews.audit_pages import _style_hashes
    from reviews.bundle import SUMMARY_STYLE

    ours = f"<html><head><style>{SUMMARY_STYLE}</style></head></html>".encode()
    digest = base64.b64encode(hashlib.sha256(SUMMARY_STYLE.encode()).digest()).decode()
    assert _style_hashes(ours) == [f"'sha256-{digest}'"]
    assert _style_hashes(b"<style>body { background: url(//evil) }</style>") == []  # whatever else a file holds


def test_the_exports_page_goes_back_past_its_first_page(tenant, other_tenant, monkeypatch):
    from reviews import audit_pages
    from reviews.models import ComplianceExport

    now = timezone.now()
    made = [
        ComplianceExport.objects.for_tenant(tenant).create(period_start=now - timedelta(days=1), period_end=now)
        for _ in range(5)
    ]
    theirs = ComplianceExport.objects.for_tenant(other_tenant).create(
        period_start=now - timedelta(days=1), period_end=now
    )
    monkeypatch.setattr(audit_pages, "EXPORTS_PAGE_SIZE", 2)
    client = signed_in(member(tenant, "auditor"))
    seen, url, pages = [], "/audit/exports/", 0
    while url:
        page = client.get(url).content.decode()
        pages += 1
        seen += re.findall(r'<tr id="export-([0-9a-f-]+)"', page)
        assert ('id="newest"' in page) == (pages > 1)
        found = re.search(r'<a href="([^"]+)" rel="next" id="older">', page)
        url = "/audit/exports/" + html.unescape(found.group(1)) if found else ""
        assert pages < 6
    assert pages == 3 and sorted(seen) == sorted(str(export.pk) for export in made)  # each once, newest first
    assert str(theirs.pk) not in seen
    assert "No older export" in client.get("/audit/exports/", {"before": str(theirs.pk)}).content.decode()
    assert client.get("/audit/exports/", {"before": "not-an-id"}).status_code == 200


def test_a_search_whose_end_comes_before_its_start_says_so(tenant, seeded):
    client = signed_in(member(tenant, "auditor"))
    page = client.get("/audit/", {"received_from": "2026-03-02", "received_until": "2026-03-01"}).content.decode()
    assert "Must not be before the start of the period." in page and 'class="story-link"' not in page
    assert (
        client.get("/audit/outputs.csv", {"received_from": "2026-03-02", "received_until": "2026-03-01"}).status_code
        == 404
    )


def test_a_regulator_gets_the_offline_verifier_from_the_exports_page(tenant):
    from tenants import auditchain

    client = signed_in(member(tenant, "auditor"))
    page = client.get("/audit/exports/").content.decode()
    assert 'href="/audit/verifier/auditchain.py" id="verifier"' in page
    script = client.get("/audit/verifier/auditchain.py")
    assert script.status_code == 200 and script["Content-Disposition"] == 'attachment; filename="auditchain.py"'
    with open(auditchain.__file__, "rb") as source:
        assert script.content == source.read()  # this version's, byte for byte
    assert signed_in(member(tenant, "reviewer")).get("/audit/verifier/auditchain.py").status_code == 403
    assert Client().get("/audit/verifier/auditchain.py").status_code == 302


def test_a_configuration_change_of_no_person_names_who_made_it_from_its_audit_event(tenant):
    from reviews.services.retention import retention_apply

    retention_apply(tenant=tenant)  # the job makes the default period explicit: the system's change
    client = signed_in(member(tenant, "auditor"))
    page = client.get("/audit/config/", {"kind": "retention"}).content.decode()
    assert "retention 365 days" in page and "by the system (scheduled work)" in page


def test_queue_grants_page_past_their_first_page(tenant, other_tenant, monkeypatch):
    from reviews import audit_pages
    from reviews.models import Queue
    from reviews.services.queues import queue_grant, queue_revoke
    from tenants.services import PLATFORM_OPERATOR

    queue = Queue.objects.for_tenant(tenant).get(name="default")
    rita = member(tenant, "reviewer", username="rita-grants")
    for _ in range(3):  # six events: granted, revoked, three times
        queue_grant(queue=queue, user=rita, actor=PLATFORM_OPERATOR)
        queue_revoke(queue=queue, user=rita, actor=PLATFORM_OPERATOR)
    monkeypatch.setattr(audit_pages, "GRANTS_PAGE_SIZE", 4)
    client = signed_in(member(tenant, "auditor"))
    first = client.get("/audit/config/", {"kind": "grants"}).content.decode()
    assert first.count("rita-grants") == 4 and 'rel="next"' in first and 'id="newest"' not in first
    older = html.unescape(re.search(r'<a href="([^"]+)" rel="next"', first).group(1))
    second = client.get(older).content.decode()
    assert second.count("rita-grants") == 2 and 'rel="next"' not in second and 'id="newest"' in second
    # Another tenant's grant as the cursor lists nothing of it or of this tenant.
    from reviews.models import QueueAccessEvent

    theirs_queue = Queue.objects.for_tenant(other_tenant).get(name="default")
    queue_grant(
        queue=theirs_queue, user=member(other_tenant, "reviewer", username="theirs-grants"), actor=PLATFORM_OPERATOR
    )
    theirs = QueueAccessEvent.objects.for_tenant(other_tenant).get()
    page = client.get("/audit/config/", {"kind": "grants", "before": theirs.pk}).content.decode()
    assert "theirs-grants" not in page and "rita-grants" not in page and "No queue was ever granted" in page
    assert "theirs-grants" not in first + second
