"""The compliance bundle: a background job, its files, and the offline verifier against each kind of tampering."""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from reviews.bundle import compliance_export_build
from reviews.models import ComplianceExport
from tenants import auditchain
from tests.reviews.test_export import FROM, TO, period  # noqa: F401 (the seeded period fixture)

AUDITCHAIN = Path(auditchain.__file__)


@pytest.fixture
def export_dir(settings, tmp_path):
    settings.HITL_EXPORT_DIR = str(tmp_path / "exports")
    return tmp_path / "exports"


@pytest.fixture
def bundle(tenant, period, export_dir, client_for, tmp_path, django_capture_on_commit_callbacks):  # noqa: F811
    """A finished bundle of the seeded period, downloaded; and the published public key."""
    auditor = client_for(tenant, "auditor")
    with django_capture_on_commit_callbacks(execute=True):  # the task, enqueued on commit, runs in-process
        started = auditor.post("/api/v1/audit/exports", {"from": FROM, "to": TO}, format="json")
    assert started.status_code == 202, started.content
    job = started.json()
    status = auditor.get(f"/api/v1/audit/exports/{job['id']}").json()
    assert status["status"] == "done", status
    download = auditor.get(status["download"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    path = tmp_path / "bundle.zip"
    path.write_bytes(b"".join(download.streaming_content))
    public = auditor.get("/api/v1/audit/public-key").json()["public_key"]
    return {"path": path, "public": public, "job": status, "ids": period["ids"]}


def _rewrite(source: Path, target: Path, change, *, manifest_follows: bool = True) -> Path:
    """A copy of the bundle with members changed by ``change(name, bytes) -> bytes | None`` (None drops
    nothing; return the new bytes). With ``manifest_follows``, the manifest's SHA-256s are updated too,
    as a forger with write access to the bundle would."""
    with zipfile.ZipFile(source) as original:
        members = {name: original.read(name) for name in original.namelist()}
    manifest = json.loads(members.pop("manifest.json"))
    for name in list(members):
        members[name] = change(name, members[name])
    manifest = change("manifest.json", manifest) or manifest
    if manifest_follows:
        for name, content in members.items():
            manifest["files"][name] = {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
    with zipfile.ZipFile(target, "w") as copy:
        for name, content in members.items():
            copy.writestr(name, content)
        copy.writestr("manifest.json", json.dumps(manifest))
    return target


def _problems(path: Path, public: str) -> list[str]:
    return auditchain.verify_bundle(str(path), public).problems


def test_a_bundle_holds_its_files_and_verifies(bundle, tenant):
    with zipfile.ZipFile(bundle["path"]) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        summary = archive.read("summary.html").decode()
        jsonl = archive.read("outputs.jsonl").decode().splitlines()
        csv_text = archive.read("outputs.csv")

    assert names == {"outputs.csv", "outputs.jsonl", "summary.html", "chain.jsonl", "leaves.jsonl", "manifest.json"}
    assert manifest["tenant"] == tenant.slug and manifest["outputs"] == 4 == len(jsonl)
    assert manifest["period"] == {"from": "2000-01-01T00:00:00.000000Z", "to": "2100-01-01T00:00:00.000000Z"}
    assert [item["version"] for item in manifest["policy_versions"]] == [1, 2]  # the default, then the workflow's
    assert manifest["checkpoint"]["seq"] == manifest["chain"]["head"]["seq"] > 0
    assert manifest["public_key"]["ed25519"] == bundle["public"]
    assert csv_text.startswith(b"\xef\xbb\xbf")
    assert "<svg" in summary and "<script" not in summary and "Judge-vs-human agreement" in summary
    assert [json.loads(line)["id"] for line in jsonl] == bundle["ids"]
    assert bundle["job"]["outputs_done"] == 4 and set(bundle["job"]["files"]) == set(manifest["files"])

    report = auditchain.verify_bundle(str(bundle["path"]), bundle["public"])

    assert report.ok, report.problems
    assert "4 records in each of outputs.jsonl and outputs.csv" in report.checked


def _edit_jsonl(name, content):
    if name != "outputs.jsonl":
        return content
    lines = content.decode().splitlines(keepends=True)
    record = json.loads(lines[1])
    record["sampling_reason"] = "not what the policy said"
    lines[1] = json.dumps(record) + "\n"
    return "".join(lines).encode()


def _edit_csv(name, content):
    return content.replace(b",medium-app,", b",low-app,", 1) if name == "outputs.csv" else content


def _edit_event(name, content):
    if name != "chain.jsonl":
        return content
    lines = content.decode().splitlines(keepends=True)
    event = json.loads(lines[0])
    event["actor_role"] = "admin" if event["actor_role"] != "admin" else "auditor"
    lines[0] = json.dumps(event) + "\n"
    return "".join(lines).encode()


def _drop_output(name, content):
    if name == "outputs.jsonl":
        return b"".join(content.splitlines(keepends=True)[:-1])
    if name == "outputs.csv":
        return b"".join(content.splitlines(keepends=True)[:-1])
    if name == "manifest.json":
        content["outputs"] -= 1
    return content


@pytest.mark.parametrize(
    ("change", "manifest_follows", "expected"),
    [
        (_edit_jsonl, False, "outputs.jsonl: SHA-256 is not the manifest's"),
        (_edit_jsonl, True, "outputs.jsonl: its SHA-256 is not the one the signed chain committed to"),
        (_edit_jsonl, True, "outputs.jsonl line 2"),
        (_edit_csv, False, "outputs.csv: SHA-256 is not the manifest's"),
        (_edit_csv, True, "outputs.csv line 2"),
        (_edit_event, True, "chain: first bad seq"),
        (_drop_output, True, "outputs.jsonl: its SHA-256 is not the one the signed chain committed to"),
    ],
    ids=["jsonl-cell", "jsonl-cell-manifest-rehashed", "jsonl-digest", "csv-cell", "csv-digest", "event", "drop"],
)
def test_each_kind_of_tampering_is_caught(bundle, tmp_path, change, manifest_follows, expected):
    forged = _rewrite(bundle["path"], tmp_path / "forged.zip", change, manifest_follows=manifest_follows)

    problems = _problems(forged, bundle["public"])

    assert [problem for problem in problems if expected in problem], problems


def test_a_wrong_public_key_is_refused(bundle):
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    problems = _problems(bundle["path"], base64.b64encode(stranger).decode())

    assert "checkpoint: the signature does not verify with the published public key" in problems


def test_a_manifest_re_signed_with_another_key_is_refused(bundle, tmp_path):
    forger = Ed25519PrivateKey.generate()
    forger_public = base64.b64encode(auditchain.public_key_raw(forger)).decode()

    def resign(name, content):
        if name == "manifest.json":
            checkpoint = content["checkpoint"]
            checkpoint["signature"] = auditchain.checkpoint_sign(
                forger, content["tenant"], checkpoint["seq"], checkpoint["head_hash"], checkpoint["signed_at"]
            )
            checkpoint["key_id"] = auditchain.key_id(auditchain.public_key_raw(forger))
            content["public_key"] = {"key_id": checkpoint["key_id"], "ed25519": forger_public}
        return content

    forged = _rewrite(bundle["path"], tmp_path / "forged.zip", resign)

    assert auditchain.verify_bundle(str(forged), forger_public).ok  # consistent in itself...
    problems = _problems(forged, bundle["public"])  # ...but not signed by the published key
    assert "checkpoint: the signature does not verify with the published public key" in problems
    assert "the manifest names another public key than the published one given" in problems


def test_the_verifier_runs_alone_from_a_temporary_directory(bundle, tmp_path):
    alone = tmp_path / "regulator"
    alone.mkdir()
    shutil.copy(AUDITCHAIN, alone / "auditchain.py")
    shutil.copy(bundle["path"], alone / "bundle.zip")
    forged = _rewrite(bundle["path"], alone / "forged.zip", _edit_csv)
    command = [sys.executable, "-I", "auditchain.py", "verify-bundle"]

    good = subprocess.run(
        [*command, "bundle.zip", "--public-key", bundle["public"]], cwd=alone, capture_output=True, text=True
    )
    bad = subprocess.run(
        [*command, forged.name, "--public-key", bundle["public"]], cwd=alone, capture_output=True, text=True
    )

    assert (good.returncode, good.stdout.splitlines()[-1]) == (0, "OK"), good.stdout + good.stderr
    assert (bad.returncode, bad.stdout.splitlines()[-1]) == (1, "FAILED"), bad.stdout + bad.stderr
    assert "outputs.csv line 2" in bad.stdout


def test_the_chain_command_checks_a_bundles_segment_against_its_signed_checkpoint(bundle, tenant, tmp_path):
    """docs/compliance.md's second command: a bundle's chain.jsonl, the checkpoint its manifest holds."""
    with zipfile.ZipFile(bundle["path"]) as archive:
        (tmp_path / "chain.jsonl").write_bytes(archive.read("chain.jsonl"))
        checkpoint = json.loads(archive.read("manifest.json"))["checkpoint"]
    (tmp_path / "checkpoints.jsonl").write_text(json.dumps(checkpoint) + "\n")
    command = [sys.executable, "-I", str(AUDITCHAIN), "chain", "chain.jsonl", "--tenant", tenant.slug]
    command += ["--checkpoints", "checkpoints.jsonl", "--public-key", bundle["public"]]

    good = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    checkpoint["head_hash"] = "0" * 64  # a checkpoint that does not match the segment's head
    (tmp_path / "checkpoints.jsonl").write_text(json.dumps(checkpoint) + "\n")
    bad = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 1, bad.stdout + bad.stderr


def test_building_again_is_idempotent_and_a_failed_export_starts_over(bundle, tenant, export_dir):
    job = ComplianceExport.objects.for_tenant(tenant).get(pk=bundle["job"]["id"])
    files = job.files

    assert compliance_export_build(export_id=job.pk).files == files  # done: left alone
    ComplianceExport.objects.for_tenant(tenant).filter(pk=job.pk).update(status="failed", error="killed")
    again = compliance_export_build(export_id=job.pk)

    assert again.status == "done" and again.error == ""
    assert again.files["outputs.jsonl"] == files["outputs.jsonl"]  # the same records, byte for byte
    assert sorted(path.name for path in (export_dir / tenant.slug).iterdir()) == [f"{job.pk}.zip"]


def test_another_tenants_auditor_sees_no_export_of_this_tenant(bundle, other_tenant, client_for):
    outsider = client_for(other_tenant, "auditor")

    assert outsider.get(f"/api/v1/audit/exports/{bundle['job']['id']}").status_code == 404
    assert outsider.get(f"/api/v1/audit/exports/{bundle['job']['id']}/download").status_code == 404
    assert outsider.get("/api/v1/audit/exports").json() == {"next": None, "previous": None, "results": []}
    assert outsider.get("/api/v1/audit/exports?page_size=1").json()["results"] == []


def test_the_exports_list_pages_newest_first_with_a_cursor(tenant, other_tenant, client_for):
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 1, 1, tzinfo=UTC)

    def export_of(owner, day):
        return ComplianceExport.objects.for_tenant(owner).create(
            tenant=owner,
            period_start=start,
            period_end=start + timedelta(days=1),
            created_at=start + timedelta(days=day),
        )

    made = [export_of(tenant, day) for day in range(5)]
    export_of(other_tenant, 10)  # the newest of all, another tenant's
    auditor = client_for(tenant, "auditor")

    seen, url, pages = [], "/api/v1/audit/exports?page_size=2", 0
    while url:
        body = auditor.get(url).json()
        seen += [item["id"] for item in body["results"]]
        url, pages = body["next"], pages + 1
    assert seen == [str(job.pk) for job in reversed(made)]
    assert pages == 3
    assert auditor.get("/api/v1/audit/exports?cursor=bogus").status_code == 422
    assert auditor.get("/api/v1/audit/exports?page_size=0").status_code == 400


def test_a_bad_period_is_refused_before_any_job(tenant, client_for, export_dir):
    auditor = client_for(tenant, "auditor")

    assert auditor.post("/api/v1/audit/exports", {"from": TO, "to": FROM}, format="json").status_code == 422
    assert auditor.post("/api/v1/audit/exports", {"from": "soon", "to": TO}, format="json").status_code == 400
    assert auditor.post("/api/v1/audit/exports", {"to": TO}, format="json").status_code == 400
    # A period that has not begun: its bundle could not carry its own export event.
    future = auditor.post("/api/v1/audit/exports", {"from": "2099-01-01T00:00:00Z", "to": TO}, format="json")
    assert future.status_code == 422 and "future" in future.json()["message"]
    assert not ComplianceExport.objects.for_tenant(tenant).exists()


def test_an_export_whose_message_was_lost_is_sent_again_by_the_sweep(
    tenant,
    other_tenant,
    period,  # noqa: F811 (the seeded period fixture)
    export_dir,
    client_for,
    django_capture_on_commit_callbacks,
):
    from datetime import timedelta

    from django.utils import timezone

    from hitl.tenancy import no_tenant
    from reviews.tasks import compliance_exports_resume_task

    auditor = client_for(tenant, "auditor")
    with django_capture_on_commit_callbacks(execute=False):  # the broker was down: the message never left
        lost = auditor.post("/api/v1/audit/exports", {"from": FROM, "to": TO}, format="json").json()
        fresh = client_for(other_tenant, "auditor").post(
            "/api/v1/audit/exports", {"from": FROM, "to": TO}, format="json"
        )
    assert ComplianceExport.objects.for_tenant(tenant).get(pk=lost["id"]).status == "pending"
    ComplianceExport.objects.for_tenant(tenant).filter(pk=lost["id"]).update(
        created_at=timezone.now() - timedelta(minutes=16)
    )

    with no_tenant(), django_capture_on_commit_callbacks(execute=True):  # as the beat runs it: no scope around it
        assert compliance_exports_resume_task() == 1  # the other tenant's export is too young to count as lost

    assert ComplianceExport.objects.for_tenant(tenant).get(pk=lost["id"]).status == "done"
    assert ComplianceExport.objects.for_tenant(other_tenant).get(pk=fresh.json()["id"]).status == "pending"
    with no_tenant(), django_capture_on_commit_callbacks(execute=True):
        assert compliance_exports_resume_task() == 0  # done: nothing to send again


def test_a_summary_chart_leaves_room_for_its_figures_and_names_a_long_label_whole():
    import re

    from reviews.bundle import _bar_chart

    text = "17 (14 of 17 (82.4 %) sampled)"
    name = "customer-support-assistant-eu-west"
    chart = _bar_chart("Volume", [(name, 17, text), ("low", 3, "3 (0 of 3 (0.0 %) sampled)")])
    width = int(re.search(r'<svg [^>]*width="(\d+)"', chart).group(1))
    figure_x = max(float(x) for x in re.findall(r'<text x="([\d.]+)" y="\d+">', chart))
    assert figure_x + 7 * len(text) <= width  # the longest bar's figure fits, at under 7 px a character
    assert f"<title>{name}</title>" in chart and name[:23] + "\u2026" in chart


def test_the_summary_lists_tiers_in_the_policys_order(tenant):
    from policies.services import policy_publish
    from reviews.bundle import _tier_order

    policy_publish(
        tenant=tenant,
        document={
            "default_tier": "low",
            "tiers": [
                {"name": "low", "review_rate": 0.0, "mode": "parallel", "sla_minutes": 600},
                {"name": "medium", "review_rate": 0.1, "mode": "parallel", "sla_minutes": 120},
                {"name": "critical", "review_rate": 1.0, "mode": "sequential", "sla_minutes": 30},
            ],
        },
    )
    assert _tier_order(tenant, {"critical": 1, "retired": 2, "low": 3, "medium": 4}) == [
        "low",
        "medium",
        "critical",
        "retired",  # a tier the current policy no longer has: last
    ]


def test_an_empty_periods_summary_says_so_instead_of_drawing_empty_charts(tenant):
    from datetime import UTC, datetime, timedelta

    from reviews.bundle import _Figures, summary_html

    start = datetime(2026, 1, 1, tzinfo=UTC)
    job = ComplianceExport(tenant=tenant, period_start=start, period_end=start + timedelta(days=1))
    page = summary_html(tenant=tenant, job=job, figures=_Figures(), policy_versions=[])

    assert page.count("No output was received in this period.") == 6
    assert "<svg" not in page and "<tbody></tbody>" not in page.split("Policy versions")[0]


def test_a_summary_says_when_nobody_reviewed_and_no_judge_was_compared(tenant):
    from datetime import UTC, datetime, timedelta

    from reviews.bundle import _Figures, summary_html

    start = datetime(2026, 1, 1, tzinfo=UTC)
    job = ComplianceExport(tenant=tenant, period_start=start, period_end=start + timedelta(days=1))
    figures = _Figures()
    figures.total, figures.tiers["low"], figures.applications["bot"], figures.decisions["approved"] = 1, 1, 1, 1
    figures.sla["met"] = 1
    page = summary_html(tenant=tenant, job=job, figures=figures, policy_versions=[])

    assert "Nobody reviewed an output of this period." in page
    assert "No output of this period was both judged and reviewed." in page
    assert "No output was received in this period." not in page
    assert page.count("<svg") == 4
