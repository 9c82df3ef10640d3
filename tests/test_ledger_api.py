"""The ledger's HTTP API (``/api/v1/ledger``) through the real app.

Checkpoints, public keys and proofs are public; entries need ``auditor`` or
``admin``; signing a checkpoint needs ``admin``. Every proof the API returns
is checked with the offline verifier (``ledger.proofs``) and every root
against a Merkle tree hash computed here, independently of ``ledger.merkle``,
from the leaf hashes of the canonical bytes the API serves. Hostile input
must give a JSON 4xx, never a 5xx, and never append anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.checkpoint import parse_signed_note
from ledger.errors import ProofVerificationError
from ledger.proofs import verify_consistency, verify_inclusion
from ledger.verify import LedgerVerifier, check_note

BASE = "/api/v1/ledger"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


# -- helpers ----------------------------------------------------------------------------

def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash, written out here (not ``ledger.merkle``)."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:split]) + mth(leaves[split:])).digest()


def assert_error(response, status: int, match: str | None = None) -> dict:
    """The response is a JSON error body with ``status``; return it."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["code"] == status
    assert isinstance(body["status"], str) and body["status"]
    assert isinstance(body["message"], str) and body["message"]
    if match is not None:
        assert re.search(match, body["message"]), body["message"]
    return body


def all_entries(client, headers) -> list[dict]:
    """Every entry, through the paged API."""
    entries, start = [], 0
    while start is not None:
        response = client.get(f"{BASE}/entries?from={start}&limit=1000", headers=headers)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        entries.extend(page["entries"])
        start = page["next_from"]
    return entries


def leaves_from_api(client, headers) -> list[bytes]:
    """Leaf hashes recomputed from the served canonical bytes (and checked against the served ones)."""
    leaves = []
    for entry in all_entries(client, headers):
        leaf = hashlib.sha256(b"\x00" + base64.b64decode(entry["canonical_b64"])).digest()
        assert leaf.hex() == entry["leaf_hash"], entry["seq"]
        leaves.append(leaf)
    return leaves


def verify_with_verifier_key(verifier_key: str, note: str) -> None:
    """Check a signed note's signature using only the published verifier key string."""
    name, key_hash, blob = verifier_key.split("+", 2)
    raw = base64.b64decode(blob)
    assert raw[:1] == b"\x01" and len(raw) == 33
    body, signatures = parse_signed_note(note)
    mine = [s for s in signatures if s.name == name and s.key_hash.hex() == key_hash]
    assert len(mine) == 1, signatures
    Ed25519PublicKey.from_public_bytes(raw[1:]).verify(mine[0].signature, body.encode())


@pytest.fixture
def admin(world):
    return world.headers("root", "admin")


@pytest.fixture
def auditor(world):
    return world.auditor()


# -- checkpoints ------------------------------------------------------------------------

def test_latest_checkpoint_is_404_before_any_is_signed(client, fill):
    fill(3)
    assert_error(client.get(f"{BASE}/checkpoint"), 404, "^no checkpoint has been signed yet$")


def test_checkpoint_fields_note_and_proof_root_agree(app, client, fill, admin, auditor):
    fill(11)
    created = client.post(f"{BASE}/checkpoints", headers=admin)
    assert created.status_code == 201, created.get_json()
    response = client.get(f"{BASE}/checkpoint")  # anonymous
    assert response.status_code == 200
    checkpoint = response.get_json()
    assert set(checkpoint) == {"tree_size", "root_hash", "timestamp", "key_id", "note"}
    assert checkpoint == created.get_json()

    ledger = app.extensions["ledger"]
    assert checkpoint["tree_size"] == ledger.size()
    assert TS.match(checkpoint["timestamp"]), checkpoint["timestamp"]
    assert HEX64.match(checkpoint["key_id"])
    leaves = leaves_from_api(client, auditor)
    assert checkpoint["root_hash"] == mth(leaves[:checkpoint["tree_size"]]).hex()

    size, root, key_id = check_note(checkpoint["note"], ledger.settings.origin, ledger.trusted_keys.read())
    assert (size, root.hex(), key_id) == (checkpoint["tree_size"], checkpoint["root_hash"], checkpoint["key_id"])

    proof = client.get(f"{BASE}/proofs/inclusion?seq=3").get_json()
    assert proof["tree_size"] == checkpoint["tree_size"]
    assert proof["root_hash"] == root.hex()
    assert proof["checkpoint"] == checkpoint
    verify_inclusion(3, proof["tree_size"], leaves[3], [bytes.fromhex(h) for h in proof["hashes"]], root)


