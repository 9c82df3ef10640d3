"""Evidence about a model version: typed records, the documents they cite, and bias reports
the service computes itself (fairlearn).

May import ``ledger`` and the projections and registry rooms; never Flask.
"""
