"""OpenLineage ingestion: RunEvents recorded in the ledger, projected into a lineage graph.

``POST /api/v1/lineage`` takes RunEvents as the official OpenLineage clients
send them (HTTP transport). The whole event, unknown facets included, is the
payload of one ``lineage.run_event.recorded`` entry; its projection keeps a
graph of jobs, runs and datasets:

    dataset --input_to--> run --produced--> dataset,   run --run_of--> job

Registered datasets and model versions join that graph through their lineage
identity (namespace, name); ``graph.py`` walks it upstream from a model
version.

An event is recorded once. Its identity is its run, ``eventType`` and
``eventTime`` (as sent); ``gov_lineage_event`` keeps, per identity, the first
entry and the SHA-256 of the event's canonical bytes. The same event again
(a client's retry: equal after canonicalisation) is answered with the entry
already recorded; another event with the same identity is a conflict. Both
are decided under the append lock, so two identical events sent at once
append one entry.
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa

from ledger.canonical import canonical_bytes

from ..errors import ConflictError, InvalidRequestError
from ..projections import tables
from ..projections.projector import AuditFacts, canonical_text, projects


def node_id(node_type: str, namespace: str, name: str) -> str:
    """Return the fixed-width id of a lineage node."""
    return hashlib.sha256(f"{node_type}\0{namespace}\0{name}".encode()).hexdigest()


def event_identity(event: dict) -> tuple[str, str | None, str]:
    """(runId, eventType, eventTime) of a RunEvent: what makes two events the same event."""
    return event["run"]["runId"], event.get("eventType"), event["eventTime"]


def event_key(event: dict) -> str:
    """The fixed-width key of an event's identity."""
    return hashlib.sha256(canonical_bytes(list(event_identity(event)))).hexdigest()


def content_digest(event: dict) -> str:
    """SHA-256 of the event's canonical bytes (RFC 8785)."""
    return hashlib.sha256(canonical_bytes(event)).hexdigest()


def record_run_event(ledger, actor: str, event: dict) -> dict:
    """Record one OpenLineage RunEvent (already validated) as a ledger entry, once.

    Returns ``seq``, ``run_id`` and ``created`` (False: the same event was
    already recorded at ``seq``).

    Raises:
        ConflictError: another event with the same run, eventType and eventTime is recorded.
    """
    run_id, event_type, event_time = event_identity(event)
    key, digest = event_key(event), content_digest(event)
    prepared = ledger.prepare("lineage.run_event.recorded", actor, f"lineage:run:{run_id}", {"event": event})
    with ledger.transaction() as writer:
        recorded = writer.connection.execute(sa.select(tables.lineage_event).where(
            tables.lineage_event.c.event_key == key)).first()
        if recorded is not None:
            if recorded.content_sha256 != digest:
                raise ConflictError(
                    f"run {run_id} already has a {event_type or 'untyped'} event at {event_time} "
                    f"(seq {recorded.seq}) with other content; an OpenLineage event is recorded once")
            return {"seq": recorded.seq, "run_id": run_id, "created": False}
        [entry] = writer.append_prepared([prepared])
    return {"seq": entry.seq, "run_id": run_id, "created": True}


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


def _index_event(conn, event: dict, seq: int) -> None:
    """Remember the event's identity; the first entry with it stays (older ledgers may repeat one)."""
    t = tables.lineage_event
    key = event_key(event)
    if conn.execute(sa.select(t.c.seq).where(t.c.event_key == key)).first() is None:
        run_id, event_type, event_time = event_identity(event)
        conn.execute(t.insert(), dict(event_key=key, run_id=run_id, event_type=event_type,
                                      event_time=event_time, content_sha256=content_digest(event), seq=seq))


@projects("lineage.run_event.recorded")
def _run_event(conn, entry):
    event = entry.payload["event"]
    _index_event(conn, event, entry.seq)
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
