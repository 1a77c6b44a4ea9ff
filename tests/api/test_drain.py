"""/api/v1/admin/nodes/{id}/drain and /undrain: the node's registration republished as an operator's drain (the
router keeps the node unroutable until the undrain); the sink stores it as the same node."""

from __future__ import annotations

from sinks.kafka_sink import rows_from_messages
from tests.unit.test_duckdb_store import messages
from toogreen.domain.node_state import apply_registration
from toogreen.domain.records import NodeRegistration

NODE = "dc-fr-h100-1"


def test_a_drain_republishes_the_registration_as_drained_and_an_undrain_clears_it(client, anon):
    assert anon.post(f"/api/v1/admin/nodes/{NODE}/drain").status_code == 401
    assert client.post("/api/v1/admin/nodes/nope/drain").status_code == 404
    r = client.post(f"/api/v1/admin/nodes/{NODE}/drain")
    assert r.status_code == 202 and r.json()["node_id"] == NODE
    topic, key, record = client.producer.sent[-1] if not r.json()["moves"] else client.producer.sent[0]
    assert (topic, key, record["drained"]) == ("node.registry", NODE, True)
    assert record["zone"] == "FR" and record["gpu_model"] == "H100"  # the node's own registration, carried over
    state = apply_registration(None, NodeRegistration.from_wire(record))
    assert state.drained

    r = client.post(f"/api/v1/admin/nodes/{NODE}/undrain")
    assert r.status_code == 202 and r.json() == {"node_id": NODE, "moves": []}
    topic, key, undrain = client.producer.sent[-1]
    assert (topic, key, undrain["drained"]) == ("node.registry", NODE, False)
    assert not apply_registration(state, NodeRegistration.from_wire(undrain)).drained

    # the sink takes the republished registration as the same node (no column for the router's flag)
    client.store.write(*rows_from_messages(messages([("node.registry", record)])))
    rows = client.store.query("SELECT zone, registered_ms FROM nodes WHERE node_id = ?", [NODE])
    assert rows == [{"zone": "FR", "registered_ms": record["ts_ms"]}]
