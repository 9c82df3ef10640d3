"""The registry: models and their immutable versions, and the dataset catalogue they are trained on.

May import ``ledger`` and the projections room; never Flask.
"""
