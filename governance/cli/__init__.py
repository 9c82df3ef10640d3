"""The governance command-line adapter: ``flask tokens ...``, ``flask governance rebuild``,
``flask policy check|test``.

May import Flask, click, the governance rooms and ``ledger``; no room imports it.
"""

from __future__ import annotations


def init_app(app) -> None:
    """Add the governance command groups to the app's CLI."""
    from .policy import policy_cli
    from .projections import governance_cli
    from .tokens import tokens_cli

    app.cli.add_command(tokens_cli)
    app.cli.add_command(governance_cli)
    app.cli.add_command(policy_cli)
