"""The read models of the dashboard's reads: a committed write is visible on the next read without the read
recomputing anything, kept answers are only ever served to the caller they were built for (role checks and
scoping hold), and the answers are the bodies the handlers give with the read models off."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from sinks.rows import grid_row
from tests.api.conftest import ADMIN, RecordingProducer, bearer
from tests.builders import grid_reading
from toogreen.settings import ReadModelSettings, Settings
from toogreen.submission import submission_event

READS = (
    "/api/v1/dashboard",
    "/api/v1/zones",
    "/api/v1/nodes",
    "/api/v1/workloads?limit=100",
    "/api/v1/billing?limit=1000",
    "/api/v1/sustainability",
    "/api/v1/zones/FR/history?kind=tumbling&limit=288",
)
WORKLOAD = {"name": "x", "workload_type": "training", "image": "i", "vram_mb": 1000, "expected_hours": 1.0}


def _app(store, **read_models):
    return create_app(Settings(read_models=ReadModelSettings(**read_models)), store, RecordingProducer())


def _submitted(store, submitter: str, workload_id: str) -> None:
    """A workload stored as the sink stores its submission event."""
    store.write({}, [{**submission_event({**WORKLOAD, "submitter": submitter}, workload_id, 1_000), "log_offset": 0}])


def _token(client, role: str, subject: str) -> dict[str, str]:
    reply = client.post("/api/v1/admin/tokens", json={"role": role, "subject": subject}, headers=ADMIN)
    return bearer(reply.json()["token"])


def _ids(reply) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [w["workload_id"] for w in reply.json()]


def test_a_write_is_visible_on_the_next_read_without_recomputing_per_request(client):
    models = client.app.state.read_models
    assert {z["zone"] for z in client.get("/api/v1/zones").json()} == {"FR", "DE"}
    for _ in range(5):
        client.get("/api/v1/zones")
    assert models.built == 1 and models.served == 5  # built once, then bytes
    client.store.write({"grid_readings": [grid_row(grid_reading("PT", int(time.time() * 1000), 99.0))]}, [])
    assert {z["zone"] for z in client.get("/api/v1/zones").json()} == {"FR", "DE", "PT"}
    assert models.built == 1 and models.rebuilt >= 1  # rebuilt by the write, not by the read


def test_a_batch_of_workload_events_is_visible_on_the_next_read(client):
    assert client.get("/api/v1/dashboard").json()["workloads_by_status"] == {}
    assert _ids(client.get("/api/v1/workloads?limit=100")) == []
    _submitted(client.store, "ada", "wl-1")
    assert client.get("/api/v1/dashboard").json()["workloads_by_status"] == {"submitted": 1}
    assert _ids(client.get("/api/v1/workloads?limit=100")) == ["wl-1"]


def test_kept_answers_are_scoped_to_their_caller(client, anon):
    ada, grace = _token(client, "developer", "ada"), _token(client, "developer", "grace")
    _submitted(client.store, "ada", "wl-ada")
    for _ in range(2):  # the first read builds, the second is served from the kept bytes
        assert _ids(anon.get("/api/v1/workloads?limit=100", headers=ada)) == ["wl-ada"]
        assert _ids(anon.get("/api/v1/workloads?limit=100", headers=grace)) == []
    _submitted(client.store, "grace", "wl-grace")
    assert _ids(anon.get("/api/v1/workloads?limit=100", headers=ada)) == ["wl-ada"]
    assert _ids(anon.get("/api/v1/workloads?limit=100", headers=grace)) == ["wl-grace"]
    assert sorted(_ids(anon.get("/api/v1/workloads?limit=100", headers=ADMIN))) == ["wl-ada", "wl-grace"]
    assert anon.get("/api/v1/workloads/wl-ada", headers=grace).status_code == 404


def test_a_kept_answer_is_refused_to_callers_the_route_refuses(client, anon):
    gamer = _token(client, "gamer", "camille")
    developer = _token(client, "developer", "ada")
    for _ in range(2):
        assert len(anon.get("/api/v1/nodes", headers=ADMIN).json()) == 20
        assert [n["node_id"] for n in anon.get("/api/v1/nodes", headers=gamer).json()] == ["gm-fr-4090-1"]
    assert client.app.state.read_models.served >= 2
    assert anon.get("/api/v1/nodes", headers=developer).status_code == 403
    assert anon.get("/api/v1/nodes").status_code == 401
    assert anon.get("/api/v1/nodes", headers=bearer("forged")).status_code == 401
    basic = {"Authorization": "Basic " + ADMIN["Authorization"].removeprefix("Bearer ")}
    assert anon.get("/api/v1/nodes", headers=basic).status_code == 401


def test_bad_input_is_refused_as_before(client):
    assert client.get("/api/v1/workloads?limit=100").status_code == 200
    assert client.get("/api/v1/workloads?limit=0").status_code == 422
    assert client.get("/api/v1/workloads?limit=abc").status_code == 422


def test_the_answers_are_those_of_the_handlers_per_request(store):
    token = {}
    bodies = {}
    for enabled in (False, True):
        with TestClient(_app(store, enabled=enabled)) as c:
            if not token:
                token = _token(c, "datacenter", "Nordique Cloud")
            bodies[enabled] = {
                (path, who): [c.get(path, headers=headers).json() for _ in range(2)]
                for path in READS
                for who, headers in (("admin", ADMIN), ("datacenter", token))
            }
    for zone_answers in (*bodies[False].values(), *bodies[True].values()):
        for answer in zone_answers:
            for zone in answer if isinstance(answer, list) else ():
                zone.pop("staleness_s", None)  # moves with the clock between the two apps
    assert bodies[True] == bodies[False]


def test_an_answer_older_than_max_age_is_rebuilt_in_the_background(store):
    with TestClient(_app(store, max_age_s=0.0), headers=ADMIN) as c:
        models = c.app.state.read_models
        c.get("/api/v1/zones")
        deadline = time.monotonic() + 10
        while models.rebuilt == 0 and time.monotonic() < deadline:
            c.get("/api/v1/zones")
            time.sleep(0.05)
        assert models.rebuilt >= 1 and models.built == 1


def test_an_answer_no_one_reads_is_dropped_not_rebuilt(store):
    with TestClient(_app(store, idle_s=0.0), headers=ADMIN) as c:
        models = c.app.state.read_models
        c.get("/api/v1/zones")
        time.sleep(0.01)
        store.write({"grid_readings": [grid_row(grid_reading("PT", int(time.time() * 1000), 99.0))]}, [])
        assert models.rebuilt == 0
        assert {z["zone"] for z in c.get("/api/v1/zones").json()} == {"FR", "DE", "PT"}
        assert models.built == 2


@pytest.mark.parametrize("path", READS)
def test_every_dashboard_read_is_kept(client, path):
    models = client.app.state.read_models
    first = client.get(path)
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert client.get(path).content == first.content
    assert models.built == 1 and models.served == 1


def test_a_caller_varying_its_query_keeps_a_bounded_number_of_answers(store):
    with TestClient(_app(store, max_per_caller=3), headers=ADMIN) as c:
        models = c.app.state.read_models
        for limit in range(1, 11):
            assert c.get(f"/api/v1/workloads?limit={limit}").status_code == 200
        store.write({"grid_readings": [grid_row(grid_reading("PT", int(time.time() * 1000), 99.0))]}, [])
        assert models.rebuilt == 3  # the three read last, not the ten
        assert c.get("/api/v1/workloads?limit=10").status_code == 200 and models.served == 1
        assert c.get("/api/v1/workloads?limit=1").status_code == 200 and models.built == 11


def test_a_workload_page_follows_its_events_and_stays_its_submitters(client, anon):
    ada, grace = _token(client, "developer", "ada"), _token(client, "developer", "grace")
    _submitted(client.store, "ada", "wl-ada")
    for _ in range(2):
        assert anon.get("/api/v1/workloads/wl-ada", headers=ada).json()["status"] == "submitted"
        assert anon.get("/api/v1/workloads/wl-ada", headers=grace).status_code == 404
    routed = {"event_id": "wl-ada:routed", "workload_id": "wl-ada", "type": "routed", "node_id": "dc-fr-h100-1",
              "ts_ms": 2_000, "log_offset": 1}  # fmt: skip
    client.store.write({}, [routed])
    page = anon.get("/api/v1/workloads/wl-ada", headers=ada).json()
    assert page["status"] == "routed" and [e["type"] for e in page["events"]] == ["submitted", "routed"]
    assert anon.get("/api/v1/workloads/wl-ada", headers=grace).status_code == 404
    assert anon.get("/api/v1/workloads/nope", headers=ada).status_code == 404


def test_a_single_statement_is_caught_up_with_in_the_background(client, settled):
    models = client.app.state.read_models
    assert [r["stripe_status"] for r in client.get("/api/v1/billing?limit=1000").json()["records"]] == [None]
    client.store.execute_write("UPDATE billing_records SET stripe_status = 'reported'")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records = client.get("/api/v1/billing?limit=1000").json()["records"]
        if records[0]["stripe_status"] == "reported":
            break
        time.sleep(0.02)
    assert records[0]["stripe_status"] == "reported"
    assert models.built == 1  # rebuilt in the background, never on a read


def test_the_openapi_docs_still_declare_the_response_models(anon):
    paths = anon.get("/openapi.json").json()["paths"]
    ok = paths["/api/v1/workloads/{workload_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"] == {"$ref": "#/components/schemas/WorkloadDetail"}
    listed = paths["/api/v1/workloads"]["get"]
    assert [p["name"] for p in listed["parameters"]] == ["status", "limit", "offset"]  # no trace of the wrapper
