"""Benchmarks of the ledger against the raw limits of the same machine.

Run ``python -m bench.ledger --help``; ``docs/performance.md`` describes what
is measured and records a full run.
"""
