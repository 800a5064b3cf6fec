"""The compliance bundle: a background export of a period that a regulator can verify offline.

``compliance_export_request`` records the request (and its audit event) and enqueues
``reviews.tasks.compliance_export_task`` on commit; the task calls
:func:`compliance_export_build`, which writes, in one pass over the period's outputs
(:func:`reviews.export.export_records`, constant memory):

- ``outputs.csv`` and ``outputs.jsonl``: the export's records;
- ``summary.html``: figures and inline SVG charts (volume and sampled share per tier and
  application, decisions, reviewers, SLA, judge-vs-human agreement), printable to PDF;
- ``leaves.jsonl``: for each ``output.received`` batch event that covers an exported output,
  the ordered digests it commits to (its Merkle tree's leaves);
- ``chain.jsonl``: the tenant's audit events from the first at or after the period's start
  up to the head signed at export time;
- ``manifest.json``: the period, the tenant, the policy versions in force, each file's
  SHA-256, the chain head, the signed checkpoint and the public key.

Before the checkpoint is signed, an ``export.bundled`` audit event commits to the SHA-256
of the outputs files, the summary and the leaves, so that the signature covers them too.
``tenants/auditchain.py verify-bundle`` checks all of it (docs/compliance.md).
"""

import hashlib
import html
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import orjson
from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from hitl.db import created_before
from hitl.enqueue import enqueue_on_commit
from hitl.errors import NotFoundError, RuleViolationError
from policies.models import Policy
from policies.selectors import compiled_policy
from reviews.export import CSV_COLUMNS, _iso, csv_line, csv_record_line, export_records
from reviews.models import ComplianceExport, ExportStatus, Output
from tenants import auditchain
from tenants.audit import Actor, audit_checkpoint, audit_record, public_key
from tenants.models import AuditEvent, Tenant

logger = logging.getLogger(__name__)

BUNDLE_FORMAT = "hitl-compliance-bundle/v1"
COMMITTED_FILES = ("outputs.csv", "outputs.jsonl", "summary.html", "leaves.jsonl")
PROGRESS_EVERY = 5000


def export_dir() -> Path:
    return Path(settings.HITL_EXPORT_DIR)


def compliance_export_request(*, tenant: Tenant, start: datetime, end: datetime, actor: Actor) -> ComplianceExport:
    """Record an export of ``[start, end)`` and enqueue its building once this commits.

    A period that starts after now is refused: nothing of it has happened, and its bundle could
    not carry the export's own event (written now, before the period's chain segment begins)."""
    from reviews.tasks import compliance_export_task

    if start > timezone.now():
        message = "The period starts in the future: nothing in it can be exported yet."
        raise RuleViolationError(f"from: {message}", fields={"from": [message]})

    with transaction.atomic():
        job = ComplianceExport.objects.for_tenant(tenant).create(
            period_start=start,
            period_end=end,
            requested_by=actor.person if actor.person is not None else getattr(actor.key, "user", None),
            requested_key=actor.key,
            requested_role=actor.role,
        )
        audit_record(
            tenant=tenant,
            actor=actor,
            kind="export.requested",
            object_type="compliance_export",
            object_id=job.pk,
            data={"from": _iso(start), "to": _iso(end)},
        )
        enqueue_on_commit(lambda: compliance_export_task.delay(str(job.pk)), what=f"compliance export {job.pk}")
    return job


# An export still pending this long after its request lost its message (the broker was
# down when it was sent); one running past its task's hard time limit lost its worker.
EXPORT_RESEND_AFTER = timedelta(minutes=15)
EXPORT_STALE_AFTER = timedelta(hours=6, minutes=10)


