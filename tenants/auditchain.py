"""The audit chain's rules, pure: canonical bytes, chain hash, Merkle tree, checkpoints, verification.

This module imports only the Python standard library and ``cryptography``, so that it
runs on its own as the regulator's offline verifier (``python auditchain.py --help``).
The server writes with these same functions, so writer and verifier cannot drift.
The format is specified in docs/compliance.md ("The audit chain"); in short:

* **Canonical bytes of an event** (its *body*): the UTF-8 encoding of the JSON object
  ``{"actor_key", "actor_person", "actor_role", "at", "data", "kind", "object_id",
  "object_type", "tenant"}`` serialized with keys sorted, no whitespace
  (separators ``,`` and ``:``), non-ASCII characters written as themselves, NaN and
  infinities refused (Python's ``json.dumps(value, sort_keys=True, separators=(",", ":"),
  ensure_ascii=False, allow_nan=False)``). ``at`` is the UTC time as
  ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fraction digits); ``tenant`` is the tenant's
  slug; ``actor_person`` and ``actor_key`` are ids or null; ``object_id`` is a string;
  ``data`` is a JSON object or null, whose numbers are normalized (:func:`json_normalize`).
* **Chain hash**: ``hash[n] = SHA-256(prev || seq || body)`` where ``prev`` is the 32
  raw bytes of ``hash[n-1]`` (32 zero bytes before the first event), ``seq`` the
  event's sequence number as 8 bytes big-endian, ``body`` the canonical bytes. Hashes
  are written as 64 lowercase hex digits; sequence numbers start at 1, without gaps.
* **Merkle tree** over a batch's digests (32 bytes each), RFC 6962 section 2.1: the
  hash of an empty list is SHA-256 of nothing, a leaf is ``SHA-256(0x00 || d)``, a node
  ``SHA-256(0x01 || left || right)``, the split at the largest power of two below n.
* **Checkpoint message**: ``hitl-audit-checkpoint/v1\\n<tenant slug>\\n<seq>\\n<head hash
  hex>\\n<signed_at>\\n`` (UTF-8, ``signed_at`` as ``at`` above), signed with Ed25519;
  the key id is the first 16 hex digits of SHA-256 of the 32-byte raw public key.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64
VERIFY_COLUMNS = (
    "seq",
    "at",
    "kind",
    "actor_person",
    "actor_key",
    "actor_role",
    "object_type",
    "object_id",
    "data",
    "prev_hash",
    "hash",
)
EVENT_FIELDS = ("tenant", "at", "kind", "actor_person", "actor_key", "actor_role", "object_type", "object_id", "data")
CHECKPOINT_PREFIX = "hitl-audit-checkpoint/v1"
_SAFE_INTEGER = 2**53


# --- canonical bytes -------------------------------------------------------------------


def json_normalize(value):
    """The JSON value with numbers in the one form that survives every store unchanged.

    A float with an integral value below 2^53 becomes an int (``1.0`` -> ``1``); any
    other float must be finite with a magnitude below 1e15 (a database may print
    ``1e+16`` back as ``10000000000000000``). Tuples become lists; keys must be strings.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("audit data: NaN and infinities are not JSON")
        if value.is_integer() and abs(value) < _SAFE_INTEGER:
            return int(value)
        if abs(value) >= 1e15:
            raise ValueError(f"audit data: {value!r} is too large for a float; store it as a string")
        return value
    if isinstance(value, Mapping):
        normalized = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"audit data: key {key!r} is not a string")
            normalized[key] = json_normalize(item)
        return normalized
    if isinstance(value, list | tuple):
        return [json_normalize(item) for item in value]
    raise ValueError(f"audit data: {type(value).__name__} is not a JSON value")


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN: the bytes every hash in the chain is taken over."""
    return _ENCODER.encode(json_normalize(value)).encode("utf-8")


def format_time(moment) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC; a string already in that form is returned as is."""
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        raise ValueError("audit time: a naive datetime has no defined UTC instant")
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def event_body(event: Mapping) -> bytes:
    """The canonical bytes of an event (every field of ``EVENT_FIELDS``; no seq, no hashes)."""
    return body_bytes(
        event["tenant"],
        event["at"],
        event["kind"],
        event["actor_person"],
        event["actor_key"],
        event["actor_role"],
        event["object_type"],
        event["object_id"],
        json_normalize(event["data"]),
    )


