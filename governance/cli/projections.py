"""``flask governance rebuild``: drop every projection row and rebuild them from the ledger."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

governance_cli = AppGroup("governance", help="Governance projections.")


@governance_cli.command("rebuild")
def rebuild():
    """Drop every projection row and rebuild them from the ledger."""
    count = current_app.extensions["projector"].rebuild(current_app.extensions["ledger"])
    click.echo(f"rebuilt projections from {count} ledger entries")
