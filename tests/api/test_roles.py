"""The role × endpoint matrix (SPEC §9): no token 401, a role that may never do it 403, another's object 404, and
lists scoped to the caller's own workloads, nodes, receipts and bills.

The fleet is the simulated one (providers "Nordique Cloud", a datacenter with dc-fr-h100-1; "Sol Heat Recovery",
a recycler; "camille", a gamer with gm-fr-4090-1). Developer ada's workload ran on dc-fr-h100-1, developer
grace's on gm-fr-4090-1; each has a signed receipt and a bill.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from sinks.rows import billing_row, receipt_row
from tests.api.conftest import ADMIN, RecordingProducer, bearer, filled_store
from toogreen.domain.accounting import Slot, accrue
from toogreen.domain.settlement import settle
from toogreen.settings import Settings
from toogreen.signing import load_or_create_key, sign_receipt
from toogreen.submission import submission_event

ROLES = ("none", "admin", "developer", "developer-2", "datacenter", "recycler", "gamer", "node")
SUBJECTS = {"developer": "ada", "developer-2": "grace", "datacenter": "Nordique Cloud",
            "recycler": "Sol Heat Recovery", "gamer": "camille"}  # fmt: skip
RAN_ON = {"ada": ("wl-ada", "dc-fr-h100-1", "FR"), "grace": ("wl-grace", "gm-fr-4090-1", "FR")}
NEW_NODE = {"gpu_model": "H100", "vram_mb": 81920, "zone": "FR", "lat": 48.8, "lng": 2.3, "pue": 1.1}
WORKLOAD = {"name": "x", "workload_type": "training", "image": "i", "vram_mb": 1000, "expected_hours": 1.0}


def _ran(store, submitter: str) -> str:
    wid, node, zone = RAN_ON[submitter]
    submitted = submission_event({**WORKLOAD, "submitter": submitter}, wid, 1_000)
    routed = {**submitted, "event_id": f"{wid}:routed", "type": "routed", "node_id": node, "ts_ms": 2_000}
    del routed["request"]
    store.write({}, [{**submitted, "log_offset": 0}, {**routed, "log_offset": 1}])
    settings = Settings()
    intervals = accrue([], Slot(node, zone, 1.1, 1.0, 50.0, 0), 0, 3_600_000, 3.6e6, "c")
    receipt, billing = settle({"workload_id": wid, "price_eur_per_gpu_hour": 1.0}, intervals, 3_600_000, settings)
    receipt = sign_receipt(receipt, load_or_create_key(settings.settlement.signing_key_path))
    store.write({"carbon_receipts": [receipt_row(receipt)], "billing_records": [billing_row(billing)]}, [])
    return receipt["receipt_id"]


@contextmanager
def _world(app):
    with TestClient(app) as c:
        receipts = {s: _ran(app.state.store, s) for s in RAN_ON}
        headers = {"none": {}, "admin": ADMIN}
        for name, subject in SUBJECTS.items():
            role = name.removesuffix("-2")
            token = c.post("/api/v1/admin/tokens", json={"role": role, "subject": subject}, headers=ADMIN).json()
            headers[name] = bearer(token["token"])
        node = c.post("/api/v1/nodes", json={**NEW_NODE, "node_id": "dc-fr-new-1"}, headers=headers["datacenter"])
        assert node.status_code == 201
        headers["node"] = bearer(node.json()["token"])
        yield c, headers, receipts


@pytest.fixture
def world(app):
    """A client, the headers of each role, and the ids the tests refer to."""
    with _world(app) as w:
        yield w


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory):
    """One world for the whole matrix (its POSTs add nodes, workloads and tokens, which no row checks)."""
    store = filled_store(tmp_path_factory.mktemp("roles") / "api.duckdb")
    with _world(create_app(Settings(), store, RecordingProducer())) as w:
        yield w
    store.close()


ALL = dict.fromkeys(ROLES, 200)
SIGNED_IN = {**ALL, "none": 401}
PEOPLE = {**SIGNED_IN, "node": 403}
ADMIN_ONLY = {**dict.fromkeys(ROLES, 403), "none": 401, "admin": 200}
PROVIDERS = {**PEOPLE, "developer": 403, "developer-2": 403}
ADA_OBJECT = {**PEOPLE, "developer-2": 404, "recycler": 404, "gamer": 404}  # ran on Nordique Cloud's node
NODE_OBJECT = {**PROVIDERS, "recycler": 404, "gamer": 404, "node": 404}  # dc-fr-h100-1, Nordique Cloud's
OWN_NODE = {**NODE_OBJECT, "node": 200}  # dc-fr-new-1, the node token's own
SUBMIT = {**PEOPLE, "admin": 202, "developer": 202, "developer-2": 202, "datacenter": 403, "recycler": 403,
          "gamer": 403}  # fmt: skip
REGISTER = {**PROVIDERS, "admin": 403, "datacenter": 201, "recycler": 201, "gamer": 201}

MATRIX = [
    ("GET", "/healthz", None, ALL),
    ("GET", "/openapi.json", None, ALL),
    ("GET", "/docs", None, ALL),
    ("GET", "/api/v1/public-key", None, ALL),
    ("POST", "/api/v1/receipts/verify", {"receipt_id": "x"}, ALL),
    ("GET", "/api/v1/me", None, SIGNED_IN),
    ("GET", "/api/v1/dashboard", None, PEOPLE),
    ("GET", "/api/v1/zones", None, PEOPLE),
    ("GET", "/api/v1/zones/FR", None, PEOPLE),
    ("GET", "/api/v1/zones/FR/history", None, PEOPLE),
    ("GET", "/api/v1/nodes", None, PROVIDERS),
    ("GET", "/api/v1/nodes/dc-fr-h100-1", None, NODE_OBJECT),
    ("GET", "/api/v1/nodes/dc-fr-new-1", None, OWN_NODE),
    ("POST", "/api/v1/nodes", NEW_NODE, REGISTER),
    ("POST", "/api/v1/workloads", WORKLOAD, SUBMIT),
    ("GET", "/api/v1/workloads", None, PEOPLE),
    ("GET", "/api/v1/workloads/wl-ada", None, ADA_OBJECT),
    ("GET", "/api/v1/receipts/{ada}", None, ADA_OBJECT),
    ("GET", "/api/v1/billing", None, PEOPLE),
    ("GET", "/api/v1/sustainability", None, PEOPLE),
    ("GET", "/api/v1/decisions", None, PEOPLE),
    ("GET", "/api/v1/dead-letters", None, ADMIN_ONLY),
    ("POST", "/api/v1/admin/surplus-events", {"zone": "FR", "curtailment_mw": 10, "minutes": 0.01},
     {**ADMIN_ONLY, "admin": 202}),
    ("POST", "/api/v1/admin/tokens", {"role": "developer", "subject": "eve"}, {**ADMIN_ONLY, "admin": 201}),
    ("POST", "/api/v1/admin/workloads/wl-ada/move", {}, {**ADMIN_ONLY, "admin": 409}),  # routed, not running
    ("POST", "/api/v1/admin/nodes/dc-fr-h100-1/drain", None, {**ADMIN_ONLY, "admin": 202}),
    ("POST", "/api/v1/admin/nodes/dc-fr-h100-1/undrain", None, {**ADMIN_ONLY, "admin": 202}),
]  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_role_matrix(shared_world, role, method, path, body, expected):
    client, headers, receipts = shared_world
    url = path.replace("{ada}", receipts["ada"])
    r = client.request(method, url, json=body, headers=headers[role])
    assert r.status_code == expected[role], r.text
    if r.status_code == 401:
        assert r.headers["www-authenticate"] == "Bearer"


def test_every_route_is_in_the_matrix(app):
    paths = {(m, p) for m, p, _, _ in MATRIX}
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            concrete = path.replace("{node_id}", "dc-fr-h100-1").replace("{workload_id}", "wl-ada")
            concrete = concrete.replace("{receipt_id}", "{ada}").replace("{zone}", "FR")
            assert (method.upper(), concrete) in paths, f"{method.upper()} {path} is not in the role matrix"


def _ids(client, headers, path, key):
    return sorted(item[key] for item in client.get(path, headers=headers).json())


def test_lists_show_only_the_callers_own(world):
    client, h, receipts = world
    assert _ids(client, h["developer"], "/api/v1/workloads", "workload_id") == ["wl-ada"]
    assert _ids(client, h["developer-2"], "/api/v1/workloads", "workload_id") == ["wl-grace"]
    assert _ids(client, h["datacenter"], "/api/v1/workloads", "workload_id") == ["wl-ada"]
    assert _ids(client, h["gamer"], "/api/v1/workloads", "workload_id") == ["wl-grace"]
    assert _ids(client, h["recycler"], "/api/v1/workloads", "workload_id") == []
    assert _ids(client, h["admin"], "/api/v1/workloads", "workload_id") == ["wl-ada", "wl-grace"]
    assert set(_ids(client, h["datacenter"], "/api/v1/nodes", "node_id")) == {"dc-fr-h100-1", "dc-fr-h100-2",
                                                                             "dc-fr-new-1"}  # fmt: skip
    assert _ids(client, h["gamer"], "/api/v1/nodes", "node_id") == ["gm-fr-4090-1"]
    assert len(_ids(client, h["admin"], "/api/v1/nodes", "node_id")) == 21
    for role, wid in (("developer", "wl-ada"), ("developer-2", "wl-grace"), ("gamer", "wl-grace")):
        bills = client.get("/api/v1/billing", headers=h[role]).json()
        assert [b["workload_id"] for b in bills["records"]] == [wid] and bills["totals"]["records"] == 1
        assert client.get("/api/v1/sustainability", headers=h[role]).json()["totals"]["receipts"] == 1
    assert client.get("/api/v1/receipts/" + receipts["grace"], headers=h["developer"]).status_code == 404
    dash = client.get("/api/v1/dashboard", headers=h["developer"]).json()
    assert dash["workloads_by_status"] == {"routed": 1} and dash["nodes"] == 0 and dash["dead_letters"] is None


def test_a_submission_belongs_to_its_submitter(world):
    client, h, _ = world
    r = client.post("/api/v1/workloads", json=WORKLOAD, headers=h["developer"])
    event = client.app.state.producer.sent[-1][2]
    assert r.status_code == 202 and event["request"]["submitter"] == "ada"


def test_a_registered_node_is_published_and_answers_at_once(world):
    client, h, _ = world
    r = client.post("/api/v1/nodes", json=NEW_NODE, headers=h["gamer"])
    node_id = r.json()["node_id"]
    topic, key, record = client.app.state.producer.sent[-1]
    assert (topic, key, record["provider"], record["node_type"]) == ("node.registry", node_id, "camille", "gamer")
    node = client.get(f"/api/v1/nodes/{node_id}", headers=h["gamer"]).json()
    assert node["provider"] == "camille" and node["holds"] == [] and node["routable"] is False
    taken = client.post("/api/v1/nodes", json={**NEW_NODE, "node_id": "dc-fr-h100-1"}, headers=h["gamer"])
    assert taken.status_code == 409


def test_unknown_or_malformed_tokens_are_401(anon):
    for header in ({"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        assert anon.get("/api/v1/me", headers=header).status_code == 401


def test_a_developer_sees_the_power_and_intensity_of_the_node_its_running_job_is_on_and_no_other(world):
    client, h, _ = world
    store = client.app.state.store
    submitted = submission_event({**WORKLOAD, "submitter": "ada"}, "wl-ada-live", 1_000)
    base = {k: v for k, v in submitted.items() if k != "request"}
    events = [{**submitted, "log_offset": 10}]
    for offset, kind in enumerate(("routed", "started"), start=11):
        events.append({**base, "event_id": f"wl-ada-live:{kind}", "type": kind, "node_id": "dc-fr-h100-2",
                       "ts_ms": 1_000 + offset, "log_offset": offset})  # fmt: skip
    store.write({}, events)
    detail = client.get("/api/v1/workloads/wl-ada-live", headers=h["developer"]).json()
    assert detail["status"] == "running"
    node = client.get("/api/v1/nodes/dc-fr-h100-2", headers=h["admin"]).json()
    assert node["power_w"] > 0
    assert detail["running_on"] == {
        "node_id": "dc-fr-h100-2", "zone": "FR", "power_w": node["power_w"], "telemetry_ms": node["last_seen_ms"],
        "carbon_gco2_per_kwh": pytest.approx(60.0 * node["pue"]), "grid_price_eur_per_mwh": pytest.approx(50.0),
    }  # fmt: skip
    assert client.get("/api/v1/nodes", headers=h["developer"]).status_code == 403  # still no fleet for developers
    # not running: no node facts at all; another's running job: not found
    assert client.get("/api/v1/workloads/wl-ada", headers=h["developer"]).json()["running_on"] is None
    assert client.get("/api/v1/workloads/wl-ada-live", headers=h["developer-2"]).status_code == 404
