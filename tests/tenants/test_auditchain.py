"""The chain's pure rules (tenants/auditchain.py): canonical bytes, Merkle tree, checkpoints, verifier."""

import base64
import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tenants import auditchain as ac

SEED = base64.b64encode(bytes(range(32))).decode()


def event(seq, prev, **fields):
    base = {
        "tenant": "acme",
        "at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        "kind": "policy.published",
        "actor_person": 7,
        "actor_key": None,
        "actor_role": "admin",
        "object_type": "policy",
        "object_id": "3",
        "data": {"before": {"rate": 0.5}, "after": {"rate": 1.0}},
    }
    base.update(fields)
    body = ac.event_body(base)
    return {**base, "seq": seq, "prev_hash": prev, "hash": ac.chain_hash(prev, seq, body)}


def chain(n):
    events, prev = [], ac.GENESIS
    for seq in range(1, n + 1):
        item = event(seq, prev, object_id=str(seq))
        events.append(item)
        prev = item["hash"]
    return events


def test_canonical_bytes_are_the_documented_format():
    body = ac.event_body(event(1, ac.GENESIS))
    assert body == (
        b'{"actor_key":null,"actor_person":7,"actor_role":"admin","at":"2026-01-02T03:04:05.000006Z",'
        b'"data":{"after":{"rate":1},"before":{"rate":0.5}},"kind":"policy.published","object_id":"3",'
        b'"object_type":"policy","tenant":"acme"}'
    )
    expected = hashlib.sha256(bytes(32) + (1).to_bytes(8, "big") + body).hexdigest()
    assert ac.chain_hash(ac.GENESIS, 1, body) == expected


def test_numbers_are_normalized_so_that_a_store_cannot_change_them():
    assert ac.canonical_json({"a": 1.0, "b": [2.5, (3,)], "c": "é"}) == '{"a":1,"b":[2.5,[3]],"c":"é"}'.encode()
    for bad in (float("nan"), float("inf"), 1e16 + 0.5, {1: 2}, object()):
        with pytest.raises(ValueError):
            ac.canonical_json({"x": bad})


def recursive_root(leaves):
    """RFC 6962's definition, word for word."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + recursive_root(leaves[:k]) + recursive_root(leaves[k:])).digest()


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 100])
def test_merkle_root_and_every_inclusion_proof(size):
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(size)]
    root = ac.merkle_root(digests)
    assert root == recursive_root([bytes.fromhex(d) for d in digests]).hex()
    for index, item in enumerate(digests):
        proof = ac.merkle_proof(digests, index)
        assert ac.merkle_verify(item, index, size, proof, root)
        assert not ac.merkle_verify(item, (index + 1) % size, size, proof, root) or size == 1
        other = hashlib.sha256(b"other").hexdigest()
        assert not ac.merkle_verify(other, index, size, proof, root)


def test_rfc6962_empty_tree_and_single_leaf():
    assert ac.merkle_root([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    d = "00" * 32
    assert ac.merkle_root([d]) == hashlib.sha256(b"\x00" + bytes(32)).hexdigest()


def test_checkpoint_signature_and_message():
    key = ac.private_key_from_seed(SEED)
    public = base64.b64encode(ac.public_key_raw(key)).decode()
    at = datetime(2026, 5, 1, tzinfo=UTC)
    assert ac.checkpoint_message("acme", 5, "ab" * 32, at) == (
        b"hitl-audit-checkpoint/v1\nacme\n5\n" + b"ab" * 32 + b"\n2026-05-01T00:00:00.000000Z\n"
    )
    signature = ac.checkpoint_sign(key, "acme", 5, "ab" * 32, at)
    assert ac.checkpoint_valid(public, "acme", 5, "ab" * 32, at, signature)
    assert not ac.checkpoint_valid(public, "acme", 6, "ab" * 32, at, signature)
    assert not ac.checkpoint_valid(public, "other", 5, "ab" * 32, at, signature)


def test_verifier_accepts_a_good_chain_and_names_the_first_bad_seq():
    events = chain(6)
    assert ac.verify_chain(events, tenant="acme").ok
    edited = [dict(e) for e in events]
    edited[2]["data"] = {"before": None}
    report = ac.verify_chain(edited, tenant="acme")
    assert (report.ok, report.bad_seq) == (False, 3)
    assert "altered" in report.reason
    gap = events[:2] + events[3:]
    assert ac.verify_chain(gap, tenant="acme").bad_seq == 3
    swapped = [events[0], events[2], events[1], *events[3:]]
    assert ac.verify_chain(swapped, tenant="acme").bad_seq == 2


def test_a_rehashed_chain_or_a_cut_tail_fails_against_a_signed_checkpoint():
    key = ac.private_key_from_seed(SEED)
    raw = ac.public_key_raw(key)
    keys = {ac.key_id(raw): base64.b64encode(raw).decode()}
    events = chain(5)
    at = datetime(2026, 5, 1, tzinfo=UTC)
    checkpoint = {
        "seq": 5,
        "head_hash": events[-1]["hash"],
        "signed_at": at,
        "signature": ac.checkpoint_sign(key, "acme", 5, events[-1]["hash"], at),
        "key_id": ac.key_id(raw),
    }
    assert ac.verify_chain(events, tenant="acme", checkpoints=[checkpoint], public_keys=keys).ok
    cut = ac.verify_chain(events[:3], tenant="acme", checkpoints=[checkpoint], public_keys=keys)
    assert cut.bad_seq == 4 and "removed" in cut.reason
    # Someone with database access edits seq 2 and re-hashes everything after it.
    rehashed, prev = [], ac.GENESIS
    for item in events:
        fields = {k: v for k, v in item.items() if k not in ("seq", "prev_hash", "hash")}
        if item["seq"] == 2:
            fields["data"] = {"forged": True}
        fresh = event(item["seq"], prev, **fields)
        rehashed.append(fresh)
        prev = fresh["hash"]
    assert ac.verify_chain(rehashed, tenant="acme").ok  # the chain alone cannot tell
    report = ac.verify_chain(rehashed, tenant="acme", checkpoints=[checkpoint], public_keys=keys)
    assert report.bad_seq == 5 and "rewritten" in report.reason
    forged = {**checkpoint, "head_hash": rehashed[-1]["hash"]}  # without the private key, the signature fails
    assert not ac.verify_chain(rehashed, tenant="acme", checkpoints=[forged], public_keys=keys).ok


def test_standalone_script_imports_only_stdlib_and_cryptography(tmp_path):
    source = Path(ac.__file__)
    events = chain(3)
    lines = [json.dumps({**e, "at": ac.format_time(e["at"])}) for e in events]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    script = tmp_path / "auditchain.py"
    script.write_text(source.read_text())
    ok = subprocess.run(
        [sys.executable, "-I", str(script), "chain", str(tmp_path / "events.jsonl"), "--tenant", "acme"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    bad = json.loads(lines[1])
    bad["kind"] = "policy.deleted"
    (tmp_path / "events.jsonl").write_text("\n".join([lines[0], json.dumps(bad), lines[2]]) + "\n")
    failed = subprocess.run(
        [sys.executable, "-I", str(script), "chain", str(tmp_path / "events.jsonl"), "--tenant", "acme"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert failed.returncode == 1 and "FIRST BAD SEQ 2" in failed.stdout
    imported = {
        line.split()[1].split(".")[0]
        for line in source.read_text().splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imported <= {
        "__future__",
        "argparse",
        "base64",
        "hashlib",
        "json",
        "math",
        "sys",
        "collections",
        "dataclasses",
        "datetime",
        "cryptography",
    }
