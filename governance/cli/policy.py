"""``flask policy ...``: validate the policy files and run their test cases."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from ..policy.files import PolicyLoadError, compile_policy_set, read_policy_dir
from ..policy.testing import run_cases

policy_cli = AppGroup("policy", help="Deployment policies: validate, test.")


def _load(directory):
    try:
        return compile_policy_set(read_policy_dir(directory))
    except PolicyLoadError as e:
        for problem in e.errors["policies"]:
            click.echo(f"INVALID {problem}", err=True)
        sys.exit(1)


@policy_cli.command("check")
@click.option("--dir", "directory", default=None, help="policy directory (default: POLICY_DIR)")
def check(directory):
    """Validate the policy files (YAML, schema, CEL); print the digest."""
    policy_set = _load(directory or current_app.config["POLICY_DIR"])
    click.echo(f"valid: {len(policy_set.files)} files, {len(policy_set.rules)} rules, "
               f"environments {', '.join(sorted(policy_set.environments))}\ndigest {policy_set.digest}")


@policy_cli.command("test")
@click.option("--dir", "directory", default=None, help="policy directory (default: POLICY_DIR)")
@click.option("-v", "--verbose", is_flag=True, help="list passing cases too")
def test(directory, verbose):
    """Run the cases in <policy dir>/tests/; exit 1 if any fails."""
    directory = Path(directory or current_app.config["POLICY_DIR"])
    policy_set = _load(directory)
    results = run_cases(policy_set, directory / "tests")
    for result in results:
        if not result.ok:
            click.echo(f"FAIL {result.file}: {result.name}")
            for problem in result.problems:
                click.echo(f"     {problem}")
        elif verbose:
            click.echo(f"PASS {result.file}: {result.name}")
    failed = sum(not r.ok for r in results)
    click.echo(f"{len(results) - failed}/{len(results)} policy test cases passed "
               f"(policy set {policy_set.digest[:12]})")
    sys.exit(1 if failed or not results else 0)
