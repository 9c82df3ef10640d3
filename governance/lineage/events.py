"""OpenLineage ingestion: RunEvents recorded in the ledger, projected into a lineage graph.

``POST /api/v1/lineage`` takes RunEvents as the official OpenLineage clients
send them (HTTP transport). The whole event, unknown facets included, is the
payload of one ``lineage.run_event.recorded`` entry; its projection keeps a
graph of jobs, runs and datasets:

    dataset --input_to--> run --produced--> dataset,   run --run_of--> job

Registered datasets and model versions join that graph through their lineage
identity (namespace, name); ``graph.py`` walks it upstream from a model
version.
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa

from ..errors import InvalidRequestError
from ..projections import tables
from ..projections.projector import AuditFacts, canonical_text, projects

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


def validate_event_kind(event: dict) -> None:
    """Refuse OpenLineage events that are not RunEvents."""
    if "run" not in event or "job" not in event:
        raise InvalidRequestError("only OpenLineage RunEvents (with run and job) are accepted")
