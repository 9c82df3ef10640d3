"""OpenLineage ingestion and the upstream graph of a model version.

``POST /api/v1/lineage`` takes RunEvents as the official OpenLineage clients
send them (HTTP transport). The whole event, unknown facets included, is the
payload of one ``lineage.run_event.recorded`` entry; its projection keeps a
graph of jobs, runs and datasets:

    dataset --input_to--> run --produced--> dataset,   run --run_of--> job

Registered datasets and model versions join that graph through their lineage
identity (namespace, name). The upstream graph of a model version starts at
its training dataset versions and its artifact's lineage identity, then
follows ``produced`` edges backwards to runs and their inputs, transitively.
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa

from . import tables
from .errors import InvalidRequestError
from .projections import AuditFacts, canonical_text, projects
from .registry import version_row

MAX_GRAPH_NODES = 5000


def node_id(node_type: str, namespace: str, name: str) -> str:
    """Return the fixed-width id of a lineage node."""
    return hashlib.sha256(f"{node_type}\0{namespace}\0{name}".encode()).hexdigest()


def record_run_event(ledger, actor: str, event: dict) -> dict:
    """Record one OpenLineage RunEvent (already validated) as a ledger entry."""
    run_id = event["run"]["runId"]
    entry = ledger.append("lineage.run_event.recorded", actor, f"lineage:run:{run_id}",
                          {"event": event})
    return {"seq": entry.seq, "run_id": run_id}


def _upsert_node(conn, node_type, namespace, name, attributes, seq):
    nid = node_id(node_type, namespace, name)
    t = tables.lineage_node
    row = conn.execute(sa.select(t.c.attributes).where(t.c.node_id == nid)).first()
    if row is None:
        conn.execute(t.insert(), dict(node_id=nid, node_type=node_type, namespace=namespace,
                                         name=name, attributes=canonical_text(attributes),
                                         first_seq=seq, last_seq=seq))
    else:
        merged = {**json.loads(row.attributes), **attributes}
        conn.execute(sa.update(t).where(t.c.node_id == nid).values(
            attributes=canonical_text(merged), last_seq=seq))
    return nid


def _add_edge(conn, source, target, relation, seq):
    t = tables.lineage_edge
    exists = conn.execute(sa.select(t.c.seq).where(
        t.c.source == source, t.c.target == target, t.c.relation == relation)).first()
    if exists is None:
        conn.execute(t.insert(), dict(source=source, target=target, relation=relation, seq=seq))


@projects("lineage.run_event.recorded")
def _run_event(conn, entry):
    event = entry.payload["event"]
    job = event["job"]
    run_id = event["run"]["runId"]
    event_type = event.get("eventType", "OTHER")
    job_id = _upsert_node(conn, "job", job["namespace"], job["name"],
                          {"facets": sorted((job.get("facets") or {}).keys())}, entry.seq)
    run_attrs = {"job_namespace": job["namespace"], "job_name": job["name"],
                 "event_type": event_type, "event_time": event["eventTime"],
                 "run_facets": sorted((event["run"].get("facets") or {}).keys())}
    run_node = _upsert_node(conn, "run", "", run_id, run_attrs, entry.seq)
    _add_edge(conn, run_node, job_id, "run_of", entry.seq)
    for item in event.get("inputs") or []:
        dataset_node = _upsert_node(conn, "dataset", item["namespace"], item["name"],
                                    {"facets": sorted((item.get("facets") or {}).keys())}, entry.seq)
        _add_edge(conn, dataset_node, run_node, "input_to", entry.seq)
    for item in event.get("outputs") or []:
        dataset_node = _upsert_node(conn, "dataset", item["namespace"], item["name"],
                                    {"facets": sorted((item.get("facets") or {}).keys())}, entry.seq)
        _add_edge(conn, run_node, dataset_node, "produced", entry.seq)
    return AuditFacts(f"lineage {event_type} for run {run_id} of job {job['namespace']}/{job['name']}"
                      f" ({len(event.get('inputs') or [])} inputs, "
                      f"{len(event.get('outputs') or [])} outputs)")


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


def validate_event_kind(event: dict) -> None:
    """Refuse OpenLineage events that are not RunEvents."""
    if "run" not in event or "job" not in event:
        raise InvalidRequestError("only OpenLineage RunEvents (with run and job) are accepted")
