"""The ledger's command-line adapter: ``flask ledger ...`` (keys, notes, checkpoints, verification).

May import Flask, click and the ``ledger`` library; never ``governance``.
"""

from __future__ import annotations


def init_app(app) -> None:
    """Add the ``ledger`` command group to the app's CLI."""
    from .commands import ledger_cli

    app.cli.add_command(ledger_cli)
