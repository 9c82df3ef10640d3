"""Deployment gate client for CI/CD pipelines. Standard library only.

    python -m governance.gate.client check  --model M --version V --environment prod [--json]
    python -m governance.gate.client record --decision-id dc-123 [--reason TEXT]
    python -m governance.gate.client record --model M --version V --environment prod   # check, then record
    python -m governance.gate.client rollback --model M --environment prod --reason TEXT   # the live deployment
    python -m governance.gate.client rollback --deployment-id dp-123 --reason TEXT

A rollback goes through the gate like a deployment: the server records its
decision and, on an allow, the rollback; the reasons are printed either way.

The server is ``$GOVERNANCE_URL`` (default http://127.0.0.1:8000) and the
token is read from ``$GOVERNANCE_TOKEN`` (or the variable named by
``--token-env``), never from the command line, so it stays out of process
lists and CI logs. Exit codes: 0 allow (or deployment or rollback recorded),
1 deny (or the deployment or rollback was refused: 409), 2 anything else (bad
arguments, authentication, network, server error). This file can be copied
alone into a pipeline image: it imports nothing but the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

ALLOW, DENY, ERROR = 0, 1, 2
DEFAULT_URL = "http://127.0.0.1:8000"


class GateError(Exception):
    """The request could not be completed (exit code 2)."""


class GateClient:
    """A minimal HTTP client for the gate endpoints."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                payload = json.loads(e.read() or b"{}")
            except ValueError:
                payload = {"message": e.reason}
            return e.code, payload
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise GateError(f"cannot reach {self.base_url}: {getattr(e, 'reason', e)}") from e

    def check(self, model: str, version: str, environment: str) -> dict:
        status, payload = self._request("POST", "/api/v1/deployments/check", {
            "model": model, "version": version, "environment": environment})
        if status != 200:
            raise GateError(_describe(status, payload))
        return payload

    def record(self, decision_id: str, reason: str = "") -> tuple[int, dict]:
        status, payload = self._request("POST", "/api/v1/deployments",
                                        {"decision_id": decision_id, "reason": reason})
        if status not in (201, 409):
            raise GateError(_describe(status, payload))
        return status, payload

    def live_deployment(self, model: str, environment: str) -> str | None:
        """The id of the deployment (or rollback) live in ``environment``, or None."""
        query = urllib.parse.urlencode({"model": model, "environment": environment, "limit": 1})
        status, payload = self._request("GET", f"/api/v1/deployments?{query}")
        if status != 200:
            raise GateError(_describe(status, payload))
        return payload[0]["deployment_id"] if payload else None

    def rollback(self, deployment_id: str, reason: str) -> tuple[int, dict]:
        """201 with the rollback and its decision, or 409 (a denied one has ``errors.decision``)."""
        path = f"/api/v1/deployments/{urllib.parse.quote(deployment_id, safe='')}/rollback"
        status, payload = self._request("POST", path, {"reason": reason})
        if status not in (201, 409):
            raise GateError(_describe(status, payload))
        return status, payload


def _describe(status: int, payload: dict) -> str:
    message = payload.get("message") or "no message"
    errors = payload.get("errors")
    return f"HTTP {status}: {message}" + (f" {json.dumps(errors, sort_keys=True)}" if errors else "")


