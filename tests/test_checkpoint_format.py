"""Checkpoint bodies, C2SP signed notes, and Ed25519 keys (``ledger.checkpoint``, ``ledger.signing``).

The interoperability known answer is the worked example in the documentation
of Go's ``golang.org/x/mod/sumdb/note`` package (note.go, "Example"): the
PeterNeumann verifier key, its private key, and a note signed with it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.checkpoint import (
    EM_DASH,
    MAX_NOTE_BYTES,
    CheckpointBody,
    NoteSignature,
    format_signed_note,
    note_key_hash,
    parse_checkpoint_body,
    parse_signed_note,
    validate_origin,
    verifier_key,
)
from ledger.errors import CheckpointFormatError, SignatureError, SigningKeyError
from ledger.signing import (
    SigningKey,
    generate_key_file,
    key_id_of,
    load_key_file,
    verify_signature,
)

# --- golang.org/x/mod/sumdb/note, package documentation, "Example" ---------
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNATURE_LINE = (
    "\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_NOTE = GO_TEXT + "\n" + GO_SIGNATURE_LINE


def go_public_key() -> bytes:
    blob = base64.b64decode(GO_VERIFIER_KEY.split("+", 2)[2])
    assert blob[0] == 1 and len(blob) == 33  # algorithm 1 = Ed25519
    return blob[1:]


def go_seed() -> bytes:
    blob = base64.b64decode(GO_SIGNER_KEY.split("+", 4)[4])
    assert blob[0] == 1 and len(blob) == 33
    return blob[1:]


def flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


ROOT = hashlib.sha256(b"root").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()


# ---------------------------------------------------------------------------
# Checkpoint body
# ---------------------------------------------------------------------------


def test_body_text_known_answer():
    body = CheckpointBody("example.com/log", 5, ROOT)
    assert body.text() == f"example.com/log\n5\n{ROOT_B64}\n"
    assert ROOT_B64 == "SBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I="  # standard alphabet: "+"
    assert parse_checkpoint_body(body.text()) == body
    assert CheckpointBody("o", 0, bytes(32)).text() == "o\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"


origins = st.text(
    st.characters(exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), exclude_characters="+\x85\x1c\x1d\x1e\x1f"),
    min_size=1, max_size=40,
).filter(lambda s: validate_origin_ok(s))


def validate_origin_ok(origin: str) -> bool:
    try:
        validate_origin(origin)
    except CheckpointFormatError:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(origins, st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32))
def test_body_round_trip(origin, size, root):
    body = CheckpointBody(origin, size, root)
    text = body.text()
    assert text.count("\n") == 3
    assert parse_checkpoint_body(text) == body
    assert parse_checkpoint_body(text).text() == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"o\n5\n{ROOT_B64}", r"^checkpoint body does not end with a newline$"),
        (f"o\n5\n{ROOT_B64}\nextension line\n", r"^checkpoint body has 4 lines, expected 3$"),
        (f"o\n5\n{ROOT_B64}\n\n", r"^checkpoint body has 4 lines, expected 3$"),
        (f"o\n{ROOT_B64}\n", r"^checkpoint body has 2 lines, expected 3$"),
        ("\n", r"^checkpoint body has 1 lines, expected 3$"),
        (f"\n5\n{ROOT_B64}\n", r"^origin '' must be non-empty with no whitespace and no '\+'$"),
        (f"my log\n5\n{ROOT_B64}\n", r"^origin 'my log' must be"),
        (f"a+b\n5\n{ROOT_B64}\n", r"^origin 'a\+b' must be"),
        (f"o\r\n5\r\n{ROOT_B64}\r\n", r"^origin 'o\\r' must be"),
        (f"o\n007\n{ROOT_B64}\n", r"^tree size line '007' is not a decimal number$"),
        (f"o\n00\n{ROOT_B64}\n", r"^tree size line '00' is not a decimal number$"),
        (f"o\n+5\n{ROOT_B64}\n", r"^tree size line '\+5' is not a decimal number$"),
        (f"o\n-1\n{ROOT_B64}\n", r"^tree size line '-1' is not a decimal number$"),
        (f"o\n 5\n{ROOT_B64}\n", r"^tree size line ' 5' is not a decimal number$"),
        (f"o\n5 \n{ROOT_B64}\n", r"^tree size line '5 ' is not a decimal number$"),
        (f"o\n\n{ROOT_B64}\n", r"^tree size line '' is not a decimal number$"),
        (f"o\n1e3\n{ROOT_B64}\n", r"^tree size line '1e3' is not a decimal number$"),
        (f"o\n0x10\n{ROOT_B64}\n", r"^tree size line '0x10' is not a decimal number$"),
        (f"o\n\uff15\n{ROOT_B64}\n", r"^tree size line '\uff15' is not a decimal number$"),
        (f"o\n{'9' * 21}\n{ROOT_B64}\n", r"^tree size line '9{21}' is not a decimal number$"),
        ("o\n5\n!!!!\n", r"^root hash line is not valid base64$"),
        (f"o\n5\n{ROOT_B64[:-1]}\n", r"^root hash line is not valid base64$"),
        (f"o\n5\n{ROOT_B64.replace('+', '-')}\n", r"^root hash line is not valid base64$"),
        (f"o\n5\n {ROOT_B64}\n", r"^root hash line is not valid base64$"),
        (f"o\n5\n{base64.b64encode(ROOT[:31]).decode()}\n", r"^root hash line is not a canonical base64 SHA-256 hash$"),
        (f"o\n5\n{base64.b64encode(ROOT + b'x').decode()}\n", r"^root hash line is not a canonical base64 SHA-256 hash$"),
        ("o\n5\n\n", r"^root hash line is not a canonical base64 SHA-256 hash$"),
        # 'Ab' decodes like 'AA' would not: the unused low bits of the last
        # character must be zero in the canonical encoding.
        (f"o\n5\n{'A' * 42}B=\n", r"^root hash line is not a canonical base64 SHA-256 hash$"),
    ],
    ids=repr,
)
def test_body_parsing_is_strict(text, message):
    with pytest.raises(CheckpointFormatError, match=message):
        parse_checkpoint_body(text)


def test_validate_origin():
    assert validate_origin("example.com/log") == "example.com/log"
    for bad in ["", "a b", "a\tb", "a+b", "a\u00a0b", "a\u2003b", None, 5]:
        with pytest.raises(CheckpointFormatError, match=r"must be non-empty with no whitespace and no '\+'"):
            validate_origin(bad)


# ---------------------------------------------------------------------------
# Signed notes
# ---------------------------------------------------------------------------


def test_note_key_hash_definition():
    public = bytes(range(32))
    expected = hashlib.sha256(b"example.com/log" + b"\x0a" + b"\x01" + public).digest()[:4]
    assert note_key_hash("example.com/log", public) == expected
    assert len(expected) == 4
    assert note_key_hash("example.com/log2", public) != expected
    assert note_key_hash("example.com/log", flip(public, 0)) != expected
    blob = base64.b64encode(b"\x01" + public).decode()
    assert verifier_key("example.com/log", public) == f"example.com/log+{expected.hex()}+{blob}"


def test_signed_note_round_trip():
    body = CheckpointBody("example.com/log", 42, ROOT).text()
    first = NoteSignature("example.com/log", b"\x01\x02\x03\x04", bytes(range(64)))
    second = NoteSignature("witness.example", b"\xff\xfe\xfd\xfc", b"\x07" * 64)
    text = format_signed_note(body, [first, second])
    blob = base64.b64encode(first.key_hash + first.signature).decode()
    assert text == body + "\n" + f"\u2014 example.com/log {blob}\n" + second.line()
    assert parse_signed_note(text) == (body, [first, second])
    assert first.line() == f"{EM_DASH} example.com/log {blob}\n"
    with pytest.raises(CheckpointFormatError, match="^a signed note needs at least one signature$"):
        format_signed_note(body, [])


@settings(max_examples=100, deadline=None)
@given(
    origins,
    st.integers(0, 2**64 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(
        st.tuples(origins, st.binary(min_size=4, max_size=4), st.binary(min_size=1, max_size=80)),
        min_size=1, max_size=4,
    ),
)
def test_signed_note_round_trip_property(origin, size, root, sigs):
    body = CheckpointBody(origin, size, root).text()
    signatures = [NoteSignature(*sig) for sig in sigs]
    text = format_signed_note(body, signatures)
    parsed_body, parsed_sigs = parse_signed_note(text)
    assert parsed_body == body and parsed_sigs == signatures
    assert parse_checkpoint_body(parsed_body) == CheckpointBody(origin, size, root)
    assert format_signed_note(parsed_body, parsed_sigs) == text


SIG = base64.b64encode(b"\x01\x02\x03\x04" + bytes(64)).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"body\n\u2014 k {SIG}\n", r"^note has no blank line before its signatures$"),
        (f"body\n\n\u2014 k {SIG}", r"^note does not end with a newline$"),
        ("body\n\n", r"^note does not end with a newline$"),
        (f"body\n\n-- k {SIG}\n", r"^signature line does not start with an em dash"),
        (f"body\n\n\u2014k {SIG}\n", r"^signature line does not start with an em dash"),
        (f"body\n\n\u2014 k {SIG}\n\n", r"^note does not end with a newline$"),  # last "\n\n" splits
        (f"body\n\n\u2014 k {SIG} extra\n", r"^malformed signature line"),
        (f"body\n\n\u2014 k+x {SIG}\n", r"^malformed signature line"),
        (f"body\n\n\u2014  k {SIG}\n", r"^malformed signature line"),
        (f"body\n\n\u2014 {SIG}\n", r"^malformed signature line"),
        ("body\n\n\u2014 k not*base64\n", r"^signature is not valid base64$"),
        (f"body\n\n\u2014 k {SIG[:-1]}\n", r"^signature is not valid base64$"),
        ("body\n\n\u2014 k AQIDBA==\n", r"^signature is too short$"),
        (f"bo\rdy\n\n\u2014 k {SIG}\n", r"^note contains control characters$"),
        (f"body\n\n\u2014 k\t{SIG}\n", r"^note contains control characters$"),
        (f"bo\x00dy\n\n\u2014 k {SIG}\n", r"^note contains control characters$"),
        ("x" * MAX_NOTE_BYTES + f"\n\n\u2014 k {SIG}\n", rf"^note is larger than {MAX_NOTE_BYTES} bytes$"),
    ],
    ids=repr,
)
def test_signed_note_parsing_is_strict(text, message):
    with pytest.raises(CheckpointFormatError, match=message):
        parse_signed_note(text)


def test_blank_line_between_signatures_moves_them_into_the_body():
    """As in Go's note.Open, the *last* blank line ends the text; whatever
    precedes it is signed text, so a checkpoint body can no longer parse."""
    body = CheckpointBody("o", 5, ROOT).text()
    text = body + f"\n\u2014 k {SIG}\n\n\u2014 k {SIG}\n"
    parsed_body, sigs = parse_signed_note(text)
    assert parsed_body == body + f"\n\u2014 k {SIG}\n"
    assert len(sigs) == 1
    with pytest.raises(CheckpointFormatError, match="^checkpoint body has 5 lines, expected 3$"):
        parse_checkpoint_body(parsed_body)


# ---------------------------------------------------------------------------
# Interoperability: the Go sumdb/note worked example
# ---------------------------------------------------------------------------


def test_go_note_key_hash_and_verifier_key():
    public = go_public_key()
    assert note_key_hash("PeterNeumann", public).hex() == "c74f20a3"
    assert verifier_key("PeterNeumann", public) == GO_VERIFIER_KEY


def test_go_note_parses_and_verifies():
    body, signatures = parse_signed_note(GO_NOTE)
    assert body == GO_TEXT
    assert len(signatures) == 1
    sig = signatures[0]
    assert sig.name == "PeterNeumann"
    assert sig.key_hash == bytes.fromhex("c74f20a3")
    assert sig.key_hash == note_key_hash(sig.name, go_public_key())
    assert len(sig.signature) == 64
    verify_signature(go_public_key(), body.encode("utf-8"), sig.signature)
    # and it re-serialises to the same bytes
    assert format_signed_note(body, signatures) == GO_NOTE


def test_go_note_tampering_fails():
    public = go_public_key()
    body, (sig,) = parse_signed_note(GO_NOTE)
    message = body.encode("utf-8")
    # the tamper of Go's own note_test.go
    tampered, (same_sig,) = parse_signed_note(GO_NOTE.replace("cryptography", "cryptographY", 1))
    with pytest.raises(SignatureError, match="^signature does not verify$"):
        verify_signature(public, tampered.encode(), same_sig.signature)
    for bit in range(len(sig.signature) * 8):
        with pytest.raises(SignatureError, match="^signature does not verify$"):
            verify_signature(public, message, flip(sig.signature, bit))
    for bit in range(len(message) * 8):
        with pytest.raises(SignatureError, match="^signature does not verify$"):
            verify_signature(public, flip(message, bit), sig.signature)
    for bit in range(256):
        with pytest.raises(SignatureError, match=r"^(signature does not verify|invalid public key)"):
            verify_signature(flip(public, bit), message, sig.signature)


def test_go_signer_key_reproduces_the_signature(tmp_path):
    """Ed25519 is deterministic: the Go private key, loaded through
    ledger.signing, must give exactly the signature in the Go example."""
    private = Ed25519PrivateKey.from_private_bytes(go_seed())
    path = tmp_path / "peter.pem"
    path.write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    key = load_key_file(path)
    assert key.public_key == go_public_key()
    signature = key.sign(GO_TEXT.encode())
    note = format_signed_note(
        GO_TEXT, [NoteSignature("PeterNeumann", note_key_hash("PeterNeumann", key.public_key), signature)]
    )
    assert note == GO_NOTE


# ---------------------------------------------------------------------------
# ledger.signing
# ---------------------------------------------------------------------------


def test_generate_key_file_mode_and_round_trip(tmp_path):
    path = tmp_path / "keys" / "nested" / "signing.key"
    key = generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert len(key.public_key) == 32
    assert key.key_id == key_id_of(key.public_key) == hashlib.sha256(key.public_key).hexdigest()
    loaded = load_key_file(path)
    assert loaded.public_key == key.public_key
    signature = loaded.sign(b"message")
    assert len(signature) == 64
    verify_signature(key.public_key, b"message", signature)
    with pytest.raises(SignatureError, match="^signature does not verify$"):
        verify_signature(key.public_key, b"messagE", signature)


def test_generate_key_file_mode_ignores_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "signing.key"
        generate_key_file(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_generate_key_file_refuses_to_overwrite(tmp_path):
    path = tmp_path / "signing.key"
    generate_key_file(path)
    before = path.read_bytes()
    with pytest.raises(SigningKeyError, match="^refusing to overwrite existing key file .*signing.key$"):
        generate_key_file(path)
    assert path.read_bytes() == before
    other = tmp_path / "other.key"
    other.write_text("not a key")
    with pytest.raises(SigningKeyError, match="^refusing to overwrite existing key file"):
        generate_key_file(other)
    assert other.read_text() == "not a key"


def test_generate_key_file_unwritable_location_is_a_signing_key_error(tmp_path):
    """Documented: "SigningKeyError: the file exists or cannot be written"."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(SigningKeyError, match=r"^cannot create key file "):
        generate_key_file(blocker / "signing.key")


