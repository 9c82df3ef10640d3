"""The audit trail: every ledger entry's audit row, newest first, filterable, as JSON or CSV.

May import ``ledger`` and the projections room; never Flask.
"""