def program_name() -> str:
    """How the user ran this client: ``mlgov-gate``, ``python3 gate_client.py`` or the module."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if name in ("", "-c", "client.py", "__main__.py"):
        return "python -m governance.gate.client"
    return f"python3 {sys.argv[0]}" if name.endswith(".py") else name


def format_decision(decision: dict) -> str:
    """Human-readable reasons, one line per failing or warning rule."""
    verdict = decision["decision"].upper()
    rollback = decision.get("action") == "rollback"
    what = f", rolling back {decision['rolls_back']}" if rollback else ""
    lines = [f"{verdict}: {decision['model']}@{decision['version']} -> {decision['environment']}{what} "
             f"(decision {decision['decision_id']}, seq {decision['seq']}, "
             f"policy {decision['policy_digest'][:12]})"]
    for result in decision["results"]:
        if not result["applicable"] or result["passed"] and result["rule"] != "break-glass.override":
            continue
        mark = "!" if result["passed"] or result["severity"] == "warn" else "x"
        lines.append(f"  {mark} {result['rule']}: {result['message']}")
        if result.get("remediation") and not result["passed"]:
            lines.append(f"      fix: {result['remediation']}")
    if decision["decision"] == "allow" and not rollback:
        lines.append(f"  record the deployment with: {program_name()} record "
                     f"--decision-id {decision['decision_id']}   (valid until {decision['expires_at']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=program_name(),
                                     description="Ask the ML governance deployment gate.")
    parser.add_argument("--url", default=os.environ.get("GOVERNANCE_URL", DEFAULT_URL),
                        help="server (default $GOVERNANCE_URL or %(default)s)")
    parser.add_argument("--token-env", default="GOVERNANCE_TOKEN",
                        help="environment variable holding the API token (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print the server's JSON")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="may this version go to this environment?")
    record = commands.add_parser("record", help="record a deployment from an allow decision")
    rollback = commands.add_parser("rollback", help="roll a deployment back, through the gate")
    for sub in (check, record, rollback):
        # also accepted after the subcommand; SUPPRESS keeps a --json given before it
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="print the server's JSON")
        sub.add_argument("--model")
        sub.add_argument("--environment")
    for sub in (check, record):
        sub.add_argument("--version")
    record.add_argument("--decision-id", help="an allow decision from check")
    record.add_argument("--reason", default="", help="why (release notes, ticket)")
    rollback.add_argument("--deployment-id", help="the live deployment (default: the one live for "
                                                  "--model in --environment)")
    rollback.add_argument("--reason", required=True, help="why (incident, ticket)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return ERROR if e.code else ALLOW
    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"error: set ${args.token_env} to an API token with the deployer role", file=sys.stderr)
        return ERROR
    if args.command == "rollback":
        if not (args.deployment_id or args.model and args.environment):
            print("error: --deployment-id, or --model and --environment, are required", file=sys.stderr)
            return ERROR
        return _rollback(GateClient(args.url, token, args.timeout), args)
    target = (args.model, args.version, args.environment)
    if args.command == "check" or not args.decision_id:
        if not all(target):
            print("error: --model, --version and --environment are required", file=sys.stderr)
            return ERROR
    client = GateClient(args.url, token, args.timeout)
    try:
        decision = None
        decision_id = getattr(args, "decision_id", None)
        if decision_id is None:
            decision = client.check(*target)
            print(json.dumps(decision, indent=2) if args.json else format_decision(decision))
            if args.command == "check" or decision["decision"] != "allow":
                return ALLOW if decision["decision"] == "allow" else DENY
            decision_id = decision["decision_id"]
        status, payload = client.record(decision_id, args.reason)
    except GateError as e:
        print(f"error: {e}", file=sys.stderr)
        return ERROR
    if args.json:
        print(json.dumps(payload, indent=2))
    elif status == 201:
        print(f"RECORDED: {payload['deployment_id']} {payload['model']}@{payload['version']} -> "
              f"{payload['environment']} (seq {payload['seq']}, was {payload['previous_version'] or 'nothing'})")
    else:
        print(f"REFUSED: {payload.get('message')}", file=sys.stderr)
    return ALLOW if status == 201 else DENY


def _rollback(client: GateClient, args) -> int:
    """Roll back (the live deployment of --model in --environment, or --deployment-id); print why."""
    try:
        deployment_id = args.deployment_id or client.live_deployment(args.model, args.environment)
        if deployment_id is None:
            print(f"REFUSED: nothing of {args.model} is deployed in {args.environment}", file=sys.stderr)
            return DENY
        status, payload = client.rollback(deployment_id, args.reason)
    except GateError as e:
        print(f"error: {e}", file=sys.stderr)
        return ERROR
    decision = payload.get("decision") if status == 201 else (payload.get("errors") or {}).get("decision")
    if args.json:
        print(json.dumps(payload, indent=2))
    elif decision:
        print(format_decision(decision))
    if status == 201:
        if not args.json:
            print(f"ROLLED BACK: {payload['deployment_id']} {payload['model']}@{payload['version']} -> "
                  f"{payload['environment']} (seq {payload['seq']}, was {payload['previous_version']}, "
                  f"rolls back {payload['rolls_back']})")
        return ALLOW
    if not args.json:
        print(f"REFUSED: {payload.get('message')}", file=sys.stderr)
    return DENY


if __name__ == "__main__":
    sys.exit(main())
