"""Checkpoints in the C2SP ``tlog-checkpoint`` form, as C2SP signed notes.

A checkpoint body is three lines, ``<origin>\\n<tree size>\\n<base64 root>\\n``;
the signed note appends a blank line and one line per signature:
``— <key name> <base64(key hash || signature)>\\n`` where the key hash is the
first four bytes of SHA-256(key name || 0x0A || 0x01 || public key) and the
Ed25519 signature covers the body exactly. Any transparency-log tool that reads
signed notes (Go ``sumdb/note``, ``transparency-dev/formats``) can check them
with the verifier key from :func:`verifier_key`.

Pure text functions: parsing is strict, so a note that parses re-serialises to
the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from .errors import CheckpointFormatError
from .merkle import HASH_SIZE

ED25519_NOTE_TYPE = b"\x01"
EM_DASH = "\u2014"
_KEY_NAME = re.compile(r"^[^\s+]+$")
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,19})$")
MAX_NOTE_BYTES = 64 * 1024


@dataclass(frozen=True)
class CheckpointBody:
    """The signed content of a checkpoint."""

    origin: str
    tree_size: int
    root_hash: bytes

    def text(self) -> str:
        """Return the body text exactly as it is signed."""
        return f"{self.origin}\n{self.tree_size}\n{base64.b64encode(self.root_hash).decode()}\n"


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a signed note."""

    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        """Return the signature line, newline included."""
        blob = base64.b64encode(self.key_hash + self.signature).decode()
        return f"{EM_DASH} {self.name} {blob}\n"


def validate_origin(origin: str) -> str:
    """Return ``origin`` if it can be a checkpoint origin and note key name.

    Raises:
        CheckpointFormatError: empty, or contains whitespace or '+'.
    """
    if not isinstance(origin, str) or not _KEY_NAME.match(origin):
        raise CheckpointFormatError(
            f"origin {origin!r} must be non-empty with no whitespace and no '+'"
        )
    return origin


def note_key_hash(name: str, public_key: bytes) -> bytes:
    """Return the 4-byte signed-note key hash of an Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_NOTE_TYPE + public_key).digest()[:4]


def verifier_key(name: str, public_key: bytes) -> str:
    """Return the signed-note verifier key string ``<name>+<hash>+<base64 key>``."""
    blob = base64.b64encode(ED25519_NOTE_TYPE + public_key).decode()
    return f"{name}+{note_key_hash(name, public_key).hex()}+{blob}"


def format_signed_note(body: str, signatures: list[NoteSignature]) -> str:
    """Return the full signed-note text for ``body`` and its signatures."""
    if not signatures:
        raise CheckpointFormatError("a signed note needs at least one signature")
    return body + "\n" + "".join(sig.line() for sig in signatures)


def parse_signed_note(text: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its body text and its signature lines.

    Raises:
        CheckpointFormatError: the note is not in the signed-note form.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise CheckpointFormatError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    if any(ch < " " and ch != "\n" for ch in text):
        raise CheckpointFormatError("note contains control characters")
    split = text.rfind("\n\n")
    if split < 0:
        raise CheckpointFormatError("note has no blank line before its signatures")
    body, sig_block = text[: split + 1], text[split + 2 :]
    if not sig_block.endswith("\n"):
        raise CheckpointFormatError("note does not end with a newline")
    signatures = []
    for line in sig_block[:-1].split("\n"):
        prefix = EM_DASH + " "
        if not line.startswith(prefix):
            raise CheckpointFormatError(f"signature line does not start with an em dash: {line[:40]!r}")
        parts = line[len(prefix):].split(" ")
        if len(parts) != 2 or not _KEY_NAME.match(parts[0]):
            raise CheckpointFormatError(f"malformed signature line: {line[:60]!r}")
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except binascii.Error as e:
            raise CheckpointFormatError("signature is not valid base64") from e
        if len(blob) < 5:
            raise CheckpointFormatError("signature is too short")
        signatures.append(NoteSignature(parts[0], blob[:4], blob[4:]))
    return body, signatures


def parse_checkpoint_body(body: str) -> CheckpointBody:
    """Parse checkpoint body text (exactly three lines, no extension lines).

    Raises:
        CheckpointFormatError: naming the line that is wrong.
    """
    if not body.endswith("\n"):
        raise CheckpointFormatError("checkpoint body does not end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) != 3:
        raise CheckpointFormatError(f"checkpoint body has {len(lines)} lines, expected 3")
    origin, size_text, root_text = lines
    validate_origin(origin)
    if not _SIZE.match(size_text):
        raise CheckpointFormatError(f"tree size line {size_text[:30]!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as e:
        raise CheckpointFormatError("root hash line is not valid base64") from e
    if len(root) != HASH_SIZE or base64.b64encode(root).decode() != root_text:
        raise CheckpointFormatError("root hash line is not a canonical base64 SHA-256 hash")
    return CheckpointBody(origin, int(size_text), root)
