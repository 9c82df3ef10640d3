"""Projections: the relational ``gov_*`` tables that the ledger's entries are projected into.

Owns the schema of every projection (``tables.py``), the :class:`Projector`
that runs each room's projection functions inside the append transaction
and rebuilds every table from the ledger, and the audit facts each entry
leaves. May import ``ledger`` and SQLAlchemy; every other room imports it.
"""
