"""/api/v1/workloads: submit, validation, list, one."""

import pytest


def test_submit_publishes_a_valid_submission(client):
    body = {"name": "x", "workload_type": "training", "image": "i", "vram_mb": 1000, "expected_hours": 1.5,
            "deadline": "2999-01-01T00:00:00Z", "green_only": True}  # fmt: skip
    r = client.post("/api/v1/workloads", json=body)
    assert r.status_code == 202
    topic, key, event = client.producer.sent[0]
    assert topic == "workload.events" and key == r.json()["workload_id"]
    assert event["type"] == "submitted" and event["request"]["green_only"] is True
    assert event["request"]["deadline_ms"] == 32472144000000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"vram_mb": 0}, "vram_mb"),
        ({"workload_type": "mining"}, "workload_type"),
        ({"image": None}, "image or command"),
        ({"deadline": "2020-01-01T00:00:00Z"}, "past"),
        ({"deadline": "2999-01-01T00:00:00"}, "offset"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_bodies_get_422_with_the_reason(client, change, field):
    body = {"name": "x", "workload_type": "training", "image": "i", "vram_mb": 1000, "expected_hours": 1.0, **change}
    r = client.post("/api/v1/workloads", json=body)
    assert r.status_code == 422 and field in r.text


def test_unknown_workload_is_404(client):
    assert client.get("/api/v1/workloads/nope").status_code == 404


def test_list_is_empty_before_any_submission_is_stored(client):
    assert client.get("/api/v1/workloads").json() == []
