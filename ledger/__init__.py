"""A domain-agnostic, tamper-evident, append-only ledger: a library.

Canonical encoding (RFC 8785), hash chain, RFC 6962 Merkle tree, Ed25519
signed checkpoints (C2SP signed notes), proofs and verification, over SQLite
or PostgreSQL. Nothing here knows about models or governance: it never
imports ``governance`` or ``app``, and Flask only in its adapters ``http/``
and ``cli/``.
"""

from __future__ import annotations

from .db import make_engine
from .log import AppendedEntry, Ledger, LedgerSettings
from .store import LedgerStore

__all__ = ["AppendedEntry", "Ledger", "LedgerSettings", "LedgerStore", "make_engine", "settings_from_config"]


def settings_from_config(config) -> LedgerSettings:
    """The ledger's settings from a mapping of ``LEDGER_*`` configuration values."""
    passphrase = config.get("LEDGER_SIGNING_KEY_PASSPHRASE")
    return LedgerSettings(
        origin=config["LEDGER_ORIGIN"],
        signing_key_path=config["LEDGER_SIGNING_KEY"],
        signing_key_passphrase=passphrase.encode() if passphrase else None,
        signer_state_path=config["LEDGER_SIGNER_STATE"],
        trusted_keys_path=config["LEDGER_TRUSTED_KEYS"],
        mirror_dir=config["LEDGER_CHECKPOINT_DIR"] or None,
        checkpoint_every=int(config["LEDGER_CHECKPOINT_EVERY"]),
        checkpoint_interval=float(config["LEDGER_CHECKPOINT_SECONDS"]),
        max_payload=int(config["LEDGER_MAX_PAYLOAD_BYTES"]),
    )
