"""The upstream lineage graph of a model version.

It starts at the version's training dataset versions and its artifact's
lineage identity, then follows ``produced`` edges backwards to runs and
their inputs, transitively, over the graph ``events.py`` projects.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from ..projections import tables
from ..registry.models import version_row
from .events import node_id

MAX_GRAPH_NODES = 5000


def upstream_graph(engine, model_name: str, version: str) -> dict:
    """Return the transitive upstream graph of a model version as nodes and edges."""
    nodes: dict[str, dict] = {}
    edges: set[tuple[str, str, str]] = set()
    with engine.connect() as conn:
        row = version_row(conn, model_name, version)
        root = f"model_version:{model_name}@{version}"
        nodes[root] = {"id": root, "type": "model_version", "name": model_name, "version": version,
                       "artifact_sha256": row.artifact_sha256}
        frontier = []
        for ref in json.loads(row.training_datasets):
            dv_id = f"dataset_version:{ref['name']}@{ref['version']}"
            nodes[dv_id] = {"id": dv_id, "type": "dataset_version", "name": ref["name"],
                            "version": ref["version"], "content_sha256": ref["content_sha256"]}
            edges.add((dv_id, root, "trained"))
            ds = conn.execute(sa.select(tables.dataset).where(
                tables.dataset.c.name == ref["name"])).first()
            if ds is not None:
                frontier.append((node_id("dataset", ds.lineage_namespace, ds.lineage_name), dv_id,
                                 "version_of"))
        if row.lineage_namespace:
            frontier.append((node_id("dataset", row.lineage_namespace, row.lineage_name), root,
                             "artifact_of"))
        seen = set()
        while frontier and len(nodes) < MAX_GRAPH_NODES:
            current, child, relation = frontier.pop()
            node = conn.execute(sa.select(tables.lineage_node).where(
                tables.lineage_node.c.node_id == current)).first()
            if node is None:
                continue
            key = _lineage_key(node)
            edges.add((key, child, relation))
            if current in seen:
                continue
            seen.add(current)
            nodes[key] = {"id": key, "type": node.node_type, "namespace": node.namespace or None,
                          "name": node.name, **json.loads(node.attributes)}
            # what points at this node: producing runs (for datasets), inputs and jobs (for runs)
            incoming = conn.execute(sa.select(tables.lineage_edge).where(
                tables.lineage_edge.c.target == current)).all()
            for edge in incoming:
                frontier.append((edge.source, key, edge.relation))
            if node.node_type == "run":
                for edge in conn.execute(sa.select(tables.lineage_edge).where(
                        tables.lineage_edge.c.source == current,
                        tables.lineage_edge.c.relation == "run_of")):
                    job = conn.execute(sa.select(tables.lineage_node).where(
                        tables.lineage_node.c.node_id == edge.target)).first()
                    if job is not None:
                        job_key = _lineage_key(job)
                        nodes[job_key] = {"id": job_key, "type": "job", "namespace": job.namespace,
                                          "name": job.name, **json.loads(job.attributes)}
                        edges.add((key, job_key, "run_of"))
    return {"model": model_name, "version": version, "truncated": len(nodes) >= MAX_GRAPH_NODES,
            "nodes": sorted(nodes.values(), key=lambda n: n["id"]),
            "edges": [{"source": s, "target": t, "relation": r} for s, t, r in sorted(edges)]}


def _lineage_key(node) -> str:
    if node.node_type == "run":
        return f"run:{node.name}"
    return f"{node.node_type}:{node.namespace}/{node.name}"