def compliance_exports_resume(*, now: datetime | None = None, limit: int = 100) -> int:
    """Send the stuck exports of every tenant again (the beat's sweep, across tenants);
    building is idempotent, so a message that was only late costs a second build, not a
    wrong bundle. Returns how many were sent."""
    from reviews.tasks import compliance_export_task

    now = now or timezone.now()
    stuck = list(
        ComplianceExport.unscoped.filter(
            Q(status=ExportStatus.PENDING, created_at__lt=now - EXPORT_RESEND_AFTER)
            | Q(status=ExportStatus.RUNNING, started_at__lt=now - EXPORT_STALE_AFTER)
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    for export_id in stuck:
        enqueue_on_commit(
            lambda export_id=export_id: compliance_export_task.delay(str(export_id)),
            what=f"compliance export {export_id} (resumed)",
        )
    return len(stuck)


def compliance_export_get(*, tenant: Tenant, export_id) -> ComplianceExport:
    job = ComplianceExport.objects.for_tenant(tenant).filter(pk=export_id).first()
    if job is None:
        raise NotFoundError("Not found.")
    return job


def compliance_export_list(*, tenant: Tenant) -> QuerySet:
    """The tenant's exports, for the API's cursor pages (newest first: the pagination orders them)."""
    return ComplianceExport.objects.for_tenant(tenant)


def compliance_exports(*, tenant: Tenant, limit: int = 50, before=None) -> list[ComplianceExport]:
    """The tenant's exports, newest first (the auditor's pages list these); with ``before`` (an
    export's id), those made before it. An id that is not one of the tenant's exports lists none."""
    exports = ComplianceExport.objects.for_tenant(tenant).order_by("-created_at", "-id")
    if before is not None and (exports := created_before(exports, before)) is None:
        return []
    return list(exports[:limit])


def compliance_export_archive(*, tenant: Tenant, export_id) -> Path:
    """The finished bundle's zip; 404 while it is not ready (or of another tenant)."""
    job = compliance_export_get(tenant=tenant, export_id=export_id)
    path = export_dir() / job.archive if job.archive else None
    if job.status != ExportStatus.DONE or path is None or not path.is_file():
        raise NotFoundError("This export has no bundle to download (yet).", code="not_ready")
    return path


# --- building ------------------------------------------------------------------------------


class _HashingWriter:
    """A binary file that keeps the SHA-256 and size of what was written."""

    def __init__(self, path: Path):
        self.handle = open(path, "wb")  # noqa: SIM115 (closed by close())
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.sha.update(data)
        self.size += len(data)

    def close(self) -> dict:
        self.handle.close()
        return {"sha256": self.sha.hexdigest(), "bytes": self.size}


class _Figures:
    """What the summary shows, counted as the records stream past (memory: per tier, application, reviewer)."""

    def __init__(self):
        self.total = 0
        self.tiers: Counter = Counter()
        self.tiers_sampled: Counter = Counter()
        self.applications: Counter = Counter()
        self.applications_sampled: Counter = Counter()
        self.decisions: Counter = Counter()
        self.reviewers: Counter = Counter()
        self.sla: Counter = Counter()
        self.agreement: dict[str, Counter] = {}
        self.policy_versions: set = set()

    def add(self, record: dict) -> None:
        self.total += 1
        tier, application = record["tier"] or "(none)", record["application"]
        self.tiers[tier] += 1
        self.applications[application] += 1
        if record["review_required"]:
            self.tiers_sampled[tier] += 1
            self.applications_sampled[application] += 1
        self.decisions[record["final_decision"] or "undecided"] += 1
        for review in record["reviews"]:
            self.reviewers[review["reviewer"]] += 1
        self.sla[record["sla"]] += 1
        if record["policy_version"] is not None:
            self.policy_versions.add(record["policy_version"])
        human = record["final_decision"] if record["reviews"] else None
        if human:
            human_passes = human == "approved"
            for judge in record["judges"]:
                if judge["result"] in ("pass", "fail"):
                    counts = self.agreement.setdefault(judge["judge"], Counter())
                    counts["compared"] += 1
                    counts["agree"] += (judge["result"] == "pass") == human_passes


def _policy_versions(tenant: Tenant, start: datetime, end: datetime, used: set) -> list[dict]:
    """The versions in force during the period: the one in force at its start, those published
    during it, and any an exported output names."""
    policy = Policy.objects.for_tenant(tenant).first()
    if policy is None:
        return []
    records = list(policy.history.order_by("history_date").values("version", "history_date", "document"))
    in_force = set(used)
    before = [record["version"] for record in records if record["history_date"] < start]
    if before:
        in_force.add(before[-1])
    in_force |= {record["version"] for record in records if start <= record["history_date"] < end}
    seen, versions = set(), []
    for record in records:
        if record["version"] in in_force and record["version"] not in seen:
            seen.add(record["version"])
            versions.append(
                {
                    "version": record["version"],
                    "published_at": _iso(record["history_date"]),
                    "document_sha256": auditchain.digest(record["document"]),
                }
            )
    return versions


def _event_line(event: AuditEvent, slug: str) -> bytes:
    return orjson.dumps(
        {
            "seq": event.seq,
            "tenant": slug,
            "at": auditchain.format_time(event.at),
            "kind": event.kind,
            "actor_person": event.actor_person_id,
            "actor_key": event.actor_key_id,
            "actor_role": event.actor_role,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "data": event.data,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
        }
    )


def _write_leaves(tenant: Tenant, start: datetime, head_seq: int, exported: "_IdFilter", out: _HashingWriter) -> None:
    """For each ``output.received`` event from the period's start on that covers an exported
    output, the digests of its leaves in order (from the outputs' stored ``audit_digest``)."""
    events = (
        AuditEvent.objects.for_tenant(tenant)
        .filter(kind="output.received", at__gte=start, seq__lte=head_seq)
        .order_by("seq")
        .values_list("seq", "data")
        .iterator(chunk_size=500)
    )
    for seq, data in events:
        ids = (data or {}).get("ids") or []
        if not any(exported.may_contain(item) for item in ids):
            continue
        digests = dict(Output.objects.for_tenant(tenant).filter(pk__in=ids).values_list("id", "audit_digest"))
        digests = {str(key): value for key, value in digests.items()}
        out.write(orjson.dumps({"seq": seq, "digests": [digests.get(item, "") for item in ids]}) + b"\n")


class _IdFilter:
    """A Bloom filter of the exported ids (about 1.2 MB per million at 1 % false positives):
    which batch events may cover an exported output, without holding every id."""

    def __init__(self, bits: int = 1 << 23):
        self.bits = bits
        self.array = bytearray(bits // 8)

    def _positions(self, item: str):
        value = hashlib.blake2b(item.encode(), digest_size=16).digest()
        for index in range(4):
            yield int.from_bytes(value[index * 4 : index * 4 + 4], "big") % self.bits

    def add(self, item: str) -> None:
        for position in self._positions(item):
            self.array[position >> 3] |= 1 << (position & 7)

    def may_contain(self, item: str) -> bool:
        return all(self.array[position >> 3] & (1 << (position & 7)) for position in self._positions(item))


def compliance_export_build(*, export_id) -> ComplianceExport:
    """Build the bundle of one export (idempotent: a finished export is left alone; a failed
    or interrupted one starts over)."""
    job = ComplianceExport.unscoped.select_related("tenant").get(pk=export_id)
    if job.status == ExportStatus.DONE:
        return job
    tenant = job.tenant
    ComplianceExport.objects.for_tenant(tenant).filter(pk=job.pk).update(
        status=ExportStatus.RUNNING, started_at=timezone.now(), outputs_done=0, error=""
    )
    target = export_dir() / tenant.slug
    target.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"export-{job.pk}-", dir=target))
    try:
        manifest = _build(job, tenant, work)
        archive = target / f"{job.pk}.zip"
        partial = work / "bundle.zip"  # moved into place whole: a reader never sees half a zip
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for name in manifest["files"]:
                bundle.write(work / name, name)
            bundle.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(partial, archive)
    except Exception as error:
        ComplianceExport.objects.for_tenant(tenant).filter(pk=job.pk).update(
            status=ExportStatus.FAILED, error=f"{type(error).__name__}: {error}"[:2000], finished_at=timezone.now()
        )
        if isinstance(error, OperationalError):
            raise  # the database blinked: the task retries, starting over
        logger.exception("compliance export %s failed", job.pk)
        job.refresh_from_db()
        return job
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ComplianceExport.objects.for_tenant(tenant).filter(pk=job.pk).update(
        status=ExportStatus.DONE,
        files=manifest["files"],
        archive=str(archive.relative_to(export_dir())),
        outputs_total=manifest["outputs"],
        outputs_done=manifest["outputs"],
        finished_at=timezone.now(),
    )
    job.refresh_from_db()
    return job


def _build(job: ComplianceExport, tenant: Tenant, work: Path) -> dict:
    start, end = job.period_start, job.period_end
    outputs_total = Output.objects.for_tenant(tenant).filter(received_at__gte=start, received_at__lt=end).count()
    ComplianceExport.objects.for_tenant(tenant).filter(pk=job.pk).update(outputs_total=outputs_total)
    csv_out, jsonl_out = _HashingWriter(work / "outputs.csv"), _HashingWriter(work / "outputs.jsonl")
    figures, exported = _Figures(), _IdFilter()
    csv_out.write(("\ufeff" + csv_line(list(CSV_COLUMNS))).encode())
    csv_lines, json_lines = [], []
    for record in export_records(tenant=tenant, start=start, end=end):
        figures.add(record)
        exported.add(record["id"])
        csv_lines.append(csv_record_line(record))
        json_lines.append(orjson.dumps(record))
        if len(json_lines) == PROGRESS_EVERY:
            csv_out.write("".join(csv_lines).encode())
            jsonl_out.write(b"\n".join(json_lines) + b"\n")
            csv_lines, json_lines = [], []
            ComplianceExport.objects.for_tenant(tenant).filter(pk=job.pk).update(outputs_done=figures.total)
    if json_lines:
        csv_out.write("".join(csv_lines).encode())
        jsonl_out.write(b"\n".join(json_lines) + b"\n")
    files = {"outputs.csv": csv_out.close(), "outputs.jsonl": jsonl_out.close()}
    policy_versions = _policy_versions(tenant, start, end, figures.policy_versions)
    summary = _HashingWriter(work / "summary.html")
    summary.write(summary_html(tenant=tenant, job=job, figures=figures, policy_versions=policy_versions).encode())
    files["summary.html"] = summary.close()

    # The leaves of the batches before the export event, then the export event, then the checkpoint.
    head_before = AuditEvent.objects.for_tenant(tenant).order_by("-seq").values_list("seq", flat=True).first() or 0
    leaves = _HashingWriter(work / "leaves.jsonl")
    _write_leaves(tenant, start, head_before, exported, leaves)
    files["leaves.jsonl"] = leaves.close()
    with transaction.atomic():
        audit_record(
            tenant=tenant,
            actor=Actor(person=job.requested_by, key=job.requested_key, role=job.requested_role or "system"),
            kind="export.bundled",
            object_type="compliance_export",
            object_id=job.pk,
            data={
                "from": _iso(start),
                "to": _iso(end),
                "outputs": figures.total,
                "files": {name: files[name]["sha256"] for name in COMMITTED_FILES},
            },
        )
    checkpoint = audit_checkpoint(tenant)
    first_seq = (
        AuditEvent.objects.for_tenant(tenant)
        .filter(at__gte=start, seq__lte=checkpoint.seq)
        .order_by("seq")
        .values_list("seq", flat=True)
        .first()
    )
    chain = _HashingWriter(work / "chain.jsonl")
    segment = (
        AuditEvent.objects.for_tenant(tenant)
        .filter(seq__gte=first_seq or checkpoint.seq + 1, seq__lte=checkpoint.seq)
        .order_by("seq")
        .iterator(chunk_size=2000)
    )
    for event in segment:
        chain.write(_event_line(event, tenant.slug) + b"\n")
    files["chain.jsonl"] = chain.close()
    key_id, public = public_key()
    return {
        "format": BUNDLE_FORMAT,
        "export_id": str(job.pk),
        "tenant": tenant.slug,
        "period": {"from": _iso(start), "to": _iso(end)},
        "generated_at": _iso(timezone.now()),
        "requested_by": job.requested_by.get_username() if job.requested_by_id else None,
        "outputs": figures.total,
        "policy_versions": policy_versions,
        "files": {name: files[name] for name in (*COMMITTED_FILES, "chain.jsonl")},
        "chain": {
            "segment": "chain.jsonl",
            "first_seq": first_seq,
            "head": {"seq": checkpoint.seq, "hash": checkpoint.head_hash},
            "leaves": "leaves.jsonl",
        },
        "checkpoint": {
            "seq": checkpoint.seq,
            "head_hash": checkpoint.head_hash,
            "signed_at": auditchain.format_time(checkpoint.signed_at),
            "signature": checkpoint.signature,
            "key_id": checkpoint.key_id,
        },
        "public_key": {"key_id": key_id, "ed25519": public},
    }


# --- the summary -------------------------------------------------------------------------------


NO_OUTPUTS = "No output was received in this period."


def _bar_chart(
    title: str,
    rows: list[tuple[str, float, str]],
    *,
    maximum: float | None = None,
    columns=("", "figure"),
    empty: str = NO_OUTPUTS,
) -> str:
    """A horizontal bar chart as inline SVG (no script; prints as drawn), beside its table; with
    no rows, a sentence saying why (``empty``) instead of an empty frame."""
    if not rows:
        return f'<section class="chart"><h2>{html.escape(title)}</h2><p class="none">{html.escape(empty)}</p></section>'
    bar_height, label_width, bar_width = 22, 160, 260
    # Room after the longest bar for the longest figure (12 px text: under 7 px a character), so
    # that no figure is cut off, on screen or on paper.
    figure_width = 8 + 7 * max([len(text) for _, _, text in rows] + [4])
    width = label_width + bar_width + figure_width
    top = max([value for _, value, _ in rows] + [maximum or 0, 1])
    height = bar_height * max(len(rows), 1) + 10
    bars = []
    for index, (label, value, text) in enumerate(rows):
        y = 5 + index * bar_height
        length = bar_width * (value / top)
        shown = label if len(label) <= 24 else label[:23] + "\u2026"  # the whole name in the table beside
        bars.append(
            f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end"><title>{html.escape(label)}</title>'
            f"{html.escape(shown)}</text>"
            f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{bar_height - 6}" class="bar"/>'
            f'<text x="{label_width + length + 4:.1f}" y="{y + 15}">{html.escape(text)}</text>'
        )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">{"".join(bars)}</svg>'
    )
    table_rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(text)}</td></tr>" for label, _, text in rows
    )
    return (
        f'<section class="chart"><h2>{html.escape(title)}</h2><div class="pair">{svg}'
        f"<table><thead><tr><th>{html.escape(columns[0])}</th><th>{html.escape(columns[1])}</th></tr></thead>"
        f"<tbody>{table_rows}</tbody></table></div></section>"
    )


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({100 * part / whole:.1f} %)" if whole else "0"


