"""Ledger entries: validation, canonical envelope, and reading it back.

An entry's canonical bytes are the RFC 8785 encoding of
``{"actor", "kind", "payload", "prev", "seq", "subject", "ts"}``. JCS sorts
keys, and the canonical form of an object is built from the canonical forms
of its members, so the envelope is assembled by concatenating the members'
canonical bytes in that fixed key order. ``tests/test_canonical.py`` checks
the result is byte-identical to ``rfc8785.dumps`` of the whole dict. This
lets the expensive part (the payload) be encoded *before* the append lock is
taken; only ``seq``, ``prev`` and ``ts`` are filled in under it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from .canonical import canonical_string, storable_canonical_bytes
from .errors import EntryValidationError, CanonicalizationError
from .merkle import HASH_SIZE

ZERO_HASH = bytes(HASH_SIZE)
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
TS_LENGTH = 27
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MAX_KIND = 128
MAX_ACTOR = 256
MAX_SUBJECT = 512
DEFAULT_MAX_PAYLOAD = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TS_PATTERN = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def utc_timestamp(moment: datetime | None = None) -> str:
    """Return an RFC 3339 UTC timestamp with microseconds (fixed width).

    The text ``strftime(TS_FORMAT)`` writes (tests hold them equal), in a
    third of its time (a check writes five of these), except that years
    before 1000 keep four digits, which glibc's ``%Y`` did not.
    """
    if moment is None:
        moment = datetime.now(timezone.utc)
    elif moment.tzinfo is not timezone.utc:
        moment = moment.astimezone(timezone.utc)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
        moment.microsecond)


def parse_timestamp(text: str) -> datetime:
    """Parse a timestamp written by :func:`utc_timestamp`."""
    if len(text) == 27 and text[10] == "T" and text[19] == "." and text[26] == "Z" and text.isascii():
        # The fixed-width form: fromisoformat reads it exactly (0.1 us against 4.7 us)
        return datetime.fromisoformat(text)
    return datetime.strptime(text, TS_FORMAT).replace(tzinfo=timezone.utc)


@dataclass(slots=True)  # not frozen: frozen dataclasses cost ~1 µs more to build, per entry
class PreparedEntry:
    """An entry validated and encoded, waiting for its seq, prev and ts."""

    kind: str
    actor: str
    subject: str
    head: bytes  # b'{"actor":...,"kind":...,"payload":...,"prev":"'
    subject_json: bytes


_LABEL_CACHE: dict[tuple[str, str], bytes] = {}
_LABEL_CACHE_LIMIT = 4096


def _check_text(field: str, value, limit: int) -> bytes:
    """Validate a kind/actor/subject and return its canonical JSON string.

    Kinds and actors repeat from entry to entry, so validated encodings are
    memoised (bounded; cleared when full).
    """
    if type(value) is str:
        cached = _LABEL_CACHE.get((field, value))
        if cached is not None:
            return cached
    encoded = _validate_text(field, value, limit)
    if field == "kind" and not KIND_PATTERN.match(value):
        raise EntryValidationError(
            f"kind {value!r} must be a dotted lowercase name such as 'model.version.registered'")
    if len(_LABEL_CACHE) >= _LABEL_CACHE_LIMIT:
        _LABEL_CACHE.clear()
    _LABEL_CACHE[(field, value)] = encoded
    return encoded


def _validate_text(field: str, value, limit: int) -> bytes:
    if type(value) is not str:
        raise EntryValidationError(f"{field} must be a string")
    if not value or not value.strip():
        raise EntryValidationError(f"{field} must not be empty")
    if len(value) > limit:
        raise EntryValidationError(f"{field} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise EntryValidationError(f"{field} must not contain control characters")
    try:
        return canonical_string(value)
    except CanonicalizationError as e:
        raise EntryValidationError(f"{field}: {e}") from e


def prepare_entry(
    kind: str, actor: str, subject: str, payload: dict, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> PreparedEntry:
    """Validate the caller's fields and encode everything but seq, prev and ts.

    Raises:
        EntryValidationError: a field is missing, malformed or too large.
    """
    kind_json = _check_text("kind", kind, MAX_KIND)
    actor_json = _check_text("actor", actor, MAX_ACTOR)
    subject_json = _check_text("subject", subject, MAX_SUBJECT)
    if type(payload) is not dict:
        raise EntryValidationError("payload must be a JSON object")
    try:
        payload_json = storable_canonical_bytes(payload)
    except CanonicalizationError as e:
        raise EntryValidationError(f"payload: {e}") from e
    if len(payload_json) > max_payload:
        raise EntryValidationError(
            f"payload is {len(payload_json)} bytes in canonical form, the limit is {max_payload}"
        )
    head = b'{"actor":' + actor_json + b',"kind":' + kind_json + b',"payload":' + payload_json + b',"prev":"'
    return PreparedEntry(kind, actor, subject, head, subject_json)


def encode_entry(prepared: PreparedEntry, seq: int, prev: bytes, ts: str | bytes) -> bytes:
    """Return the canonical bytes of a prepared entry at ``seq`` after ``prev``."""
    if type(ts) is str:
        ts = ts.encode()
    return b"".join((prepared.head, prev.hex().encode(), b'","seq":%d,"subject":' % seq,
                     prepared.subject_json, b',"ts":"', ts, b'"}'))


@dataclass(frozen=True, slots=True)
class EnvelopeFields:
    """What verification reads back from stored canonical bytes."""

    seq: int
    prev: bytes
    ts: str


_PREV_KEY = b',"prev":"'
_SEQ_KEY = b'","seq":'
_SUBJECT_KEY = b',"subject":'
_TS_KEY = b',"ts":"'


def read_envelope(data: bytes) -> EnvelopeFields:
    """Read ``seq``, ``prev`` and ``ts`` from an entry's canonical bytes.

    Reads without re-serialising or fully parsing: in canonical form the
    envelope's ``prev``, ``seq``, ``subject`` and ``ts`` follow the payload in
    that order, and the sequence ``"prev":"`` cannot occur inside a JSON string
    (its quote would be escaped), so its last occurrence is the envelope's.

    Raises:
        EntryValidationError: the bytes are not an envelope this ledger writes.
    """
    if not (data.startswith(b'{"actor":') and data.endswith(b'"}')):
        raise EntryValidationError("not a ledger entry envelope")
    ts = data[-2 - TS_LENGTH:-2]
    if data[-2 - TS_LENGTH - len(_TS_KEY):-2 - TS_LENGTH] != _TS_KEY or not TS_PATTERN.match(ts):
        raise EntryValidationError("entry timestamp is missing or malformed")
    at = data.rfind(_PREV_KEY)
    if at < 0:
        raise EntryValidationError("entry has no prev field")
    start = at + len(_PREV_KEY)
    prev_hex = data[start:start + 2 * HASH_SIZE]
    seq_start = start + 2 * HASH_SIZE
    if data[seq_start:seq_start + len(_SEQ_KEY)] != _SEQ_KEY:
        raise EntryValidationError("entry prev field is malformed")
    seq_start += len(_SEQ_KEY)
    seq_end = data.find(_SUBJECT_KEY, seq_start)
    seq_text = data[seq_start:seq_end]
    if seq_end < 0 or not seq_text.isdigit() or (len(seq_text) > 1 and seq_text[0:1] == b"0"):
        raise EntryValidationError("entry seq field is malformed")
    try:
        prev = bytes.fromhex(prev_hex.decode("ascii"))
    except (ValueError, UnicodeDecodeError) as e:
        raise EntryValidationError("entry prev field is not hex") from e
    if prev_hex != prev.hex().encode():
        raise EntryValidationError("entry prev field is not lowercase hex")
    return EnvelopeFields(int(seq_text), prev, ts.decode())


def hashed_timestamp(data: bytes) -> str | None:
    """Return the ``ts`` written inside an entry's canonical bytes, or None if malformed."""
    ts = data[-2 - TS_LENGTH:-2]
    if data[-2 - TS_LENGTH - len(_TS_KEY):-2 - TS_LENGTH] == _TS_KEY and TS_PATTERN.match(ts):
        return ts.decode()
    return None
