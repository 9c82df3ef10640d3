"""The pipeline client, ``python -m governance.gate.client``, against a running server.

The app is served by werkzeug on a free port of 127.0.0.1 in a thread; the
client runs as a subprocess with ``GOVERNANCE_URL``/``GOVERNANCE_TOKEN`` in its
environment, as in a CI job. Exit codes: 0 allow or recorded, 1 deny or
refused, 2 anything else.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from policy_fixtures.gate_scenarios import Gate
from ports import served

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "governance" / "gate" / "client.py"


@pytest.fixture
def gate(world) -> Gate:
    gate = Gate(world)
    gate.minimal()  # churn@1: allowed everywhere
    gate.compliant(evidence={"privacy_assessment": None})  # credit-risk@1: denied in prod
    return gate


@pytest.fixture
def server(app, gate):
    with served(app) as url:
        yield url


@pytest.fixture
def deployer(gate) -> str:
    return gate.world.token("dan", "deployer")


def run(*args: str, url: str | None = None, token: str | None = None, script: Path | None = None,
        extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVERNANCE_")}
    if url is not None:
        env["GOVERNANCE_URL"] = url
    if token is not None:
        env["GOVERNANCE_TOKEN"] = token
    env.update(extra_env or {})
    command = ([sys.executable, "-I", "-S", str(script)] if script
               else [sys.executable, "-m", "governance.gate.client"])
    return subprocess.run([*command, *args], cwd=ROOT if script is None else script.parent, env=env,
                          capture_output=True, text=True, timeout=60)


TARGET = ("--model", "churn", "--version", "1", "--environment", "staging")
DENIED = ("--model", "credit-risk", "--version", "1", "--environment", "prod")


def test_check_allow_exits_0_and_says_how_to_record(server, deployer, gate):
    result = run("check", *TARGET, url=server, token=deployer)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    [decision] = [d for d in gate.decision_entries()]
    seq = decision["seq"]
    digest = decision["payload"]["policy_digest"]
    assert lines[0] == f"ALLOW: churn@1 -> staging (decision dc-{seq}, seq {seq}, policy {digest[:12]})"
    assert lines[-1].startswith(f"  record the deployment with: python -m governance.gate.client record "
                                f"--decision-id dc-{seq}   (valid until {decision['payload']['expires_at']})")
    assert decision["actor"] == "dan"


def test_check_deny_exits_1_and_prints_the_reasons(server, deployer, gate):
    result = run("check", *DENIED, url=server, token=deployer)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("DENY: credit-risk@1 -> prod (decision dc-")
    assert lines[1] == ("  x privacy.dpia-approved: The model uses personal data but has no "
                        "privacy assessment (DPIA).")
    assert lines[2].startswith("      fix: Have the DPIA reviewed and submit it as privacy_assessment evidence")
    assert len(lines) == 3
    assert [e["payload"]["decision"] for e in gate.decision_entries()] == ["deny"]


def test_a_warning_is_printed_on_an_allow(server, deployer, gate):
    gate.minimal(model="nocard", card=False)
    result = run("check", "--model", "nocard", "--version", "1", "--environment", "prod",
                 url=server, token=deployer)
    assert result.returncode == 0, result.stderr
    assert "  ! explainability.model-card: The version has no model card." in result.stdout.splitlines()


@pytest.mark.parametrize("position", ["before", "after"])
def test_json_prints_the_decision(server, deployer, gate, position):
    args = ["--json", "check", *TARGET] if position == "before" else ["check", *TARGET, "--json"]
    result = run(*args, url=server, token=deployer)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    [entry] = gate.decision_entries()
    assert decision["decision"] == "allow"
    assert decision["decision_id"] == f"dc-{entry['seq']}"
    assert decision["input_digest"] == entry["payload"]["input_digest"]
    assert decision["results"] == entry["payload"]["results"]


def test_record_a_decision_id(server, deployer, gate):
    check = json.loads(run("--json", "check", *TARGET, url=server, token=deployer).stdout)
    result = run("record", "--decision-id", check["decision_id"], "--reason", "release 1",
                 url=server, token=deployer)
    assert result.returncode == 0, result.stderr
    [deployment] = gate.entries("deployment.recorded")
    assert result.stdout == (f"RECORDED: dp-{deployment['seq']} churn@1 -> staging "
                             f"(seq {deployment['seq']}, was nothing)\n")
    assert deployment["payload"]["reason"] == "release 1"
    assert deployment["payload"]["decision_id"] == check["decision_id"]

    again = run("record", "--decision-id", check["decision_id"], url=server, token=deployer)
    assert again.returncode == 1
    assert again.stderr.startswith(f"REFUSED: decision {check['decision_id']} was already used by ")


def test_record_a_deny_decision_exits_1(server, deployer, gate):
    check = json.loads(run("--json", "check", *DENIED, url=server, token=deployer).stdout)
    assert check["decision"] == "deny"
    result = run("record", "--decision-id", check["decision_id"], url=server, token=deployer)
    assert result.returncode == 1
    assert result.stderr == (f"REFUSED: decision {check['decision_id']} was a deny: "
                             "nothing may be deployed from it\n")
    assert gate.entries("deployment.recorded") == []


def test_record_a_target_checks_then_records(server, deployer, gate):
    result = run("record", *TARGET, "--reason", "pipeline 42", url=server, token=deployer)
    assert result.returncode == 0, result.stderr
    [decision] = gate.decision_entries()
    [deployment] = gate.entries("deployment.recorded")
    assert deployment["payload"]["decision_id"] == f"dc-{decision['seq']}"
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ALLOW: churn@1 -> staging")
    assert lines[-1] == f"RECORDED: dp-{deployment['seq']} churn@1 -> staging (seq {deployment['seq']}, was nothing)"

    second = run("record", "--model", "churn", "--version", "1", "--environment", "dev",
                 url=server, token=deployer)
    assert second.returncode == 0, second.stderr
    assert len(gate.entries("deployment.recorded")) == 2

    denied = run("record", *DENIED, url=server, token=deployer)
    assert denied.returncode == 1
    assert denied.stdout.startswith("DENY: credit-risk@1 -> prod")
    assert len(gate.entries("deployment.recorded")) == 2


def test_rollback_goes_through_the_gate(server, deployer, gate):
    gate.world.version("churn", "2")
    gate.world.evidence("model_card", {"content": "# Churn 2"}, model="churn", version="2")
    assert run("record", *TARGET, url=server, token=deployer).returncode == 0
    assert run("record", "--model", "churn", "--version", "2", "--environment", "staging",
               url=server, token=deployer).returncode == 0
    live = gate.entries("deployment.recorded")[-1]["seq"]

    result = run("rollback", "--model", "churn", "--environment", "staging", "--reason", "latency doubled",
                 url=server, token=deployer)
    assert result.returncode == 0, (result.stdout, result.stderr)
    decision = gate.decision_entries()[-1]
    [rollback] = gate.entries("deployment.rolled_back")
    assert decision["payload"]["action"] == "rollback" and decision["payload"]["decision"] == "allow"
    assert rollback["payload"]["decision_id"] == f"dc-{decision['seq']}"
    assert rollback["payload"]["reason"] == "latency doubled"
    lines = result.stdout.splitlines()
    digest = decision["payload"]["policy_digest"]
    assert lines[0] == (f"ALLOW: churn@1 -> staging, rolling back dp-{live} (decision dc-{decision['seq']}, "
                        f"seq {decision['seq']}, policy {digest[:12]})")
    assert not any("record the deployment" in line for line in lines)
    assert lines[-1] == (f"ROLLED BACK: dp-{rollback['seq']} churn@1 -> staging "
                         f"(seq {rollback['seq']}, was 2, rolls back dp-{live})")

    # a rollback is not rolled back: the server refuses (exit 1), nothing is recorded
    size = gate.ledger.size()
    again = run("rollback", "--deployment-id", f"dp-{rollback['seq']}", "--reason", "again",
                url=server, token=deployer)
    assert again.returncode == 1, (again.stdout, again.stderr)
    assert again.stderr == f"REFUSED: dp-{rollback['seq']} is itself a rollback; deploy forward instead\n"
    assert gate.ledger.size() == size


def test_a_denied_rollback_exits_1_with_the_reasons(server, deployer, gate):
    gate.world.version("churn", "2")
    assert run("record", *TARGET, url=server, token=deployer).returncode == 0
    assert run("record", "--model", "churn", "--version", "2", "--environment", "staging",
               url=server, token=deployer).returncode == 0
    live = gate.entries("deployment.recorded")[-1]["seq"]
    rejection = gate.world.approve("erin", "business", model="churn", version="1", decision="reject")
    result = run("rollback", "--model", "churn", "--environment", "staging", "--reason", "latency",
                 url=server, token=deployer)
    assert result.returncode == 1, (result.stdout, result.stderr)
    decision = gate.decision_entries()[-1]
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"DENY: churn@1 -> staging, rolling back dp-{live} (decision dc-{decision['seq']}")
    assert lines[1] == f"  x signoff.no-rejection: Rejected by erin (business, {rejection['approval_id']})"
    assert result.stderr == (f"REFUSED: the gate denied the rollback of dp-{live} to churn@1 in staging "
                             f"(decision dc-{decision['seq']}): signoff.no-rejection\n")
    assert gate.entries("deployment.rolled_back") == []

    as_json = run("--json", "rollback", "--deployment-id", f"dp-{live}", "--reason", "latency",
                  url=server, token=deployer)
    assert as_json.returncode == 1
    body = json.loads(as_json.stdout)
    assert body["code"] == 409 and body["errors"]["decision"]["decision"] == "deny"

    nothing = run("rollback", "--model", "churn", "--environment", "prod", "--reason", "x",
                  url=server, token=deployer)
    assert nothing.returncode == 1
    assert nothing.stderr == "REFUSED: nothing of churn is deployed in prod\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_errors_exit_2(server, deployer, gate):
    size = gate.ledger.size()
    no_token = run("check", *TARGET, url=server)
    assert no_token.returncode == 2
    assert no_token.stderr == "error: set $GOVERNANCE_TOKEN to an API token with the deployer role\n"

    unknown = run("check", "--model", "nothing", "--version", "1", "--environment", "prod",
                  url=server, token=deployer)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: HTTP 404: ")
    assert "nothing" in unknown.stderr

    author = gate.world.token("alice", "author")
    size = gate.ledger.size()
    forbidden = run("check", *TARGET, url=server, token=author)
    assert forbidden.returncode == 2
    assert forbidden.stderr.startswith("error: HTTP 403: alice lacks the role")
    wrong = run("check", *TARGET, url=server, token="mlg_0000000000000000_" + "A" * 43)
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: HTTP 401: ")
    invalid = run("check", "--model", "churn", "--version", "1", "--environment", "Prod",
                  url=server, token=deployer)
    assert invalid.returncode == 2
    assert invalid.stderr.startswith("error: HTTP 422: validation failed")
    assert '"environment"' in invalid.stderr
    bad_id = run("record", "--decision-id", "dp-1", url=server, token=deployer)
    assert bad_id.returncode == 2 and bad_id.stderr.startswith("error: HTTP 422: ")
    missing = run("record", "--decision-id", "dc-999999", url=server, token=deployer)
    assert missing.returncode == 2 and missing.stderr == "error: HTTP 404: no decision dc-999999\n"
    assert gate.ledger.size() == size  # none of these recorded anything

    port = _free_port()
    unreachable = run("check", *TARGET, url=f"http://127.0.0.1:{port}", token=deployer)
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith(f"error: cannot reach http://127.0.0.1:{port}: ")


@pytest.mark.parametrize("args, message", [
    (("check", "--model", "churn", "--version", "1"), "error: --model, --version and --environment are required"),
    (("record",), "error: --model, --version and --environment are required"),
    (("check", "--model", "churn", "--version", "1", "--environment", "dev", "--bogus"), "unrecognized arguments"),
    (("deploy", *TARGET), "invalid choice: 'deploy'"),
    (("rollback", "--model", "churn", "--environment", "staging"), "the following arguments are required: --reason"),
    (("rollback", "--model", "churn", "--reason", "x"),
     "error: --deployment-id, or --model and --environment, are required"),
    ((), "the following arguments are required: command"),
    (("--timeout", "soon", "check", *TARGET), "invalid float value: 'soon'"),
], ids=["missing-environment", "record-without-target", "unknown-option", "unknown-command",
        "rollback-without-reason", "rollback-without-target", "no-command", "bad-timeout"])
def test_bad_arguments_exit_2(server, deployer, gate, args, message):
    result = run(*args, url=server, token=deployer)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert gate.decision_entries() == []


def test_help_exits_0():
    result = run("--help")
    assert result.returncode == 0
    assert "Ask the ML governance deployment gate." in result.stdout


def test_the_token_variable_can_be_renamed(server, deployer):
    result = run("--token-env", "CI_GATE_TOKEN", "check", *TARGET, url=server,
                 extra_env={"CI_GATE_TOKEN": deployer})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ALLOW: churn@1 -> staging")


def test_the_client_imports_only_the_standard_library():
    tree = ast.parse(CLIENT.read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import would not survive copying the file alone"
            modules.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            pytest.fail("dynamic import in the client")
    assert {"argparse", "json", "urllib.request"} <= modules
    outside = {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names | {"__future__"}}
    assert outside == set()


def test_the_client_file_alone_works_without_site_packages(server, deployer, tmp_path):
    script = tmp_path / "gate_client.py"
    shutil.copy(CLIENT, script)
    result = run("check", *TARGET, url=server, token=deployer, script=script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ALLOW: churn@1 -> staging")
