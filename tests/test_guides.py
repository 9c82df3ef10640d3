"""The guides work: every command of README.md's tour and of the three user guides, run for real.

One live server (granian, as ``make run`` starts it) serves the module, on a
temporary SQLite database or, when ``DATABASE_URL`` names PostgreSQL, on a
schema of its own in the session's database. The guides' ``sh`` blocks run in
bash (``set -euo pipefail``), one bash per guide, in the order a reader meets
them: README.md, docs/pipelines.md, docs/officers.md (which reads what the
pipelines guide recorded), docs/regulators.md. They get the server's
environment, so ``.venv/bin/flask --app app ...`` sees its database and keys.
Each block must succeed, and the output a guide shows after a block must be
what the block printed (see ``guides.markdown`` for the convention).
"""

from __future__ import annotations

import pytest

from guides.live import ROOT, LiveServer, guide_environment
from guides.markdown import blocks, missing_lines
from guides.run import GuideRun, run_guide

GUIDES = ["README.md", "docs/pipelines.md", "docs/officers.md", "docs/regulators.md"]


@pytest.fixture(scope="module")
def live(module_database, tmp_path_factory):
    home = tmp_path_factory.mktemp("guides")
    server = LiveServer(guide_environment(module_database, home), home / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()


@pytest.fixture(scope="module")
def ran(live, tmp_path_factory):
    """Every guide run once, in order (a later guide reads what an earlier one recorded)."""
    workdir = tmp_path_factory.mktemp("guide-scripts")
    return {name: run_guide(ROOT / name, live.env, live.url, workdir) for name in GUIDES}


def succeeded(run: GuideRun) -> str:
    """Assert the guide ran to its end and printed what it shows; return everything it printed."""
    assert run.failed is None and run.returncode == 0, run.describe_failure()
    for block, printed in run.printed:
        if block.shown_output is not None:
            missing = missing_lines(block.shown_output, printed)
            assert not missing, (f"{block.where}: the output shown after this block is not what it printed\n"
                                 f"missing (normalised): {missing}\nprinted:\n{printed}")
    return run.output()


@pytest.mark.parametrize("name", GUIDES)
def test_every_shell_block_is_run_or_says_why_not(name):
    found = blocks(ROOT / name)
    # A block in another shell dialect would silently never run.
    assert not [b.where for b in found if b.lang in ("bash", "shell", "console", "shell-session")]
    assert [b.where for b in found if b.lang == "sh" and not b.run and not b.not_run_because] == []
    assert [b for b in found if b.run], f"{name} has no block to run"


def test_readme_tour(ran):
    out = succeeded(ran["README.md"])
    assert "DENY: churn@1 -> prod" in out
    assert "x lineage.training-datasets-registered:" in out
    assert "exit code 1" in out
    assert "ALLOW: churn@2 -> prod" in out
    assert "RECORDED: dp-" in out and "churn@2 -> prod" in out


def test_pipelines_guide(ran):
    out = succeeded(ran["docs/pipelines.md"])
    deny, rest = out.split("DENY: credit-risk@1 -> prod", 1)[1].split("exit code 1", 1)
    for rule in ("bias.report-covers-protected-attributes", "explainability.report", "privacy.dpia-approved",
                 "signoff.required-areas"):
        assert f"x {rule}:" in deny
    assert "alice registered credit-risk@1 and cannot sign it off" in rest
    assert "one person cannot fill two approval areas" in rest
    assert "ALLOW: credit-risk@1 -> prod" in rest
    assert "RECORDED: dp-" in rest and "credit-risk@1 -> prod" in rest
    assert "! break-glass.override: break-glass override ov-" in rest
    assert "the author of the version cannot confirm its override" in rest
    assert "credit-risk@2 -> prod" in rest.split("RECORDED:")[-1]
    assert rest.rstrip().endswith("-> 1")


def test_officers_guide(ran, live):
    out = succeeded(ran["docs/officers.md"])
    assert "seq,ts,kind,actor,subject,model,version,summary,flagged,leaf_hash" in out
    assert "deployment.override.requested" in out
    assert "matches: True" in out
    assert "leaf hash matches" in out
    # The pages the guide sends people to exist (signing in is tested in tests/test_web.py).
    assert live.get("/ui/login")[0] == 200
    for page in ("/ui/audit", "/ui/overrides", "/ui/deployments"):
        assert live.get(page)[0] == 302


def test_regulators_guide(ran):
    out = succeeded(ran["docs/regulators.md"])
    verified, changed = out.split("exit code", 1)[0].rsplit("checkpoints ", 1)
    assert verified.count(": OK") == 3 and "FAIL" not in verified  # signatures, consistency, inclusion
    assert changed.count(": OK") == 2 and changed.count(": FAIL") == 1  # the changed entry only
    assert "(deployment.recorded by eve) is in checkpoint" in changed