def body_bytes(tenant, at, kind, actor_person, actor_key, actor_role, object_type, object_id, data) -> bytes:
    """:func:`event_body` from the fields, ``data`` already normalized (as stored: the verifier's fast path)."""
    return _ENCODER.encode(
        {
            "actor_key": None if actor_key is None else int(actor_key),
            "actor_person": None if actor_person is None else int(actor_person),
            "actor_role": actor_role,
            "at": format_time(at),
            "data": data,
            "kind": kind,
            "object_id": str(object_id),
            "object_type": object_type,
            "tenant": tenant,
        }
    ).encode("utf-8")


def chain_hash(prev_hash: str, seq: int, body: bytes) -> str:
    """``SHA-256(prev (32 raw bytes) || seq (8 bytes, big-endian) || body)`` as hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + seq.to_bytes(8, "big") + body).hexdigest()


def digest(value) -> str:
    """SHA-256 of the canonical JSON of ``value``, hex: an output's digest is this over its record."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def canonical_json_of_normalized(value) -> bytes:
    """:func:`canonical_json` of a value that :func:`json_normalize` leaves unchanged (one the
    caller normalized, or built of strings, ints, None and normalized floats): the same bytes,
    without walking the value again. For hot paths that already hold normalized values."""
    return _ENCODER.encode(value).encode("utf-8")


def digest_of_normalized(value) -> str:
    """:func:`digest` of a value that :func:`json_normalize` leaves unchanged (see
    :func:`canonical_json_of_normalized`)."""
    return hashlib.sha256(_ENCODER.encode(value).encode("utf-8")).hexdigest()


# --- Merkle tree (RFC 6962) -----------------------------------------------------------


def _leaf(item: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + item).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = leaves
    # Bottom-up pairing builds the same tree as RFC 6962's recursive split: an odd node is carried up.
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def merkle_root(digests: Iterable[str]) -> str:
    """The Merkle tree hash (RFC 6962) over hex digests, in order, as hex."""
    return _root([_leaf(bytes.fromhex(item)) for item in digests]).hex()


def merkle_proof(digests: list[str], index: int) -> list[str]:
    """The audit path (RFC 6962 PATH(m, D[n])) of the digest at ``index``, as hex, leaf side first."""
    leaves = [_leaf(bytes.fromhex(item)) for item in digests]
    if not 0 <= index < len(leaves):
        raise IndexError(f"no leaf {index} among {len(leaves)}")

    def path(m: int, items: list[bytes]) -> list[bytes]:
        if len(items) == 1:
            return []
        k = _split(len(items))
        if m < k:
            return [*path(m, items[:k]), _root(items[k:])]
        return [*path(m - k, items[k:]), _root(items[:k])]

    return [node.hex() for node in path(index, leaves)]


