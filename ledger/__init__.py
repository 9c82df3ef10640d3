"""A domain-agnostic, tamper-evident, append-only ledger.

Canonical encoding (RFC 8785), hash chain, RFC 6962 Merkle tree, Ed25519
signed checkpoints (C2SP signed notes), proofs and verification, over SQLite
or PostgreSQL. Nothing here knows about models or governance.
"""

from __future__ import annotations

from .db import make_engine
from .service import AppendedEntry, Ledger, LedgerSettings
from .store import LedgerStore

__all__ = ["Ledger", "LedgerSettings", "LedgerStore", "AppendedEntry", "make_engine", "init_app"]


def init_app(app, api) -> Ledger:
    """Create the app's ledger from its config; register API and CLI."""
    from .api import blp
    from .cli import ledger_cli

    config = app.config
    passphrase = config.get("LEDGER_SIGNING_KEY_PASSPHRASE")
    settings = LedgerSettings(
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
    ledger = Ledger(LedgerStore(app.extensions["db_engine"]), settings)
    app.extensions["ledger"] = ledger
    api.register_blueprint(blp)
    app.cli.add_command(ledger_cli)
    return ledger
