"""Approvals: sign-offs (approve or reject) of a model version by area, and their revocation,
with separation of duties enforced here.

May import ``ledger`` and the projections, registry and evidence rooms; never Flask.
"""