def test_creating_a_checkpoint_needs_admin(client, world, fill, admin):
    fill(2)
    anonymous = client.post(f"{BASE}/checkpoints")
    assert_error(anonymous, 401, "authentication required")
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.post(f"{BASE}/checkpoints", headers={"Authorization": "Bearer nonsense"}), 401)
    assert_error(client.post(f"{BASE}/checkpoints", headers=world.author()), 403,
                 r"^alice lacks the role this needs: one of admin$")
    assert_error(client.post(f"{BASE}/checkpoints", headers=world.auditor()), 403, "lacks the role")
    assert_error(client.get(f"{BASE}/checkpoint"), 404)  # nothing was signed by the refused calls
    assert client.post(f"{BASE}/checkpoints", headers=admin).status_code == 201
    assert client.get(f"{BASE}/checkpoint").status_code == 200


def test_creating_a_checkpoint_twice_at_one_size_returns_the_same(app, client, fill, admin):
    fill(5)
    first = client.post(f"{BASE}/checkpoints", headers=admin)
    second = client.post(f"{BASE}/checkpoints", headers=admin)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    fill(4)
    third = client.post(f"{BASE}/checkpoints", headers=admin).get_json()
    assert third["tree_size"] == first.get_json()["tree_size"] + 4 == app.extensions["ledger"].size()
    assert third["root_hash"] != first.get_json()["root_hash"]
    assert client.get(f"{BASE}/checkpoint").get_json() == third


# -- public keys ------------------------------------------------------------------------

def test_public_keys_identify_and_verify_the_signing_key(app, client, fill, admin):
    assert client.get(f"{BASE}/public-keys").get_json() == {"keys": []}  # nothing signed yet
    fill(3)
    checkpoint = client.post(f"{BASE}/checkpoints", headers=admin).get_json()
    response = client.get(f"{BASE}/public-keys")  # anonymous
    assert response.status_code == 200
    [key] = response.get_json()["keys"]
    raw = base64.b64decode(key["public_key_b64"])
    assert len(raw) == 32
    assert key["key_id"] == hashlib.sha256(raw).hexdigest() == checkpoint["key_id"]
    assert key["algorithm"] == "Ed25519"
    origin = app.extensions["ledger"].settings.origin
    assert key["name"] == origin
    assert key["retired"] is None
    assert TS.match(key["created"])
    name, key_hash, blob = key["verifier_key"].split("+", 2)
    assert name == origin
    assert base64.b64decode(blob) == b"\x01" + raw
    assert key_hash == hashlib.sha256(origin.encode() + b"\n\x01" + raw).digest()[:4].hex()
    verify_with_verifier_key(key["verifier_key"], checkpoint["note"])


def test_public_keys_after_rotation_keep_the_retired_key(app, client, runner, fill, admin):
    ledger = app.extensions["ledger"]
    fill(4)
    old = client.post(f"{BASE}/checkpoints", headers=admin).get_json()
    result = runner.invoke(args=["ledger", "rotate-key", "--actor", "ops"])
    assert result.exit_code == 0, result.output
    keys = {k["key_id"]: k for k in client.get(f"{BASE}/public-keys").get_json()["keys"]}
    assert len(keys) == 2 and old["key_id"] in keys
    [new_id] = set(keys) - {old["key_id"]}
    assert TS.match(keys[old["key_id"]]["retired"] or "")
    assert keys[new_id]["retired"] is None
    latest = client.get(f"{BASE}/checkpoint").get_json()
    assert latest["key_id"] == new_id and latest["tree_size"] == ledger.size()
    # The old checkpoint still verifies, against the trusted-keys file and the API's old key.
    size, root, key_id = check_note(old["note"], ledger.settings.origin, ledger.trusted_keys.read())
    assert (size, root.hex(), key_id) == (old["tree_size"], old["root_hash"], old["key_id"])
    verify_with_verifier_key(keys[old["key_id"]]["verifier_key"], old["note"])
    verify_with_verifier_key(keys[new_id]["verifier_key"], latest["note"])
    new_key_hash = keys[new_id]["verifier_key"].split("+", 2)[1]  # the new key did not sign the old note
    assert new_key_hash not in [s.key_hash.hex() for s in parse_signed_note(old["note"])[1]]