def merkle_verify(item_digest: str, index: int, size: int, proof: list[str], root: str) -> bool:
    """Whether ``proof`` shows the digest at ``index`` of a tree of ``size`` leaves has ``root`` (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    current = _leaf(bytes.fromhex(item_digest))
    for sibling_hex in proof:
        sibling = bytes.fromhex(sibling_hex)
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            current = _node(sibling, current)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            current = _node(current, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and current.hex() == root


# --- checkpoints -----------------------------------------------------------------------


def checkpoint_message(tenant: str, seq: int, head_hash: str, signed_at) -> bytes:
    return f"{CHECKPOINT_PREFIX}\n{tenant}\n{int(seq)}\n{head_hash}\n{format_time(signed_at)}\n".encode()


def private_key_from_seed(seed_b64: str) -> Ed25519PrivateKey:
    seed = base64.b64decode(seed_b64, validate=True)
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes (base64 of 32 raw bytes)")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_raw(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def checkpoint_sign(private_key: Ed25519PrivateKey, tenant: str, seq: int, head_hash: str, signed_at) -> str:
    """The base64 Ed25519 signature of the checkpoint message."""
    return base64.b64encode(private_key.sign(checkpoint_message(tenant, seq, head_hash, signed_at))).decode()


def checkpoint_valid(public_b64: str, tenant: str, seq: int, head_hash: str, signed_at, signature_b64: str) -> bool:
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
        public.verify(
            base64.b64decode(signature_b64, validate=True), checkpoint_message(tenant, seq, head_hash, signed_at)
        )
    except (InvalidSignature, ValueError):
        return False
    return True


# --- verification ----------------------------------------------------------------------


@dataclass
class ChainReport:
    """What a verification found: ``ok``, or the first bad sequence number and why."""

    tenant: str
    events: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS
    checkpoints: int = 0
    bad_seq: int | None = None
    reason: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.bad_seq is None and not self.problems

    def fail(self, seq: int, reason: str) -> ChainReport:
        if self.bad_seq is None:
            self.bad_seq, self.reason = seq, reason
        return self


def verify_chain(
    events: Iterable[Mapping],
    *,
    tenant: str,
    checkpoints: Iterable[Mapping] = (),
    public_keys: Mapping[str, str] | None = None,
    start_seq: int = 1,
    start_hash: str = GENESIS,
) -> ChainReport:
    """Check a tenant's events, streamed in ``seq`` order, in constant memory.

    Every event's ``seq`` must follow the last (no gap, no repeat), its ``prev_hash``
    must be the last hash, and its ``hash`` must be the recomputed chain hash. Every
    checkpoint (``seq``, ``head_hash``, ``signed_at``, ``signature``, ``key_id``) must be
    signed by a key of ``public_keys`` (key id -> base64 raw key; None skips the
    signature check) and its ``head_hash`` must be the chain's hash at its ``seq``: so
    rows deleted at the end (a checkpoint beyond the last event) or a chain re-hashed
    after an edit (hashes no longer the signed ones) are found. The first problem wins.
    """
    report = ReportBuilder(tenant=tenant, checkpoints=checkpoints, public_keys=public_keys)
    report.report.last_seq, report.report.last_hash = start_seq - 1, start_hash
    for event in events:
        if not report.add(event):
            break
    return report.finish()


class ReportBuilder:
    """The streaming state of :func:`verify_chain` (exposed so a caller can feed events itself)."""

    def __init__(self, *, tenant: str, checkpoints: Iterable[Mapping] = (), public_keys=None):
        self.report = ChainReport(tenant=tenant)
        self.tenant = tenant
        self.pending: dict[int, list[Mapping]] = {}
        for checkpoint in checkpoints:
            self.report.checkpoints += 1
            if public_keys is not None:
                public = public_keys.get(checkpoint["key_id"])
                if public is None:
                    self.report.problems.append(
                        f"checkpoint at seq {checkpoint['seq']}: unknown key id {checkpoint['key_id']}"
                    )
                elif not checkpoint_valid(
                    public,
                    tenant,
                    checkpoint["seq"],
                    checkpoint["head_hash"],
                    checkpoint["signed_at"],
                    checkpoint["signature"],
                ):
                    self.report.problems.append(f"checkpoint at seq {checkpoint['seq']}: bad signature")
            self.pending.setdefault(int(checkpoint["seq"]), []).append(checkpoint)

    def add(self, event: Mapping) -> bool:
        """Check one more event (a mapping with ``seq``, the ``EVENT_FIELDS`` and the hashes);
        False once a problem was found (stop feeding)."""
        if event.get("tenant", self.tenant) != self.tenant:
            self.report.fail(int(event["seq"]), f"event of tenant {event['tenant']!r} in the chain of {self.tenant!r}")
            return False
        return self.add_row(
            event["seq"],
            event["at"],
            event["kind"],
            event["actor_person"],
            event["actor_key"],
            event["actor_role"],
            event["object_type"],
            event["object_id"],
            event["data"],
            event["prev_hash"],
            event["hash"],
        )

    def add_row(self, seq, at, kind, actor_person, actor_key, actor_role, object_type, object_id, data, prev, hash_):
        """:meth:`add` from the fields of a row, in ``VERIFY_COLUMNS`` order (the streaming fast path)."""
        report = self.report
        seq = int(seq)
        expected = report.last_seq + 1
        if seq != expected:
            what = "missing" if seq > expected else "repeated or out of order"
            report.fail(expected if seq > expected else seq, f"seq {expected} expected, found {seq}: rows {what}")
            return False
        if prev != report.last_hash:
            report.fail(seq, "prev_hash is not the previous event's hash: the chain is broken here")
            return False
        fields = (self.tenant, at, kind, actor_person, actor_key, actor_role, object_type, object_id)
        try:
            # The stored data as it is first: the writer stored it normalized (the fast path).
            recomputed = chain_hash(prev, seq, body_bytes(*fields, data))
            if recomputed != hash_:  # data not in normalized form (e.g. 1.0): the spec's form decides
                recomputed = chain_hash(prev, seq, body_bytes(*fields, json_normalize(data)))
        except (ValueError, TypeError) as error:
            report.fail(seq, f"the event cannot be put in canonical form: {error}")
            return False
        if recomputed != hash_:
            report.fail(seq, "hash does not match the event's content: the row was altered")
            return False
        report.events += 1
        report.last_seq, report.last_hash = seq, recomputed
        if self.pending:
            for checkpoint in self.pending.pop(seq, ()):
                if checkpoint["head_hash"] != recomputed:
                    report.fail(seq, "the signed checkpoint at this seq names another hash: the chain was rewritten")
                    return False
        return True

    def finish(self, *, head: tuple[int, str] | None = None) -> ChainReport:
        """End of the stream: checkpoints past the last event mean rows were cut off; ``head``
        (seq, hash) of the counter row must be where the chain ends."""
        report = self.report
        for checkpoint in self.pending.pop(0, ()):  # a checkpoint of the empty chain
            if checkpoint["head_hash"] != GENESIS:
                report.fail(1, "the signed checkpoint at seq 0 names a hash other than the genesis hash")
        beyond = [seq for seq in self.pending if seq > report.last_seq]
        if report.bad_seq is None and beyond:
            report.fail(
                report.last_seq + 1,
                f"a signed checkpoint names seq {min(beyond)} but the chain ends at {report.last_seq}: "
                "rows were removed",
            )
        if report.bad_seq is None and head is not None:
            head_seq, head_hash = head
            if head_seq != report.last_seq:
                report.fail(
                    min(head_seq, report.last_seq) + 1,
                    f"the counter row says the chain ends at seq {head_seq}, the events end at {report.last_seq}",
                )
            elif head_hash != report.last_hash:
                report.fail(report.last_seq, "the counter row's hash is not the last event's hash")
        return report


def report_text(report: ChainReport) -> str:
    lines = [
        f"tenant {report.tenant}: {report.events} events, last seq {report.last_seq}, "
        f"head {report.last_hash}, {report.checkpoints} checkpoints"
    ]
    lines += [f"problem: {problem}" for problem in report.problems]
    if report.bad_seq is not None:
        lines.append(f"FIRST BAD SEQ {report.bad_seq}: {report.reason}")
    lines.append("OK" if report.ok else "FAILED")
    return "\n".join(lines)


# --- compliance bundles (reviews/bundle.py writes them; docs/compliance.md) -----------------

# The export record's fields an output's digest covers, and the name each has in the digest.
OUTPUT_DIGEST_FIELDS = {
    "application": "application",
    "content_hash": "content_hash",
    "sampling_reason": "decision_reason",
    "external_id": "external_id",
    "id": "id",
    "policy_version": "policy_version",
    "received_at": "received_at",
    "tier": "risk_tier",
    "sampling_draw": "sampling_draw",
}
_FORMULA_GUARDED = ("=", "+", "-", "@", "\t", "\r", "'")


# The tier and sampling reason as classified at ingest, in a record whose tier or reason changed
# since (the judges' completion): the digest covers these. Null (empty in the CSV) when unchanged,
# and absent from bundles made before they were exported.
INGEST_CLASSIFICATION_FIELDS = {"received_tier": "risk_tier", "received_reason": "decision_reason"}


def output_record_digest(record: Mapping, tenant: str) -> str:
    """An output's digest recomputed from its export record (JSONL object or typed CSV row)."""
    value = {name: record[field] for field, name in OUTPUT_DIGEST_FIELDS.items()}
    if any(record.get(field) is not None for field in INGEST_CLASSIFICATION_FIELDS):
        value.update({name: record.get(field) or "" for field, name in INGEST_CLASSIFICATION_FIELDS.items()})
    value["tenant"] = tenant
    return digest(value)


