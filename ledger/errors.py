"""Errors raised by the ledger package.

Every failure the ledger reports is a subclass of :class:`LedgerError`; the
HTTP layer maps them to status codes in one table (``ledger/api.py``).
"""


class LedgerError(Exception):
    """Base class for every ledger failure."""


class CanonicalizationError(LedgerError, ValueError):
    """A value has no RFC 8785 canonical form."""


class EntryValidationError(LedgerError, ValueError):
    """An entry's kind, actor, subject or payload is not acceptable."""


class ProofRangeError(LedgerError, ValueError):
    """A proof was asked for sizes or indices outside the tree."""


class ProofVerificationError(LedgerError):
    """A Merkle proof does not verify against the given root."""


class EntryNotFoundError(LedgerError, LookupError):
    """No entry has the requested sequence number."""


class CheckpointFormatError(LedgerError, ValueError):
    """A checkpoint or signed note is malformed."""


class SignatureError(LedgerError):
    """A signature does not verify, or its key is unknown or untrusted."""


class SigningKeyError(LedgerError):
    """The signing key is missing, unreadable or not Ed25519."""


class RollbackError(LedgerError):
    """The database is behind, or diverges from, the last signed checkpoint."""


class LedgerUnavailableError(LedgerError):
    """The ledger refuses writes until an operator resolves a fault."""


class SignerStateError(LedgerError):
    """The signer's external state file is unreadable or inconsistent."""


class IndexCorruptError(LedgerError):
    """A stored Merkle node is missing or has the wrong length."""
