"""Lineage: OpenLineage RunEvents recorded in the ledger, and the upstream graph of a model version.

May import ``ledger`` and the projections and registry rooms; never Flask.
"""
