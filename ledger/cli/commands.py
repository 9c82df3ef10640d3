"""``flask ledger ...``: operator commands (keys, notes, checkpoints, verification)."""

from __future__ import annotations

import getpass
import sys

import click
from flask import current_app
from flask.cli import AppGroup
from tqdm import tqdm

from ..errors import LedgerError
from ..operations import accept_restore, rotate_key
from ..verify import LedgerVerifier, VerifierStateFile

ledger_cli = AppGroup("ledger", help="Tamper-evident ledger: keys, notes, checkpoints, verification.")


def _ledger():
    return current_app.extensions["ledger"]


def _operator(name: str | None) -> str:
    return f"operator:{name or getpass.getuser()}"


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@ledger_cli.command("init-key")
def init_key():
    """Create the signing key if there is none, publish its public key; print its key id."""
    try:
        key = _ledger().publish_public_key()
    except LedgerError as e:
        _fail(str(e))
    click.echo(f"signing key {key.key_id} ({current_app.config['LEDGER_SIGNING_KEY']})")


@ledger_cli.command("annotate")
@click.option("--subject", required=True, help="what the note is about, e.g. ledger:restore")
@click.option("--kind", required=True, help="dotted entry kind, e.g. operator.incident")
@click.option("--text", required=True, help="the note")
@click.option("--actor", default=None, help="operator name (default: the OS user)")
def annotate(subject, kind, text, actor):
    """Record an operator's note (incident, restored backup, review) as an entry."""
    try:
        entry = _ledger().append(kind, _operator(actor), subject, {"text": text})
    except LedgerError as e:
        _fail(str(e))
    click.echo(f"seq {entry.seq} leaf {entry.leaf_hash.hex()}")


@ledger_cli.command("checkpoint")
def checkpoint():
    """Sign a checkpoint of the current tree now."""
    try:
        cp = _ledger().create_checkpoint()
    except LedgerError as e:
        _fail(str(e))
    click.echo(cp.note, nl=False)


@ledger_cli.command("status")
def status():
    """Show size, latest checkpoint, signer state and whether writes are allowed."""
    ledger = _ledger()
    click.echo(f"origin: {ledger.settings.origin}")
    click.echo(f"entries: {ledger.size()}")
    latest = ledger.latest_checkpoint()
    click.echo(f"latest checkpoint: size {latest.tree_size} at {latest.timestamp}" if latest
               else "latest checkpoint: none")
    try:
        state = ledger.check_against_signer()
        click.echo(f"signer state: size {state.tree_size}, consistent with the database" if state
                   else "signer state: none yet")
    except LedgerError as e:
        click.echo(f"signer state: REFUSING WRITES: {e}")
        sys.exit(1)


@ledger_cli.command("verify")
@click.option("--incremental", is_flag=True,
              help="start from the last verified checkpoint (consistency proof) instead of seq 0")
@click.option("--no-external", is_flag=True,
              help="skip anchors kept outside the database (signer state, published notes)")
def verify(incremental, no_external):
    """Recompute every hash, link, root and signature; exit 1 on any fault."""
    ledger = _ledger()
    total = ledger.size()
    bar = tqdm(total=total, unit="entry", unit_scale=True, disable=None, file=sys.stderr,
               desc="verifying")
    verifier = LedgerVerifier(
        ledger, verifier_state=VerifierStateFile(current_app.config["LEDGER_VERIFY_STATE"]),
        use_external=not no_external, progress=bar.update)
    try:
        report = verifier.verify_incremental() if incremental else verifier.verify_full()
    except LedgerError as e:
        bar.close()
        _fail(str(e), 2)
    bar.close()
    click.echo(f"trust: {report.trust}")
    for fault in report.faults:
        click.echo(f"FAULT {fault}")
    click.echo(report.summary())
    sys.exit(0 if report.ok else 1)


@ledger_cli.command("rotate-key")
@click.option("--actor", default=None, help="operator name (default: the OS user)")
def rotate(actor):
    """Replace the signing key; the old public key stays trusted for old checkpoints."""
    try:
        result = rotate_key(_ledger(), _operator(actor))
    except LedgerError as e:
        _fail(str(e))
    click.echo(f"retired {result['retired_key_id']}\nnew     {result['new_key_id']}\n"
               f"recorded at seq {result['seq']}, checkpoint size {result['checkpoint_size']}")


@ledger_cli.command("accept-restore")
@click.option("--reason", required=True, help="why the restored database is accepted")
@click.option("--actor", default=None, help="operator name (default: the OS user)")
@click.confirmation_option(prompt="This accepts a database older than what was signed. Continue?")
def accept(reason, actor):
    """Accept a deliberately restored database after a rollback was detected."""
    try:
        result = accept_restore(_ledger(), _operator(actor), reason)
    except (LedgerError, ValueError) as e:
        _fail(str(e))
    click.echo(f"recorded at seq {result['seq']}; old signer state kept at {result['state_kept_at']}; "
               f"{len(result['superseded_notes'])} published note(s) moved to superseded/")
