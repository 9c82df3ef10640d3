"""``flask tokens ...``: create (the secret shown once), list and revoke API tokens."""

from __future__ import annotations

import getpass
import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from ..errors import GovernanceError
from ..identity import tokens

tokens_cli = AppGroup("tokens", help="API tokens: create (shown once), list, revoke.")


def _operator(name):
    return f"operator:{name or getpass.getuser()}"


def _fail(message):
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@tokens_cli.command("create")
@click.option("--name", "principal", required=True, help="the person or pipeline the token is for")
@click.option("--role", "roles", multiple=True, required=True,
              help="admin, author, deployer, auditor or approver:<area> (repeatable)")
@click.option("--description", default="", help="what the token is for")
@click.option("--expires-in-days", type=int, default=None)
@click.option("--actor", default=None, help="operator name (default: the OS user)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def create(principal, roles, description, expires_in_days, actor, as_json):
    """Create an API token. The secret is printed once and stored only hashed."""
    try:
        result = tokens.create_token(current_app.extensions["ledger"], _operator(actor), principal,
                                       list(roles), description, expires_in_days)
    except GovernanceError as e:
        _fail(str(e))
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"token id:  {result['token_id']}\nprincipal: {result['principal']}\n"
               f"roles:     {', '.join(result['roles'])}\nseq:       {result['seq']}\n\n"
               f"{result['token']}\n\nStore it now: it cannot be shown again.")


@tokens_cli.command("revoke")
@click.argument("token_id")
@click.option("--reason", default="")
@click.option("--actor", default=None, help="operator name (default: the OS user)")
def revoke(token_id, reason, actor):
    """Revoke an API token."""
    try:
        result = tokens.revoke_token(current_app.extensions["ledger"], _operator(actor), token_id, reason)
    except GovernanceError as e:
        _fail(str(e))
    click.echo(f"revoked {token_id} at seq {result['seq']}")


@tokens_cli.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="include revoked tokens")
def list_(include_revoked):
    """List tokens (never their secrets)."""
    for token in tokens.list_tokens(current_app.extensions["db_engine"], include_revoked):
        state = f"revoked {token['revoked_at']}" if token["revoked_seq"] is not None else "active"
        click.echo(f"{token['token_id']}  {token['principal']:<24} {','.join(token['roles']):<40} "
                   f"{state}  {token['description']}")
