"""Policy: the YAML policy files with CEL rules, their evaluation, the context a policy sees,
the active policy set (recorded in the ledger when it loads) and the policy test cases.

May import ``ledger`` and the projections room; never Flask, never the gate (the gate uses it).
"""
