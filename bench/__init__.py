"""Benchmarks of the service against the raw limits of the same machine.

``python -m bench.ledger`` (``make bench``) measures the ledger alone,
``python -m bench.http_api`` (``make bench-http``) the HTTP API; each takes
``--help``. ``docs/performance.md`` describes what is measured and records
the latest figures.
"""
