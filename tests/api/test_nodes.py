"""/api/v1/nodes: current scores, why a node is not routable, one node with its holds."""


def test_nodes_carry_current_scores_and_why_not(client):
    nodes = {n["node_id"]: n for n in client.get("/api/v1/nodes").json()}
    assert len(nodes) == 20
    assert nodes["dc-fr-h100-1"]["routable"] and nodes["dc-fr-h100-1"]["tier"] == 2
    assert not nodes["dc-it-a100-1"]["routable"] and "no grid data" in nodes["dc-it-a100-1"]["not_routable_because"]


def test_one_node_scores_as_in_the_list_and_shows_its_holds(client):
    listed = {n["node_id"]: n for n in client.get("/api/v1/nodes").json()}["dc-fr-h100-1"]
    node = client.get("/api/v1/nodes/dc-fr-h100-1").json()
    assert node["score"] == listed["score"] and node["tier"] == listed["tier"] and node["holds"] == []
    assert node["last_seen_ms"] is not None and node["sm_util_pct"] is not None
    assert client.get("/api/v1/nodes/nope").status_code == 404