# -- entries ----------------------------------------------------------------------------

def test_entries_need_auditor_or_admin(client, world, fill):
    fill(2)
    for url in (f"{BASE}/entries", f"{BASE}/entries/0", f"{BASE}/entries?limit=abc"):
        response = client.get(url)
        assert_error(response, 401, "authentication required")
        assert "WWW-Authenticate" in response.headers
        assert_error(client.get(url, headers={"Authorization": "Bearer mlg_x"}), 401, "malformed API token")
        for headers in (world.author(), world.headers("dave", "deployer"), world.approver("pat", "privacy")):
            assert_error(client.get(url, headers=headers), 403, "lacks the role this needs: one of auditor, admin")
    for headers in (world.auditor(), world.headers("root", "admin")):
        assert client.get(f"{BASE}/entries", headers=headers).status_code == 200
        assert client.get(f"{BASE}/entries/0", headers=headers).status_code == 200


def test_entries_serve_the_exact_hashed_bytes(app, client, fill, auditor):
    fill(9)
    entries = all_entries(client, auditor)
    assert [e["seq"] for e in entries] == list(range(app.extensions["ledger"].size()))
    prev = "0" * 64
    last_ts = ""
    for entry in entries:
        assert set(entry) == {"seq", "ts", "kind", "actor", "subject", "canonical_b64", "leaf_hash"}
        data = base64.b64decode(entry["canonical_b64"], validate=True)
        assert hashlib.sha256(b"\x00" + data).hexdigest() == entry["leaf_hash"]
        envelope = json.loads(data)
        assert {k: envelope[k] for k in ("seq", "ts", "kind", "actor", "subject")} == {
            k: entry[k] for k in ("seq", "ts", "kind", "actor", "subject")}
        assert envelope["prev"] == prev
        assert TS.match(entry["ts"]) and entry["ts"] >= last_ts
        prev, last_ts = entry["leaf_hash"], entry["ts"]
        one = client.get(f"{BASE}/entries/{entry['seq']}", headers=auditor)
        assert one.status_code == 200 and one.get_json() == entry
    notes = [json.loads(base64.b64decode(e["canonical_b64"])) for e in entries if e["kind"] == "test.note"]
    assert [n["payload"] for n in notes] == [{"i": i} for i in range(9)]


