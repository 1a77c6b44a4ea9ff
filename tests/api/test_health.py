"""/healthz, the dashboard counts, dead letters, and the OpenAPI document."""


def test_healthz_counts_what_the_file_holds(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["nodes"] == 20 and health["grid_readings"] == 2


def test_dashboard_counts(client):
    dash = client.get("/api/v1/dashboard").json()
    assert dash["zones"] == 2 and dash["nodes"] == 20 and dash["workloads_by_status"] == {}


def test_dead_letters_empty(client):
    assert client.get("/api/v1/dead-letters").json() == []


def test_openapi_is_served_with_a_response_model_per_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/workloads" in paths
    for path, operations in paths.items():
        for method, op in operations.items():
            ok = next(code for code in op["responses"] if code.startswith("2"))
            assert "$ref" in str(op["responses"][ok]), f"{method.upper()} {path} has no response model"