def test_passphrase_protected_key(tmp_path):
    path = tmp_path / "signing.key"
    key = generate_key_file(path, passphrase=b"correct horse")
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert load_key_file(path, passphrase=b"correct horse").public_key == key.public_key
    with pytest.raises(SigningKeyError, match=r"^cannot load signing key .*signing.key: ") as wrong:
        load_key_file(path, passphrase=b"battery staple")
    assert "battery" not in str(wrong.value) and "horse" not in str(wrong.value)
    with pytest.raises(SigningKeyError, match=r"^cannot load signing key .*signing.key: "):
        load_key_file(path)
    plain = tmp_path / "plain.key"
    generate_key_file(plain)
    with pytest.raises(SigningKeyError, match=r"^cannot load signing key .*plain.key: "):
        load_key_file(plain, passphrase=b"unneeded")


def test_load_key_file_errors(tmp_path):
    with pytest.raises(SigningKeyError, match=r"^signing key file .*missing.key does not exist$"):
        load_key_file(tmp_path / "missing.key")
    with pytest.raises(SigningKeyError, match=r"^cannot read signing key file "):
        load_key_file(tmp_path)
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SigningKeyError, match=r"^cannot load signing key .*garbage.key: "):
        load_key_file(garbage)
    ec_path = tmp_path / "ec.key"
    ec_path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    with pytest.raises(SigningKeyError, match=r"^signing key .*ec.key is not an Ed25519 key$"):
        load_key_file(ec_path)