def test_entries_paging(app, client, fill, auditor):
    fill(23)
    size = app.extensions["ledger"].size()
    seen, start, pages = [], 0, 0
    while start is not None:
        page = client.get(f"{BASE}/entries?from={start}&limit=7", headers=auditor).get_json()
        assert page["tree_size"] == size
        assert len(page["entries"]) == min(7, size - start)
        seen.extend(e["seq"] for e in page["entries"])
        expected_next = start + 7 if start + 7 < size else None
        assert page["next_from"] == expected_next
        start, pages = page["next_from"], pages + 1
    assert seen == list(range(size))
    assert pages == -(-size // 7)
    default = client.get(f"{BASE}/entries", headers=auditor).get_json()
    assert [e["seq"] for e in default["entries"]] == list(range(size)) and default["next_from"] is None
    beyond = client.get(f"{BASE}/entries?from={size + 5}", headers=auditor).get_json()
    assert beyond == {"entries": [], "next_from": None, "tree_size": size}
    last = client.get(f"{BASE}/entries?from={size - 1}&limit=1", headers=auditor).get_json()
    assert [e["seq"] for e in last["entries"]] == [size - 1] and last["next_from"] is None


@pytest.mark.parametrize("query, field, match", [
    ("limit=0", "limit", "Must be greater than or equal to 1 and less than or equal to 1000"),
    ("limit=1001", "limit", "Must be greater than or equal to 1 and less than or equal to 1000"),
    ("limit=-1", "limit", "Must be greater than or equal to 1"),
    ("limit=abc", "limit", "Not a valid integer"),
    (f"limit={10**30}", "limit", "less than or equal to 1000"),
    ("limit=", "limit", "Not a valid integer"),
    ("from=-1", "from", "Must be greater than or equal to 0"),
    ("from=abc", "from", "Not a valid integer"),
    (f"from={10**30}", "from", "less than or equal to 9007199254740991"),
    ("from=1.5", "from", "Not a valid integer"),
])
def test_entries_bad_paging_is_422_naming_the_field(client, fill, auditor, query, field, match):
    fill(2)
    body = assert_error(client.get(f"{BASE}/entries?{query}", headers=auditor), 422,
                        rf"^validation failed: {field}: .*{match}")
    assert list(body["errors"]["query"]) == [field]
    assert any(match in m for m in body["errors"]["query"][field])


def test_entry_beyond_the_end_is_404_with_the_range(app, client, fill, auditor):
    fill(4)
    size = app.extensions["ledger"].size()
    assert_error(client.get(f"{BASE}/entries/{size}", headers=auditor), 404,
                 rf"^no entry {size}: the ledger has entries 0\.\.{size - 1}$")
    assert_error(client.get(f"{BASE}/entries/{2**53}", headers=auditor), 404, rf"^no entry {2**53}:")


@pytest.mark.parametrize("seq", [2**63 - 1, 2**63, 2**64, 10**40])
def test_entry_with_a_huge_seq_is_404_not_500(client, fill, auditor, seq):
    fill(1)
    assert_error(client.get(f"{BASE}/entries/{seq}", headers=auditor), 404, rf"^no entry {seq}:")


# -- proofs -----------------------------------------------------------------------------

def test_inclusion_proofs_verify_for_many_seqs_and_sizes(app, client, fill, auditor):
    fill(36)
    leaves = leaves_from_api(client, auditor)
    size = len(leaves)
    assert size == app.extensions["ledger"].size()
    checked = 0
    for tree_size in sorted({1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, size}):
        root = mth(leaves[:tree_size])
        for seq in sorted({0, 1 % tree_size, tree_size // 2, tree_size - 2 if tree_size > 1 else 0, tree_size - 1}):
            response = client.get(f"{BASE}/proofs/inclusion?seq={seq}&tree_size={tree_size}")
            assert response.status_code == 200, response.get_json()
            proof = response.get_json()
            assert (proof["leaf_index"], proof["tree_size"]) == (seq, tree_size)
            assert proof["leaf_hash"] == leaves[seq].hex()
            assert proof["root_hash"] == root.hex()
            assert proof["checkpoint"] is None
            hashes = [bytes.fromhex(h) for h in proof["hashes"]]
            verify_inclusion(seq, tree_size, leaves[seq], hashes, root)
            checked += 1
            if hashes:  # a proof that is altered no longer verifies
                bad = [hashes[0][:-1] + bytes([hashes[0][-1] ^ 1])] + hashes[1:]
                with pytest.raises(ProofVerificationError, match="root mismatch"):
                    verify_inclusion(seq, tree_size, leaves[seq], bad, root)
    assert checked > 40
    # Without tree_size: against a checkpoint of the current tree, signed for it.
    current = client.get(f"{BASE}/proofs/inclusion?seq=5").get_json()
    assert current["tree_size"] == size and current["root_hash"] == mth(leaves).hex()
    assert current["checkpoint"]["tree_size"] == size


def test_inclusion_without_tree_size_uses_the_latest_checkpoint(app, client, fill, admin, auditor):
    fill(10)
    checkpoint = client.post(f"{BASE}/checkpoints", headers=admin).get_json()
    fill(6)
    leaves = leaves_from_api(client, auditor)
    covered = client.get(f"{BASE}/proofs/inclusion?seq=2").get_json()
    assert covered["tree_size"] == checkpoint["tree_size"]
    assert covered["checkpoint"] == checkpoint
    verify_inclusion(2, covered["tree_size"], leaves[2], [bytes.fromhex(h) for h in covered["hashes"]],
                     bytes.fromhex(checkpoint["root_hash"]))
    # An entry no checkpoint covers yet: one is signed for it, once, and named.
    newer = checkpoint["tree_size"] + 1
    uncovered = client.get(f"{BASE}/proofs/inclusion?seq={newer}").get_json()
    signed = uncovered["checkpoint"]
    assert uncovered["tree_size"] == signed["tree_size"] == len(leaves)
    assert signed["root_hash"] == uncovered["root_hash"] == mth(leaves).hex()
    assert client.get(f"{BASE}/checkpoint").get_json() == signed
    verify_inclusion(newer, len(leaves), leaves[newer], [bytes.fromhex(h) for h in uncovered["hashes"]],
                     bytes.fromhex(signed["root_hash"]))
    again = client.get(f"{BASE}/proofs/inclusion?seq={newer}").get_json()
    assert again["checkpoint"] == signed  # no second signature for the same tree
    ledger = app.extensions["ledger"]
    with ledger.store.read() as conn:
        assert [c.tree_size for c in ledger.store.checkpoints(conn)] == [checkpoint["tree_size"], len(leaves)]
    # An explicit tree_size equal to a checkpoint's size names that checkpoint.
    explicit = client.get(f"{BASE}/proofs/inclusion?seq=0&tree_size={checkpoint['tree_size']}").get_json()
    assert explicit["checkpoint"] == checkpoint


def test_inclusion_errors_are_4xx_with_a_message(app, client, fill):
    fill(6)
    size = app.extensions["ledger"].size()
    cases = [
        ("seq=5&tree_size=3", 400, r"^seq 5 is not in a tree of size 3 \(0\.\.2\)$"),
        (f"seq={size}", 400, rf"^seq {size} is not in a tree of size {size}"),
        (f"seq=0&tree_size={size + 1}", 400, rf"^tree_size {size + 1} is larger than the ledger \({size} entries\)$"),
        ("seq=0&tree_size=0", 422, r"^validation failed: tree_size: Must be greater than or equal to 1"),
        ("tree_size=3", 422, r"^validation failed: seq: Missing data for required field"),
        ("", 422, r"^validation failed: seq: Missing data for required field"),
        ("seq=abc", 422, r"^validation failed: seq: Not a valid integer"),
        ("seq=1.5", 422, r"^validation failed: seq: Not a valid integer"),
        ("seq=0&tree_size=x", 422, r"^validation failed: tree_size: Not a valid integer"),
        ("seq=-1", 422, r"^validation failed: seq: Must be greater than or equal to 0"),
        (f"seq={10**30}", 422, r"^validation failed: seq: .*less than or equal to 9007199254740991"),
        (f"seq=0&tree_size={10**30}", 422, r"^validation failed: tree_size: "),
        (f"seq=0&tree_size={2**53 - 1}", 400, r"larger than the ledger"),
        (f"seq={2**53 - 1}", 400, r"is not in a tree of size"),
    ]
    for query, status, match in cases:
        assert_error(client.get(f"{BASE}/proofs/inclusion?{query}"), status, match)


def test_consistency_proofs_verify(app, client, fill, auditor):
    fill(35)
    leaves = leaves_from_api(client, auditor)
    size = len(leaves)
    pairs = [(1, 2), (1, size), (2, 3), (3, 7), (4, 8), (5, 6), (6, 8), (7, 16), (8, 17),
             (15, 31), (16, 32), (17, 33), (31, size), (size - 1, size)]
    for first, second in pairs:
        response = client.get(f"{BASE}/proofs/consistency?first={first}&second={second}")
        assert response.status_code == 200, response.get_json()
        proof = response.get_json()
        first_root, second_root = mth(leaves[:first]), mth(leaves[:second])
        assert (proof["first"], proof["second"]) == (first, second)
        assert (proof["first_root"], proof["second_root"]) == (first_root.hex(), second_root.hex())
        hashes = [bytes.fromhex(h) for h in proof["hashes"]]
        assert hashes
        verify_consistency(first, second, hashes, first_root, second_root)
        bad = hashes[:-1] + [bytes(32)]
        with pytest.raises(ProofVerificationError, match="mismatch"):
            verify_consistency(first, second, bad, first_root, second_root)
    same = client.get(f"{BASE}/proofs/consistency?first=9&second=9").get_json()
    assert same == {"first": 9, "second": 9, "first_root": mth(leaves[:9]).hex(),
                    "second_root": mth(leaves[:9]).hex(), "hashes": []}
    verify_consistency(9, 9, [], bytes.fromhex(same["first_root"]), bytes.fromhex(same["second_root"]))
    default = client.get(f"{BASE}/proofs/consistency?first=5").get_json()
    assert default["second"] == size and default["second_root"] == mth(leaves).hex()
    verify_consistency(5, size, [bytes.fromhex(h) for h in default["hashes"]],
                       mth(leaves[:5]), mth(leaves))


def test_consistency_errors_are_4xx_with_a_message(app, client, fill):
    fill(6)
    size = app.extensions["ledger"].size()
    cases = [
        ("first=5&second=3", 400, r"^first \(5\) must not be larger than second \(3\)$"),
        (f"first=1&second={size + 1}", 400, rf"^second \({size + 1}\) is larger than the ledger \({size} entries\)$"),
        (f"first={size + 1}", 400, r"must not be larger than second"),
        ("first=0", 422, r"^validation failed: first: Must be greater than or equal to 1"),
        ("first=0&second=0", 422, r"first: Must be greater than or equal to 1"),
        ("first=1&second=0", 422, r"^validation failed: second: Must be greater than or equal to 1"),
        ("", 422, r"^validation failed: first: Missing data for required field"),
        ("second=3", 422, r"first: Missing data for required field"),
        ("first=abc", 422, r"first: Not a valid integer"),
        ("first=-3", 422, r"first: Must be greater than or equal to 1"),
        (f"first={10**30}", 422, r"first: .*less than or equal to 9007199254740991"),
        (f"first=1&second={10**30}", 422, r"second: "),
        (f"first=1&second={2**53 - 1}", 400, r"is larger than the ledger"),
    ]
    for query, status, match in cases:
        assert_error(client.get(f"{BASE}/proofs/consistency?{query}"), status, match)


def test_public_endpoints_need_no_token(client, fill, admin):
    fill(3)
    assert client.post(f"{BASE}/checkpoints", headers=admin).status_code == 201
    for url in ("/checkpoint", "/public-keys", "/proofs/inclusion?seq=0", "/proofs/consistency?first=1"):
        response = client.get(BASE + url)
        assert response.status_code == 200, (url, response.get_json())
        assert response.mimetype == "application/json"


# -- hostile input ----------------------------------------------------------------------

HOSTILE_VALUES = [
    "1;DROP TABLE ledger_entry", "1' OR '1'='1", "1\" OR 1=1 --", "0 UNION SELECT * FROM gov_token_secret",
    "'; DELETE FROM ledger_entry; --", "%", "_", "\\", "1)--", "NULL", "null", "None", "true", "[]", "{}",
    "\u00e9\u00e8", "\u2603", "\U0001F600", "\u202e1", "\x00", "1\x00", "\ufffd",
    "0x10", "1e3", "NaN", "Infinity", "-0.0", "9" * 5000, "1" * 100_000, "",
]
HOSTILE_QUERIES = (
    [f"{name}={quote(value, safe='')}" for name in ("seq", "tree_size", "first", "second", "from", "limit")
     for value in HOSTILE_VALUES]
    + ["seq=1&seq=2", "from=0&from=1", "limit=1&limit=abc", "seq[]=1", "seq[$gt]=0", "a" * 50_000,
       "%ZZ", "seq=%ff%fe", "=1", "&&&", "seq==1", "seq=1&tree_size=" + "2" * 4301]
)
LEDGER_GETS = ["/checkpoint", "/public-keys", "/entries", "/entries/0", "/proofs/inclusion", "/proofs/consistency"]


def test_hostile_query_strings_never_500_and_never_append(app, client, fill, auditor, admin):
    fill(5)
    client.post(f"{BASE}/checkpoints", headers=admin)
    ledger = app.extensions["ledger"]
    before = ledger.size()
    statuses = set()
    for path in LEDGER_GETS:
        for query in HOSTILE_QUERIES:
            for headers in (auditor, {}):
                response = client.get(f"{BASE}{path}?{query}", headers=headers)
                assert response.status_code < 500, (path, query[:80], response.get_data(as_text=True)[:300])
                assert response.mimetype == "application/json", (path, query[:80])
                if response.status_code >= 400:
                    assert_error(response, response.status_code)
                statuses.add(response.status_code)
    # admin POST with hostile query and body: signs (or refuses), never a 5xx, never an entry
    for query in HOSTILE_QUERIES[:40]:
        response = client.post(f"{BASE}/checkpoints?{query}", data=b"{'bad json", headers=admin,
                                content_type="application/json")
        assert response.status_code < 500, (query, response.get_data(as_text=True)[:300])
    assert statuses >= {200, 401, 422}
    assert ledger.size() == before
    report = LedgerVerifier(ledger).verify_full()
    assert report.ok, report.faults
    assert report.tree_size == before


def test_query_integers_are_plain_ascii_decimals(client, fill):
    """``1_000`` and non-ASCII digits are not integers a client means: 422, like ``abc``."""
    fill(3)
    for value in ("1_0", "\u0661", "\uff11", "\u0663"):
        response = client.get(f"{BASE}/proofs/inclusion?seq={quote(value)}")
        assert_error(response, 422, "seq: Not a valid integer")


def test_hostile_paths_and_headers(app, client, fill, auditor):
    fill(3)
    ledger = app.extensions["ledger"]
    before = ledger.size()
    for path in ("/entries/1%27%20OR%201=1", "/entries/%E2%9C%93", "/entries/-1", "/entries/abc",
                 "/entries/1/extra", "/%00", "/entries/0;DROP%20TABLE%20ledger_entry",
                 "/../../etc/passwd", "/checkpoint/../entries", "/" + "a" * 10_000, "/\u2603"):
        response = client.get(BASE + path, headers=auditor)
        assert response.status_code < 500, (path[:80], response.get_data(as_text=True)[:300])
        assert response.mimetype == "application/json", path[:80]
        assert_error(response, response.status_code)
    for authorization in ("Bearer mlg_' OR '1'='1", "Bearer " + "A" * 20_000, "Basic YWxpY2U6cHc=", "Bearer",
                          "Bearer mlg_0123456789abcdef_" + "A" * 43, "Bearer eyJhbGciOiJub25lIn0.e30.",
                          "Bearer mlg_\u00e9", "Bearer mlg_0123456789abcdef_" + "A" * 42 + "\x7f"):
        for method, path in (("GET", "/entries"), ("GET", "/entries/0"), ("POST", "/checkpoints")):
            response = client.open(BASE + path, method=method, headers={"Authorization": authorization})
            assert_error(response, 401)
    assert ledger.size() == before


METHODS = {"/checkpoint": {"GET"}, "/checkpoints": {"POST"}, "/public-keys": {"GET"}, "/entries": {"GET"},
           "/entries/0": {"GET"}, "/proofs/inclusion": {"GET"}, "/proofs/consistency": {"GET"}}


def test_wrong_methods_are_405_json(app, client, fill, auditor):
    fill(2)
    ledger = app.extensions["ledger"]
    before = ledger.size()
    for path, allowed in METHODS.items():
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - allowed:
            response = client.open(BASE + path, method=method, headers=auditor, json={"seq": 1})
            assert_error(response, 405, "method is not allowed")
    assert ledger.size() == before
    assert_error(client.get(f"{BASE}/checkpoint"), 404)  # no stray checkpoint either


def test_405_names_the_allowed_methods(client):
    """RFC 9110 §15.5.6: a 405 response must carry an Allow header."""
    for path, allowed in METHODS.items():
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - allowed:
            response = client.open(BASE + path, method=method)
            assert_error(response, 405)
            assert "Allow" in response.headers, (path, method, dict(response.headers))
            assert allowed <= set(response.headers["Allow"].split(", ")), (path, method)


def test_unknown_paths_are_404_json(client):
    for path in ("/api/v1/ledger/nope", "/api/v1/ledger", "/api/v1/ledger/", "/api/v2/ledger/checkpoint",
                 "/api/v1/ledger/checkpoint/1", "/api/v1/ledger/proofs", "/nope", "/api/v1/ledger/entries/0/x"):
        assert_error(client.get(path), 404, "not found")