def _csv_value(cell: str) -> str:
    """A CSV cell as written before the export's formula guard prefixed a quote."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in _FORMULA_GUARDED and cell[1:2] != "" else cell


def csv_record(row: Mapping[str, str]) -> dict:
    """The typed fields a digest covers, from a CSV row of outputs.csv."""
    record = {field: _csv_value(row[field]) for field in OUTPUT_DIGEST_FIELDS}
    record.update({field: _csv_value(row.get(field) or "") or None for field in INGEST_CLASSIFICATION_FIELDS})
    record["policy_version"] = int(record["policy_version"]) if record["policy_version"] else None
    record["sampling_draw"] = float(record["sampling_draw"]) if record["sampling_draw"] else None
    return record


@dataclass
class BundleReport:
    """What ``verify_bundle`` found: the problems (empty when the bundle verifies) and what it checked."""

    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(path: str, public_key_b64: str) -> BundleReport:
    """Check a compliance bundle (a zip) against the tenant's published Ed25519 public key.

    1. every file's SHA-256 is the manifest's;
    2. the checkpoint is signed by ``public_key_b64`` (not merely by the key the manifest names);
    3. the chain segment links event to event up to the checkpoint's head, every hash recomputed;
    4. an ``export.bundled`` event of the segment commits to the SHA-256 of the outputs files,
       the summary and the leaves (so a file re-hashed in the manifest is still caught);
    5. each ``output.received`` batch's leaves recompute to the Merkle root its event holds;
    6. every record of outputs.jsonl and every row of outputs.csv recomputes to the digest of
       its leaf, and both files hold the same outputs in the same order.
    """
    import csv
    import io
    import zipfile

    report = BundleReport()
    problems = report.problems
    with zipfile.ZipFile(path) as bundle:
        names = set(bundle.namelist())
        manifest = json.loads(bundle.read("manifest.json"))
        tenant = manifest["tenant"]
        for name, expected in manifest["files"].items():
            if name not in names:
                problems.append(f"{name}: listed in the manifest, missing from the bundle")
                continue
            sha = hashlib.sha256()
            with bundle.open(name) as handle:
                for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                    sha.update(block)
            if sha.hexdigest() != expected["sha256"]:
                problems.append(f"{name}: SHA-256 is not the manifest's: the file was changed")
        report.checked.append(f"SHA-256 of {len(manifest['files'])} files")

        checkpoint = manifest["checkpoint"]
        if manifest.get("public_key", {}).get("ed25519") != public_key_b64:
            problems.append("the manifest names another public key than the published one given")
        if not checkpoint_valid(
            public_key_b64,
            tenant,
            checkpoint["seq"],
            checkpoint["head_hash"],
            checkpoint["signed_at"],
            checkpoint["signature"],
        ):
            problems.append("checkpoint: the signature does not verify with the published public key")
        report.checked.append(f"checkpoint signature at seq {checkpoint['seq']}")

        def segment():
            with bundle.open(manifest["chain"]["segment"]) as handle:
                for line in io.TextIOWrapper(handle, encoding="utf-8"):
                    if line.strip():
                        yield json.loads(line)

        batches: dict[int, dict] = {}
        export_files = None
        builder = None
        for event in segment():
            if builder is None:
                builder = ReportBuilder(tenant=tenant, checkpoints=[checkpoint], public_keys=None)
                builder.report.last_seq, builder.report.last_hash = int(event["seq"]) - 1, event["prev_hash"]
            if not builder.add(event):
                break
            if event["kind"] == "output.received" and event.get("data"):
                batches[int(event["seq"])] = event["data"]
            if event["kind"] == "export.bundled" and event["object_id"] == manifest.get("export_id"):
                export_files = (event.get("data") or {}).get("files")
        if builder is None:
            problems.append("chain: the segment holds no event")
        else:
            chain = builder.finish(head=(checkpoint["seq"], checkpoint["head_hash"]))
            if not chain.ok:
                problems.append(f"chain: first bad seq {chain.bad_seq}: {chain.reason}")
            report.checked.append(f"chain segment of {chain.events} events up to seq {chain.last_seq}")
        if export_files is None:
            problems.append("chain: no export.bundled event of this export in the segment")
        else:
            for name, sha in export_files.items():
                if manifest["files"].get(name, {}).get("sha256") != sha:
                    problems.append(f"{name}: its SHA-256 is not the one the signed chain committed to")

        committed: dict[str, str] = {}
        with bundle.open(manifest["chain"]["leaves"]) as handle:
            for line in io.TextIOWrapper(handle, encoding="utf-8"):
                if not line.strip():
                    continue
                leaves = json.loads(line)
                event = batches.get(int(leaves["seq"]))
                if event is None:
                    problems.append(f"leaves of seq {leaves['seq']}: no output.received event there in the segment")
                    continue
                if len(leaves["digests"]) != len(event["ids"]) or merkle_root(leaves["digests"]) != event["root"]:
                    problems.append(f"leaves of seq {leaves['seq']}: they do not make the event's Merkle root")
                    continue
                committed.update(zip(event["ids"], leaves["digests"], strict=True))
        report.checked.append(f"{len(committed)} committed output digests")

        json_ids = []
        with bundle.open("outputs.jsonl") as handle:
            for number, line in enumerate(io.TextIOWrapper(handle, encoding="utf-8"), 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                json_ids.append(record["id"])
                if committed.get(record["id"]) != output_record_digest(record, tenant):
                    problems.append(f"outputs.jsonl line {number} ({record['id']}): not committed to by the chain")
        csv_ids = []
        with bundle.open("outputs.csv") as handle:
            rows = csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8-sig", newline=""))
            for number, row in enumerate(rows, 2):
                csv_ids.append(row["id"])
                if committed.get(row["id"]) != output_record_digest(csv_record(row), tenant):
                    problems.append(f"outputs.csv line {number} ({row['id']}): not committed to by the chain")
        if json_ids != csv_ids:
            problems.append("outputs.csv and outputs.jsonl do not hold the same outputs in the same order")
        if len(json_ids) != manifest["outputs"]:
            problems.append(f"the manifest counts {manifest['outputs']} outputs, outputs.jsonl holds {len(json_ids)}")
        report.checked.append(f"{len(json_ids)} records in each of outputs.jsonl and outputs.csv")
    return report


# --- command line ----------------------------------------------------------------------


def _jsonl(path: str) -> Iterator[dict]:
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a HITL audit chain offline (docs/compliance.md).")
    commands = parser.add_subparsers(dest="command", required=True)
    chain = commands.add_parser("chain", help="verify events (JSON lines, in seq order) and signed checkpoints")
    chain.add_argument("events", help="JSON lines: seq, at, kind, actor_person, actor_key, actor_role, ...")
    chain.add_argument("--tenant", required=True, help="the tenant's slug")
    chain.add_argument("--checkpoints", help="JSON lines: seq, head_hash, signed_at, signature, key_id")
    chain.add_argument("--public-key", action="append", default=[], help="base64 raw Ed25519 public key (repeatable)")
    bundle = commands.add_parser("verify-bundle", help="verify a compliance bundle (zip) offline")
    bundle.add_argument("bundle", help="the bundle, e.g. compliance-acme-<export id>.zip")
    bundle.add_argument("--public-key", required=True, help="the tenant's published base64 raw Ed25519 public key")
    args = parser.parse_args(argv)
    if args.command == "verify-bundle":
        found = verify_bundle(args.bundle, args.public_key)
        print("\n".join([f"checked: {item}" for item in found.checked] + [f"problem: {p}" for p in found.problems]))
        print("OK" if found.ok else "FAILED")
        return 0 if found.ok else 1
    keys = {key_id(base64.b64decode(key)): key for key in args.public_key}
    checkpoints = list(_jsonl(args.checkpoints)) if args.checkpoints else []
    report = verify_chain(_jsonl(args.events), tenant=args.tenant, checkpoints=checkpoints, public_keys=keys or None)
    print(report_text(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