def test_repr_never_shows_key_material(tmp_path):
    path = tmp_path / "signing.key"
    key = generate_key_file(path)
    private = key._key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem_body = "".join(path.read_text().splitlines()[1:-1])
    shown = [repr(key), str(key), f"{key}", f"{key!r}", repr([key]), repr({"k": key})]
    for text in shown:
        assert text.startswith("SigningKey(key_id=") or "SigningKey(key_id=" in text
        for secret in (private.hex(), base64.b64encode(private).decode(), pem_body, pem_body[:24],
                       private.hex()[:16], base64.b64encode(private).decode()[:16]):
            assert secret not in text
    assert repr(key) == f"SigningKey(key_id={key.key_id[:16]}...)"
    assert isinstance(key, SigningKey)


@pytest.mark.parametrize(
    ("public", "signature", "message"),
    [
        (bytes(31), bytes(64), r"^public key is 31 bytes, expected 32$"),
        (bytes(33), bytes(64), r"^public key is 33 bytes, expected 32$"),
        (None, bytes(63), r"^signature is 63 bytes, expected 64$"),
        (None, bytes(65), r"^signature is 65 bytes, expected 64$"),
        (None, bytes(64), r"^signature does not verify$"),
    ],
)
def test_verify_signature_rejects(public, signature, message):
    with pytest.raises(SignatureError, match=message):
        verify_signature(public if public is not None else go_public_key(), b"m", signature)


def test_key_id_of_known_answer():
    assert key_id_of(bytes(32)) == "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
