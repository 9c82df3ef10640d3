"""Lineage API: OpenLineage RunEvents from the real client, and upstream graphs.

The app is served for real (werkzeug's WSGI server on 127.0.0.1, a free port)
and events are sent by ``openlineage-python``'s own ``OpenLineageClient`` with
its ``HttpTransport`` and ``api_key`` auth, exactly as a pipeline would. The
bytes each request carried are taken from the requests session's response
hook, to check the ledger keeps the event verbatim.

Hostile or invalid events, which the client cannot produce, are posted as raw
JSON through the Flask test client.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import uuid

import attr
import pytest
import requests
import sqlalchemy as sa
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import (
    DatasetEvent, InputDataset, Job, JobEvent, OutputDataset, Run, RunEvent, RunState, StaticDataset,
)
from openlineage.client.facet_v2 import DatasetFacet, JobFacet, RunFacet, schema_dataset
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

from factories import World
from ports import served

GRAPH = "/api/v1/models/credit-risk/versions/1/lineage"
PRODUCER = "https://example.org/pipelines/credit-risk"


@attr.define
class GovernanceRunFacet(RunFacet):
    """A custom run facet the service has never heard of."""

    ticket: str
    reviewers: list
    limits: dict

    @staticmethod
    def _get_schema() -> str:
        return "https://example.org/schemas/GovernanceRunFacet.json"


@attr.define
class QualityDatasetFacet(DatasetFacet):
    rows_dropped: int
    checks: list

    @staticmethod
    def _get_schema() -> str:
        return "https://example.org/schemas/QualityDatasetFacet.json"


@attr.define
class OwnerJobFacet(JobFacet):
    team: str

    @staticmethod
    def _get_schema() -> str:
        return "https://example.org/schemas/OwnerJobFacet.json"


@pytest.fixture
def server(app):
    """Serve ``app`` over real HTTP on a free port of 127.0.0.1; yield its base URL."""
    with served(app, threaded=True) as url:
        yield url


class Emitter:
    """An OpenLineageClient with the HTTP transport, recording what went over the wire."""

    def __init__(self, url: str, token: str | None):
        self.sent: list[tuple[int, dict, dict | None]] = []  # (status, request JSON, response JSON)
        session = requests.Session()
        session.hooks["response"].append(self._record)
        auth = ApiKeyTokenProvider({"api_key": token}) if token else None
        config = HttpConfig(url=url, endpoint="api/v1/lineage", session=session,
                            **({"auth": auth} if auth else {}))
        self.client = OpenLineageClient(transport=HttpTransport(config))

    def _record(self, response, *args, **kwargs):
        try:
            answer = response.json()
        except ValueError:
            answer = None
        self.sent.append((response.status_code, json.loads(response.request.body), answer))

    def emit(self, event) -> dict:
        self.client.emit(event)
        status, _request, answer = self.sent[-1]
        assert status == 201, answer
        return answer

    def close(self):
        self.client.close()


@pytest.fixture
def emitter(server, world):
    """An emitter authenticated with an author token (alice)."""
    made = []

    def make(token: str | None = "alice"):
        made.append(Emitter(server, world.token(token, "author") if token else None))
        return made[-1]

    yield make
    for e in made:
        e.close()


def run_event(state, run_id, job, inputs=(), outputs=(), run_facets=None, job_facets=None,
              time="2024-05-01T10:00:00.000+02:00") -> RunEvent:
    return RunEvent(
        eventType=state, eventTime=time, producer=PRODUCER,
        run=Run(runId=run_id, facets=run_facets or {}),
        job=Job(namespace=job[0], name=job[1], facets=job_facets or {}),
        inputs=[InputDataset(namespace=ns, name=name) for ns, name in inputs],
        outputs=[OutputDataset(namespace=ns, name=name) for ns, name in outputs])


def ledger_event(world: World, seq: int) -> dict:
    """Return the decoded canonical JSON of the lineage entry at ``seq``, read through the API."""
    response = world.client.get(f"/api/v1/ledger/entries/{seq}", headers=world.auditor())
    assert response.status_code == 200
    canonical = json.loads(base64.b64decode(response.get_json()["canonical_b64"]))
    assert canonical["kind"] == "lineage.run_event.recorded"
    return canonical


def register(world: World):
    """loans@v1 (lineage identity ml-governance/loans) and credit-risk@1 (artifact s3://models)."""
    world.dataset()
    world.model()
    world.version("credit-risk", "1", lineage={"namespace": "s3://models", "name": "credit-risk/1"})
    world.token("audrey", "auditor")


def test_events_from_the_openlineage_client_are_recorded_verbatim(world, emitter):
    register(world)
    send = emitter()
    run_id = str(uuid.uuid4())
    custom = GovernanceRunFacet(ticket="GOV-42", reviewers=["pia", "cid"],
                                limits={"max_rows": 1000000, "nested": {"ok": True, "ratio": 0.25}})
    quality = QualityDatasetFacet(rows_dropped=12, checks=["not_null", "unique"])
    schema = schema_dataset.SchemaDatasetFacet(fields=[
        schema_dataset.SchemaDatasetFacetFields(name="income", type="double")])
    before = world.ledger_size()
    start = run_event(RunState.START, run_id, ("ml", "train_credit_risk"),
                      inputs=[("ml-governance", "loans")], run_facets={"governance": custom},
                      job_facets={"owner": OwnerJobFacet(team="risk-ml")})
    start.inputs[0].facets = {"quality": quality, "schema": schema}
    answer = send.emit(start)
    complete = run_event(RunState.COMPLETE, run_id, ("ml", "train_credit_risk"),
                         inputs=[("ml-governance", "loans")],
                         outputs=[("s3://models", "credit-risk/1")],
                         time="2024-05-01T08:30:00.000Z")
    second = send.emit(complete)
    assert world.ledger_size() == before + 2
    assert answer == {"seq": before, "run_id": run_id}
    assert second == {"seq": before + 1, "run_id": run_id}

    for (_status, request_json, response_json) in send.sent:
        canonical = ledger_event(world, response_json["seq"])
        assert canonical["payload"] == {"event": request_json}  # exactly what went over the wire
        assert canonical["actor"] == "alice"
        assert canonical["subject"] == f"lineage:run:{run_id}"

    recorded = ledger_event(world, before)["payload"]["event"]
    facet = recorded["run"]["facets"]["governance"]
    assert facet["_schemaURL"] == "https://example.org/schemas/GovernanceRunFacet.json"
    assert facet["ticket"] == "GOV-42"
    assert facet["limits"] == {"max_rows": 1000000, "nested": {"ok": True, "ratio": 0.25}}
    assert recorded["inputs"][0]["facets"]["quality"]["rows_dropped"] == 12
    assert recorded["inputs"][0]["facets"]["schema"]["fields"] == [
        {"name": "income", "type": "double", "fields": []}]
    assert recorded["job"]["facets"]["owner"]["team"] == "risk-ml"
    assert recorded["eventTime"] == "2024-05-01T10:00:00.000+02:00"

    audit = world.client.get("/api/v1/audit/events", query_string={"kind": "lineage.*"},
                             headers=world.auditor()).get_json()["events"]
    assert [e["seq"] for e in audit] == [before + 1, before]
    assert "COMPLETE for run" in audit[0]["summary"] and "(1 inputs, 1 outputs)" in audit[0]["summary"]


def test_upstream_graph_is_transitive_with_jobs(world, emitter):
    register(world)
    send = emitter()
    runs = {name: str(uuid.uuid4()) for name in ("export", "extract", "clean", "train", "score", "other")}
    jobs = {"export": ("crm", "export_forms"), "extract": ("etl", "extract_applications"),
            "clean": ("etl", "clean_loans"), "train": ("ml", "train_credit_risk"),
            "score": ("ml", "score_batch"), "other": ("etl", "unrelated")}
    flows = {
        "export": ([("crm", "raw_forms")], [("crm", "applications")]),
        "extract": ([("crm", "applications")], [("s3://raw", "applications")]),
        "clean": ([("s3://raw", "applications"), ("s3://raw", "bureau_scores")],
                  [("ml-governance", "loans")]),
        "train": ([("ml-governance", "loans")], [("s3://models", "credit-risk/1")]),
        # downstream of the model, and unrelated: neither is upstream of credit-risk@1
        "score": ([("s3://models", "credit-risk/1")], [("s3://scores", "today")]),
        "other": ([("crm", "raw_forms")], [("s3://elsewhere", "x")]),
    }
    for name in ("export", "extract", "clean", "train", "score", "other"):
        inputs, outputs = flows[name]
        facets = {"governance": GovernanceRunFacet(ticket=f"T-{name}", reviewers=[], limits={})}
        send.emit(run_event(RunState.START, runs[name], jobs[name], inputs=inputs, run_facets=facets))
        send.emit(run_event(RunState.COMPLETE, runs[name], jobs[name], inputs=inputs, outputs=outputs,
                            run_facets=facets))

    response = world.client.get(GRAPH, headers=world.auditor())
    assert response.status_code == 200, response.get_json()
    graph = response.get_json()
    assert (graph["model"], graph["version"], graph["truncated"]) == ("credit-risk", "1", False)

    def run(name):
        return f"run:{runs[name]}"

    def job(name):
        return f"job:{jobs[name][0]}/{jobs[name][1]}"

    root, dv = "model_version:credit-risk@1", "dataset_version:loans@v1"
    loans, artifact = "dataset:ml-governance/loans", "dataset:s3://models/credit-risk/1"
    raw, bureau = "dataset:s3://raw/applications", "dataset:s3://raw/bureau_scores"
    apps, forms = "dataset:crm/applications", "dataset:crm/raw_forms"
    expected_edges = {
        (dv, root, "trained"), (loans, dv, "version_of"), (artifact, root, "artifact_of"),
        (run("clean"), loans, "produced"), (raw, run("clean"), "input_to"),
        (bureau, run("clean"), "input_to"), (run("clean"), job("clean"), "run_of"),
        (run("extract"), raw, "produced"), (apps, run("extract"), "input_to"),
        (run("extract"), job("extract"), "run_of"),
        (run("export"), apps, "produced"), (forms, run("export"), "input_to"),
        (run("export"), job("export"), "run_of"),
        (run("train"), artifact, "produced"), (loans, run("train"), "input_to"),
        (run("train"), job("train"), "run_of"),
    }
    assert {(e["source"], e["target"], e["relation"]) for e in graph["edges"]} == expected_edges
    assert len(graph["edges"]) == len(expected_edges)
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert len(nodes) == len(graph["nodes"])
    assert set(nodes) == {root, dv, loans, artifact, raw, bureau, apps, forms,
                          *(run(n) for n in ("export", "extract", "clean", "train")),
                          *(job(n) for n in ("export", "extract", "clean", "train"))}
    assert [n["id"] for n in graph["nodes"]] == sorted(nodes)

    assert nodes[root]["artifact_sha256"] == world.client.get(
        "/api/v1/models/credit-risk/versions/1", headers=world.auditor()).get_json()["artifact_sha256"]
    assert nodes[dv]["content_sha256"] == world.client.get(
        "/api/v1/datasets/loans/versions/v1", headers=world.auditor()).get_json()["content_sha256"]
    clean = nodes[run("clean")]
    assert clean["type"] == "run"
    assert clean["event_type"] == "COMPLETE"
    assert (clean["job_namespace"], clean["job_name"]) == jobs["clean"]
    assert "governance" in clean["run_facets"]
    assert nodes[job("clean")]["type"] == "job"
    assert (nodes[loans]["type"], nodes[loans]["namespace"], nodes[loans]["name"]) == (
        "dataset", "ml-governance", "loans")

    # a reader with any role may ask; strangers may not
    assert world.client.get(GRAPH, headers=world.approver("pia", "privacy")).status_code == 200
    assert world.client.get(GRAPH).status_code == 401
    assert world.client.get("/api/v1/models/credit-risk/versions/2/lineage",
                            headers=world.auditor()).status_code == 404


def test_graph_without_lineage_events_has_the_registry_part_only(world):
    world.registered_version()
    graph = world.client.get(GRAPH, headers=world.auditor()).get_json()
    assert [n["id"] for n in graph["nodes"]] == ["dataset_version:loans@v1", "model_version:credit-risk@1"]
    assert graph["edges"] == [{"source": "dataset_version:loans@v1",
                               "target": "model_version:credit-risk@1", "relation": "trained"}]


def test_a_job_reading_and_writing_the_same_dataset_terminates(world, client):
    world.registered_version()
    run_id = str(uuid.uuid4())
    event = valid_event(run_id)
    event["inputs"] = event["outputs"] = [{"namespace": "ml-governance", "name": "loans"}]
    assert client.post("/api/v1/lineage", json=event, headers=world.author()).status_code == 201
    graph = client.get(GRAPH, headers=world.auditor()).get_json()
    edges = {(e["source"], e["target"], e["relation"]) for e in graph["edges"]}
    assert (f"run:{run_id}", "dataset:ml-governance/loans", "produced") in edges
    assert ("dataset:ml-governance/loans", f"run:{run_id}", "input_to") in edges
    assert [n["id"] for n in graph["nodes"]].count(f"run:{run_id}") == 1


# -- refused events ----------------------------------------------------------------

def test_the_client_sees_refusals_and_nothing_is_written(world, emitter):
    register(world)
    world.token("audrey", "auditor")
    event = run_event(RunState.START, str(uuid.uuid4()), ("ml", "train"), inputs=[("crm", "x")])
    before = world.ledger_size()

    anonymous = emitter(token=None)
    with pytest.raises(requests.HTTPError, match="401 Client Error"):
        anonymous.client.emit(event)
    auditor = Emitter(anonymous.client.transport.url, world.token("audrey", "auditor"))
    try:
        with pytest.raises(requests.HTTPError, match="403 Client Error"):
            auditor.client.emit(event)
    finally:
        auditor.close()

    send = emitter()
    dataset_event = DatasetEvent(eventTime="2024-05-01T10:00:00Z", producer=PRODUCER,
                                 dataset=StaticDataset(namespace="crm", name="applications"))
    with pytest.raises(requests.HTTPError, match="422 Client Error"):
        send.client.emit(dataset_event)
    assert send.sent[-1][1]["dataset"] == {"namespace": "crm", "name": "applications", "facets": {}}
    job_event = JobEvent(eventTime="2024-05-01T10:00:00Z", producer=PRODUCER,
                         job=Job(namespace="ml", name="train"))
    with pytest.raises(requests.HTTPError, match="422 Client Error"):
        send.client.emit(job_event)
    assert "run" in send.sent[-1][2]["errors"]["json"]
    assert world.ledger_size() == before


def valid_event(run_id: str | None = None) -> dict:
    return {
        "eventType": "COMPLETE", "eventTime": "2024-05-01T10:00:00Z",
        "run": {"runId": run_id or str(uuid.uuid4()), "facets": {}},
        "job": {"namespace": "etl", "name": "clean_loans", "facets": {}},
        "inputs": [{"namespace": "s3://raw", "name": "applications", "facets": {}}],
        "outputs": [{"namespace": "ml-governance", "name": "loans", "facets": {}}],
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }


def mutate(path: str, value=None, delete: bool = False) -> dict:
    event = copy.deepcopy(valid_event())
    *parents, last = path.split(".")
    node = event
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if delete:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return event


# case -> (event, top-level key of errors.json that names the problem)
HOSTILE = {
    "missing runId": (mutate("run.runId", delete=True), "run"),
    "bad UUID": (mutate("run.runId", "not-a-uuid"), "run"),
    "UUID too long": (mutate("run.runId", "0f2a5c3e-8d1b-4c6f-9a7e-2b4d6f8a0c1e0"), "run"),
    "numeric runId": (mutate("run.runId", 12345), "run"),
    "missing eventTime": (mutate("eventTime", delete=True), "eventTime"),
    "eventTime in words": (mutate("eventTime", "yesterday"), "eventTime"),
    "eventTime without offset": (mutate("eventTime", "2024-05-01T10:00:00"), "eventTime"),
    "eventTime as a number": (mutate("eventTime", 1714557600), "eventTime"),
    "unknown eventType": (mutate("eventType", "DONE"), "eventType"),
    "run facets a list": (mutate("run.facets", ["governance"]), "run"),
    "run facets a string": (mutate("run.facets", "governance"), "run"),
    "job facets a number": (mutate("job.facets", 5), "job"),
    "input facets a list": (mutate("inputs.0.facets", []), "inputs"),
    "output facets a string": (mutate("outputs.0.facets", "x"), "outputs"),
    "inputs an object": (mutate("inputs", {"namespace": "s3://raw", "name": "applications"}), "inputs"),
    "input without name": (mutate("inputs.0.name", delete=True), "inputs"),
    "job without namespace": (mutate("job.namespace", delete=True), "job"),
    "job name on two lines": (mutate("job.name", "clean\nloans"), "job"),
    "run a string": (mutate("run", "0f2a5c3e-8d1b-4c6f-9a7e-2b4d6f8a0c1e"), "run"),
    "missing producer": (mutate("producer", delete=True), "producer"),
    "missing schemaURL": (mutate("schemaURL", delete=True), "schemaURL"),
    "no run (a DatasetEvent)": ({
        "eventTime": "2024-05-01T10:00:00Z", "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
        "dataset": {"namespace": "crm", "name": "applications", "facets": {}}}, "run"),
    "no job": (mutate("job", delete=True), "job"),
}


def test_hostile_or_invalid_events_are_4xx_and_write_nothing(world, client):
    world.registered_version()
    headers = world.author()
    before = world.ledger_size()
    wrong = {}
    for case, (event, key) in HOSTILE.items():
        response = client.post("/api/v1/lineage", json=event, headers=headers)
        errors = (response.get_json() or {}).get("errors", {}).get("json", {})
        if response.status_code != 422 or key not in errors:
            wrong[case] = (response.status_code, response.get_json())
    # a trailing newline must not slip past the UUID check (a regex ending in `$` lets it through)
    response = client.post("/api/v1/lineage", headers=headers, json=mutate(
        "run.runId", "0f2a5c3e-8d1b-4c6f-9a7e-2b4d6f8a0c1e\n"))
    if response.status_code != 422:
        wrong["UUID with a trailing newline"] = (response.status_code, response.get_json())
    for raw, status in ((b"[]", 422), (b'"event"', 422), (b'{"run": {}, "run": {}}', 400),
                        (b"{", 400), (b'{"eventTime": NaN}', 400)):
        response = client.post("/api/v1/lineage", data=raw, headers={
            **headers, "Content-Type": "application/json"})
        if response.status_code != status:
            wrong[raw.decode()] = (response.status_code, response.get_json())
    assert wrong == {}
    assert world.ledger_size() == before
    # ...while the untouched event is fine
    assert client.post("/api/v1/lineage", json=valid_event(), headers=headers).status_code == 201


def test_impossible_event_time_is_refused(world, client):
    """eventTime must be a real RFC 3339 instant, not just shaped like one."""
    world.registered_version()
    headers = world.author()
    before = world.ledger_size()
    statuses = {}
    for impossible in ("2024-13-45T25:61:61Z", "2024-02-30T10:00:00Z", "0000-00-00T00:00:00+99:99"):
        response = client.post("/api/v1/lineage", json=mutate("eventTime", impossible),
                               headers=headers)
        statuses[impossible] = response.status_code
    assert statuses == dict.fromkeys(statuses, 422)
    assert world.ledger_size() == before


def test_facets_that_are_not_objects_are_refused(world, client):
    """Every OpenLineage facet is a JSON object (spec: RunFacet, JobFacet, DatasetFacet)."""
    world.registered_version()
    headers = world.author()
    before = world.ledger_size()
    statuses = {}
    for path in ("run.facets", "job.facets", "inputs.0.facets", "outputs.0.facets"):
        for value in (5, "text", ["a"]):
            response = client.post("/api/v1/lineage", json=mutate(path, {"custom": value}),
                                   headers=headers)
            statuses[f"{path}.custom={value!r}"] = response.status_code
    assert statuses == dict.fromkeys(statuses, 422)
    assert world.ledger_size() == before


def test_lineage_needs_author_or_deployer(world, client):
    world.registered_version()
    auditor, deployer = world.auditor(), world.headers("dan", "deployer")
    before = world.ledger_size()
    assert client.post("/api/v1/lineage", json=valid_event()).status_code == 401
    assert client.post("/api/v1/lineage", json=valid_event(), headers=auditor).status_code == 403
    assert world.ledger_size() == before
    response = client.post("/api/v1/lineage", json=valid_event(), headers=deployer)
    assert response.status_code == 201
    assert world.ledger_size() == before + 1


# -- repeated events ---------------------------------------------------------------------

def test_a_repeated_event_answers_with_the_entry_already_recorded(world, emitter):
    """OpenLineage clients retry: the same event again is recognised, not appended twice."""
    register(world)
    send = emitter()
    event = run_event(RunState.COMPLETE, str(uuid.uuid4()), ("ml", "train_credit_risk"),
                      inputs=[("ml-governance", "loans")], outputs=[("s3://models", "credit-risk/1")])
    first = send.emit(event)
    carol = world.author("carol")  # a token is an entry too: made before counting
    size = world.ledger_size()
    send.client.emit(event)  # the client's own retry, byte for byte
    assert send.sent[-1][0] == 200, send.sent[-1]
    assert send.sent[-1][2] == first
    # the same event with its keys in another order and other whitespace is the same event
    body = json.dumps(send.sent[0][1], indent=3, sort_keys=True)
    response = world.client.post("/api/v1/lineage", data=body,
                                 headers={**carol, "Content-Type": "application/json"})
    assert (response.status_code, response.get_json()) == (200, first)
    assert world.ledger_size() == size
    assert [e["seq"] for e in world.client.get("/api/v1/audit/events", query_string={
        "kind": "lineage.*"}, headers=world.auditor()).get_json()["events"]] == [first["seq"]]


def test_another_event_with_the_same_run_type_and_time_is_409_and_writes_nothing(world, client):
    world.registered_version()
    headers = world.author()
    event = valid_event()
    recorded = client.post("/api/v1/lineage", json=event, headers=headers)
    assert recorded.status_code == 201, recorded.get_json()
    seq, run_id = recorded.get_json()["seq"], event["run"]["runId"]
    size = world.ledger_size()
    changed = copy.deepcopy(event)
    changed["outputs"][0]["name"] = "loans_v2"
    response = client.post("/api/v1/lineage", json=changed, headers=headers)
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["message"] == (
        f"run {run_id} already has a COMPLETE event at 2024-05-01T10:00:00Z (seq {seq}) with other "
        "content; an OpenLineage event is recorded once")
    assert world.ledger_size() == size
    # another event type or another time of the same run is another event
    for key, value in (("eventType", "FAIL"), ("eventTime", "2024-05-01T10:00:00.000Z")):
        other = client.post("/api/v1/lineage", json={**changed, key: value}, headers=headers)
        assert other.status_code == 201, (key, other.get_json())
    assert world.ledger_size() == size + 2


def test_identical_events_sent_at_once_are_appended_once(world, server):
    world.registered_version()
    token = world.token("alice", "author")
    event = valid_event()
    size = world.ledger_size()
    barrier = threading.Barrier(8)
    answers = []

    def post():
        with requests.Session() as session:
            barrier.wait()
            response = session.post(f"{server}/api/v1/lineage", json=event, timeout=30,
                                    headers={"Authorization": f"Bearer {token}"})
            answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(status for status, _ in answers) == [200] * 7 + [201]
    assert len({body["seq"] for _, body in answers}) == 1
    assert world.ledger_size() == size + 1


def test_the_upgrade_that_adds_the_event_index_fills_it_from_the_ledger(app, world, client):
    """Events recorded before the index existed are found by it after the upgrade, first entry first."""
    from alembic import command

    from app import alembic_config
    from governance.projections import tables

    world.registered_version()
    headers = world.author()
    events = [valid_event(), valid_event()]
    seqs = [client.post("/api/v1/lineage", json=e, headers=headers).get_json()["seq"] for e in events]
    engine = app.extensions["db_engine"]
    with engine.connect() as conn:
        indexed = sorted(conn.execute(sa.select(tables.lineage_event)).all())
    assert sorted(row.seq for row in indexed) == seqs

    for target in ("0003_gate", "head"):
        with engine.connect() as conn:
            getattr(command, "downgrade" if target != "head" else "upgrade")(alembic_config(conn), target)
            conn.commit()
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(tables.lineage_event)).all()) == indexed
    size = world.ledger_size()
    again = client.post("/api/v1/lineage", json=events[0], headers=headers)
    assert (again.status_code, again.get_json()["seq"]) == (200, seqs[0])
    assert world.ledger_size() == size
