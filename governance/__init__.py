"""The governance domain, a library: one sub-package ("room") per capability, written through the ledger.

Rooms (none imports Flask): ``projections`` (the projector and every
projection table), ``identity``, ``registry``, ``lineage``, ``evidence``,
``approvals``, ``policy``, ``gate`` (with the pipeline client) and ``audit``.
Adapters beside them: ``api`` (HTTP), ``web`` (pages), ``cli`` (commands);
``app.py`` wires them. Rooms may import ``ledger`` and rooms below them,
never an adapter; ``ledger`` never imports this package. Importing the
package itself is free, so that ``python -m governance.gate.client`` needs
nothing but the standard library.
"""
