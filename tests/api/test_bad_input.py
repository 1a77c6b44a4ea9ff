"""Bad input never gets a 5xx: non-finite numbers in any float field, lone surrogates, huge offsets, chunked
bodies over the limit; and idempotent submission."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import ADMIN, RecordingProducer, filled_store
from toogreen.settings import Settings

WORKLOAD = '{"name": "x", "workload_type": "training", "image": "i", "vram_mb": 1000, "expected_hours": 1.0'
FLOAT_FIELDS = {
    "/api/v1/workloads": (WORKLOAD, ("expected_hours", "max_carbon_gco2_kwh", "budget_eur", "checkpoint_gb")),
    "/api/v1/admin/surplus-events": ('{"zone": "FR", "curtailment_mw": 1, "minutes": 1', ("curtailment_mw", "minutes")),
    "/api/v1/nodes": ('{"gpu_model": "H100", "vram_mb": 1, "zone": "FR", "lat": 1, "lng": 1',
                      ("lat", "lng", "pue", "declared_carbon_gco2_per_kwh", "max_power_w")),
}  # fmt: skip
CASES = [(path, field) for path, (_, fields) in FLOAT_FIELDS.items() for field in fields]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One admin client for the cases that only look at the answer."""
    store = filled_store(tmp_path_factory.mktemp("bad-input") / "api.duckdb")
    with TestClient(create_app(Settings(), store, RecordingProducer()), headers=ADMIN) as c:
        yield c
    store.close()


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
@pytest.mark.parametrize(("path", "field"), CASES)
def test_non_finite_numbers_get_422_never_500(shared, path, field, number):
    client = shared
    start, _ = FLOAT_FIELDS[path]
    body = f'{start}, "{field}": {number}}}'
    if path == "/api/v1/nodes":
        token = client.post("/api/v1/admin/tokens", json={"role": "datacenter", "subject": "p"}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
    else:
        headers = {}
    r = client.post(path, content=body, headers={"content-type": "application/json", **headers})
    assert r.status_code == 422, r.text
    assert "finite" in r.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/workloads", WORKLOAD.replace('"x"', '"\\ud800"') + "}"),
        ("/api/v1/admin/surplus-events", '{"zone": "F\\udfff", "curtailment_mw": 10, "minutes": 1}'),
        ("/api/v1/admin/tokens", '{"role": "developer", "subject": "\\ud83d"}'),
    ],
)
def test_a_lone_surrogate_gets_422(shared, path, body):
    client = shared
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "Unicode" in r.text


def test_verify_answers_invalid_for_any_json_never_500(client):
    for receipt in ({"public_key": 1}, {"x": float("nan")}, {"x": "\ud800"}, {}):
        r = client.post("/api/v1/receipts/verify", content=json.dumps(receipt),
                        headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 200 and r.json()["valid"] is False
    junk = '{"receipt_id": "r", "workload_id": 1, "issued_ms": NaN, "signature": 5, "public_key": "%s"}'
    key = client.get("/api/v1/public-key").json()["hex"]
    r = client.post("/api/v1/receipts/verify", content=junk % key, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["valid"] is False


@pytest.mark.parametrize("offset", [2**63, 2**64, 10**30])
def test_an_offset_above_2_63_gets_422(client, offset):
    assert client.get(f"/api/v1/workloads?offset={offset}").status_code == 422
    assert client.get(f"/api/v1/workloads?offset={2**63 - 1}").json() == []


def test_a_chunked_body_without_content_length_is_held_to_the_limit(api_url):
    def chunks():
        for _ in range(100):
            yield b" " * 1024

    r = httpx.post(
        f"{api_url}/api/v1/workloads", content=chunks(), headers={**ADMIN, "content-type": "application/json"}
    )
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    small = httpx.post(f"{api_url}/api/v1/workloads", content=iter([WORKLOAD.encode(), b"}"]),
                       headers={**ADMIN, "content-type": "application/json"})  # fmt: skip
    assert small.status_code == 202


def test_a_retry_with_the_same_idempotency_key_is_the_same_workload(client):
    body = {"name": "x", "workload_type": "training", "image": "i", "vram_mb": 1000, "expected_hours": 1.0}
    first = client.post("/api/v1/workloads", json=body, headers={"Idempotency-Key": "abc"})
    again = client.post("/api/v1/workloads", json=body, headers={"Idempotency-Key": "abc"})
    assert first.status_code == again.status_code == 202
    assert first.json()["workload_id"] == again.json()["workload_id"]
    assert len(client.producer.sent) == 1
    other = client.post("/api/v1/workloads", json={**body, "vram_mb": 2}, headers={"Idempotency-Key": "abc"})
    assert other.status_code == 422 and "different submission" in other.text
    assert client.post("/api/v1/workloads", json=body).json()["workload_id"] != first.json()["workload_id"]


def test_right_after_202_the_workload_answers_submitted(client):
    body = {"name": "x", "workload_type": "training", "image": "i", "vram_mb": 1000, "expected_hours": 1.0}
    wid = client.post("/api/v1/workloads", json=body).json()["workload_id"]
    workload = client.get(f"/api/v1/workloads/{wid}")
    assert workload.status_code == 200
    assert workload.json()["status"] == "submitted" and workload.json()["submitter"] == "admin"


def test_a_submission_whose_publish_failed_is_published_by_its_retry(client):
    sent = client.producer.sent

    def broken(topic, key, record):
        raise RuntimeError("broker down")

    client.producer.send, working = broken, client.producer.send
    body = {"name": "x", "workload_type": "training", "image": "i", "vram_mb": 1000, "expected_hours": 1.0}
    failed = client.post("/api/v1/workloads", json=body, headers={"Idempotency-Key": "k"})
    assert failed.status_code == 503 and "same Idempotency-Key" in failed.text
    client.producer.send = working
    retried = client.post("/api/v1/workloads", json=body, headers={"Idempotency-Key": "k"})
    assert retried.status_code == 202 and len(sent) == 1 and sent[0][1] == retried.json()["workload_id"]
