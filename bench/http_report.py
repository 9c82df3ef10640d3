"""Markdown tables from a ``bench.http_api`` results file (for docs/performance-http.md).

    .venv/bin/python -m bench.http_report bench/results/http-<time>.json
"""

from __future__ import annotations

import json
import sys

from .http_api import PHASES, check_shaped_text, target_status, trivial_ratio
from .http_servers import DEFAULT_CONFIG


def _n(x, digits=0) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "–"
    return f"{x:,.{digits}f}"


def configs_table(b: dict) -> list[str]:
    configs = b["configs"]
    head = "| phase | " + " | ".join(
        c["config"] + (" (default)" if c["default"] else "") for c in configs) + " |"
    lines = [head, "|---|" + "---:|" * len(configs)]
    for key, label in PHASES:
        cells = []
        for c in configs:
            r = c.get(key)
            if r is None:
                cells.append("–")
                continue
            mark = "†" if r["cpu"]["other_share"] > 0.10 else ""
            err = f", {r['errors']} err" if r["errors"] else ""
            cells.append(f"{_n(r['per_s'])}/s · {_n(r['p50_ms'], 1)} · {_n(r['p99_ms'], 1)}{err}{mark}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def summary_table(b: dict) -> list[str]:
    default = next((c["config"] for c in b["configs"] if c["default"]), DEFAULT_CONFIG.label)
    lines = [f"| phase | default ({default}): ok/s · p50 · p99 ms | best config | best: ok/s · p50 · p99 ms "
             "| best / trivial app | best / raw 16 conn | best / raw 1 conn | target |",
             "|---|---:|---|---:|---:|---:|---:|---|"]
    for row in b["summary"]:
        d, bb = row["default"], row["best"]
        lines.append(
            f"| {row['phase']} | {_n(d['per_s'])} · {_n(d['p50_ms'], 1)} · {_n(d['p99_ms'], 1)} "
            f"| {row['best_config']} | {_n(bb['per_s'])} · {_n(bb['p50_ms'], 1)} · {_n(bb['p99_ms'], 1)} "
            f"| {_n(trivial_ratio(row), 3)} | {_n(row.get('raw16_ratio'), 2)} | {_n(row.get('raw1_ratio'), 2)} "
            f"| {target_status(row, '**met**', '**missed**')} |")
    return lines


def cpu_table(b: dict) -> list[str]:
    """Where the machine's CPU went in the default configuration."""
    default = next(c for c in b["configs"] if c["default"])
    lines = ["| phase | ok/s | client | server (workers) | database | other | machine busy |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for key, label in PHASES:
        r = default.get(key)
        if r is None:
            continue
        c = r["cpu"]
        lines.append(f"| {label} | {_n(r['per_s'])} | {c['client_share']:.0%} | {c.get('server_share', 0):.0%} "
                     f"| {c.get('db_share', 0):.0%} | {c['other_share']:.0%} | {c['machine_busy']:.0%} |")
    return lines


def main(path: str) -> int:
    results = json.loads(open(path).read())
    m = results["machine"]
    out = [f"Run of {m['date']}, code {m['code']}; {m['cpu']}, {m['cores']} cores, {m['memory']}, "
           f"{m['kernel']}; {m['python']}, granian {m.get('granian', '–')}, gunicorn {m['gunicorn']}, SQLite {m['sqlite']}, "
           f"PostgreSQL {m.get('postgresql', '–')}; temp {m['tempdir']}.", ""]
    out += ["Trivial WSGI app (the server's ceiling), 16 clients:", "",
            "| configuration | req/s | p50 ms | p99 ms | client CPU | server CPU |", "|---|---:|---:|---:|---:|---:|"]
    for label, r in results["trivial"].items():
        out.append(f"| {label} | {_n(r['per_s'])} | {_n(r['p50_ms'], 2)} | {_n(r['p99_ms'], 2)} "
                   f"| {r['cpu']['client_share']:.0%} | {r['cpu']['server_share']:.0%} |")
    for b in results["backends"]:
        r1, r16 = b["raw"]["1"], b["raw"]["16"]
        out += ["", f"### {b['label']}", "",
                f"Ledger filled with {b['fill']['entries']:,} entries in {b['fill']['seconds']:.1f} s "
                f"({_n(b['fill']['per_s'])}/s); {b['fill']['audit_rows']:,} audit rows over "
                f"{b['fill']['models']} models; database {b.get('size', '?')}.", "",
                f"Raw durable one-row commits: 1 connection {_n(r1['per_s'])}/s (p50 {r1['p50_ms']:.2f} ms); "
                f"16 connections {_n(r16['per_s'])}/s (p50 {r16['p50_ms']:.2f} ms, p99 {r16['p99_ms']:.2f} ms).",
                *(["", check_shaped_text(b)] if "check16" in b["raw"] else []),
                "", "Default and best configuration per phase:", ""]
        out += summary_table(b)
        out += ["", "Every configuration (ok/s · p50 ms · p99 ms; † = other processes took more than 10% "
                "of the machine during the phase):", ""]
        out += configs_table(b)
        out += ["", "CPU share of the machine (2 cores) by process group, default configuration:", ""]
        out += cpu_table(b)
        p = b["policy"]
        out += ["", f"Policy set: {p['rules']} rules, context {p['context_bytes']:,} bytes, decision {p['decision']}.",
                "", "| in-process, sequential | mean µs | p50 µs | p99 µs |", "|---|---:|---:|---:|"]
        for key, label in (("evaluate", "pure `evaluate()`"), ("canonical_context", "canonical bytes + reload"),
                           ("build_context", "`build_context` (SQL)"),
                           ("gate_check", "`gate.check` in-process (no HTTP)")):
            t = p[key]
            out.append(f"| {label} | {_n(t['mean_us'])} | {_n(t['p50_us'])} | {_n(t['p99_us'])} |")
    mlf = results.get("mlflow")
    if mlf:
        out += ["", "### MLflow", ""]
        if mlf.get("unavailable"):
            out.append(f"MLflow unavailable: {mlf['unavailable']}")
        for run in mlf.get("runs", []):
            c, h = run["create"], run["health"]
            out.append(f"- `mlflow server --workers {run['workers']}` ({mlf['version']}; {run['sqlite']}): "
                       f"model-versions/create {_n(c['per_s'])}/s, p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms, "
                       f"{c['errors']} errors; /health {_n(h['per_s'])}/s")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
