"""The deployment gate: checks and their recorded decisions, deployments and
rollbacks, break-glass overrides, and the pipeline client.

May import ``ledger`` and the rooms below it (registry, evidence, approvals,
policy, projections); never Flask or the adapters. ``client.py`` imports
nothing but the standard library, so this ``__init__`` stays empty: running
``python -m governance.gate.client`` must not pull in the service.
"""