SUMMARY_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #111; }
h1 { font-size: 1.5em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #bbb; padding: 2px 8px; }
.pair { display: flex; gap: 2em; align-items: flex-start; flex-wrap: wrap; }
svg text { font-size: 12px; } .bar { fill: #3b6ea5; }
.chart { break-inside: avoid; } .none { color: #555; }
@media print { body { margin: 0; } }
"""


def _tier_order(tenant: Tenant, tiers) -> list[str]:
    """The tiers as the tenant's policy lists them (lowest risk first, as its admin wrote them), then
    any the current policy no longer has, by name."""
    try:
        listed = list(compiled_policy(tenant=tenant).tiers)
    except Exception:  # a summary is never refused for want of a policy
        listed = []
    rank = {name: position for position, name in enumerate(listed)}
    return sorted(tiers, key=lambda name: (rank.get(name, len(rank)), name))


def summary_html(*, tenant: Tenant, job: ComplianceExport, figures: _Figures, policy_versions: list[dict]) -> str:
    total = figures.total
    sections = [
        _bar_chart(
            "Volume and sampled share per tier",
            columns=("tier", "outputs (sampled for review)"),
            rows=[
                (
                    tier,
                    figures.tiers[tier],
                    f"{figures.tiers[tier]} ({_share(figures.tiers_sampled[tier], figures.tiers[tier])} sampled)",
                )
                for tier in _tier_order(tenant, figures.tiers)
            ],
        ),
        _bar_chart(
            "Volume and sampled share per application",
            columns=("application", "outputs (sampled for review)"),
            rows=[
                (application, count, f"{count} ({_share(figures.applications_sampled[application], count)} sampled)")
                for application, count in sorted(figures.applications.items())
            ],
        ),
        _bar_chart(
            "Final decisions",
            columns=("decision", "outputs"),
            rows=[(name, count, _share(count, total)) for name, count in sorted(figures.decisions.items())],
        ),
        _bar_chart(
            "Reviews per reviewer",
            columns=("reviewer", "reviews"),
            rows=[(name, count, str(count)) for name, count in figures.reviewers.most_common(30)],
            empty="Nobody reviewed an output of this period." if total else NO_OUTPUTS,
        ),
        _bar_chart(
            "SLA (tier's time from receipt to decision)",
            columns=("SLA", "outputs"),
            rows=[(name, count, _share(count, total)) for name, count in sorted(figures.sla.items())],
        ),
        _bar_chart(
            "Judge-vs-human agreement (reviewed outputs; a pass agrees with an approval)",
            columns=("judge", "agreed with the people"),
            rows=[
                (judge, counts["agree"] / counts["compared"] * 100, f"{_share(counts['agree'], counts['compared'])}")
                for judge, counts in sorted(figures.agreement.items())
            ],
            maximum=100,
            empty="No output of this period was both judged and reviewed." if total else NO_OUTPUTS,
        ),
    ]
    versions = "".join(
        f"<tr><td>{item['version']}</td><td>{item['published_at']}</td><td><code>{item['document_sha256']}</code></td></tr>"
        for item in policy_versions
    )
    return (
        # (an empty icon: a browser asks for no favicon)
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        f"<title>Compliance summary: {html.escape(tenant.slug)}</title><style>{SUMMARY_STYLE}</style></head><body>"
        f"<h1>Compliance summary: {html.escape(tenant.name or tenant.slug)}</h1>"
        f"<p>Outputs received from {_iso(job.period_start)} to {_iso(job.period_end)} (end excluded): "
        f"<strong>{total}</strong>. Export {job.pk}, generated {_iso(timezone.now())}. The records are in "
        "outputs.csv and outputs.jsonl; auditchain.py verify-bundle checks this bundle offline "
        "(docs/compliance.md).</p>"
        + "".join(sections)
        + "<h2>Policy versions in force</h2><table><thead><tr><th>version</th><th>published</th>"
        f"<th>SHA-256 of the document</th></tr></thead><tbody>{versions}</tbody></table></body></html>"
    )
