"""Scale-out is starting another ``toogreen worker``: two workers on Apache Kafka and a burst of 40 workloads of
60 GB (only the 80 GB GPUs hold one, and never two at once). No GPU is over-booked, none refuses one for lack of
VRAM, and when one worker leaves the other keeps routing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.kafka_stack import needs_java, running_system_on_kafka
from tests.integration.support import eventually, snapshot_rows
from toogreen.app.demo import Stack

pytestmark = [pytest.mark.integration, needs_java]

BIG_MB = 60_000  # more than half of every GPU that holds it (80 GB), so two on one GPU is an over-booking


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_dir: Path = tmp_path_factory.mktemp("scale")
    with running_system_on_kafka(run_dir, 1) as (_cluster, stack):
        stack.spawn("worker-2", "worker", "--loglevel", "info")
        stack.wait_for("the second worker", lambda: "Worker]: Ready" in stack.log_text("worker-2"), 90)
        yield stack


def _submit(stack: Stack, name: str) -> str:
    body = {"name": name, "workload_type": "training", "image": "ghcr.io/x/y:1", "vram_mb": BIG_MB,
            "expected_hours": 0.1}  # fmt: skip
    response = httpx.post(f"{stack.api_url()}/api/v1/workloads", json=body, headers=stack.api_headers(), timeout=15)
    assert response.status_code == 202, response.text
    return response.json()["workload_id"]


def _statuses(stack: Stack, ids: list[str]) -> dict[str, str]:
    url, headers = f"{stack.api_url()}/api/v1/workloads", stack.api_headers()
    return {wid: httpx.get(f"{url}/{wid}", headers=headers, timeout=5).json().get("status", "?") for wid in ids}


def _overlaps_per_node(stack: Stack, ids: list[str]) -> dict[str, int]:
    """From the nodes' own reports: how often a node started a big workload while another still ran there."""
    rows = snapshot_rows(
        stack, "SELECT node_id, workload_id, type, ts_ms FROM workload_events WHERE workload_id IN (SELECT unnest(?)) "
        "AND type IN ('started', 'resumed', 'completed', 'failed', 'checkpointed') ORDER BY node_id, ts_ms", [ids],
    )  # fmt: skip
    running: dict[str, set[str]] = defaultdict(set)
    overlaps: dict[str, int] = defaultdict(int)
    for node_id, workload_id, kind, _ts in rows:
        if kind in ("started", "resumed"):
            if running[node_id] - {workload_id}:
                overlaps[node_id] += 1
            running[node_id].add(workload_id)
        else:
            running[node_id].discard(workload_id)
    return dict(overlaps)


def test_a_burst_on_two_workers_overbooks_nothing(two_workers: Stack):
    stack = two_workers
    burst = [_submit(stack, f"burst-{i}") for i in range(40)]
    seen: dict[str, str] = {}

    def all_completed() -> bool:
        seen.update(_statuses(stack, burst))
        return all(s == "completed" for s in seen.values())

    try:
        eventually(all_completed, timeout_s=240, what="the 40 big workloads completed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; statuses: {sorted(seen.items())}") from None
    refused = snapshot_rows(
        stack, "SELECT count(*) FROM workload_events WHERE workload_id IN (SELECT unnest(?)) AND reason LIKE "
        "'%not enough VRAM%'", [burst],
    )[0][0]  # fmt: skip
    assert refused == 0
    assert _overlaps_per_node(stack, burst) == {}
    initial = snapshot_rows(
        stack, "SELECT workload_id, count(*) FROM routing_decisions WHERE workload_id IN (SELECT unnest(?)) "
        "AND type = 'initial' GROUP BY ALL", [burst],
    )  # fmt: skip
    assert sorted(n for _, n in initial) == [1] * len(burst)  # placed once each, by one owner


def test_when_one_worker_leaves_the_other_routes_what_comes_next(two_workers: Stack):
    stack = two_workers
    stack.retire("worker")  # one worker leaves (a clean stop); the other takes over what it owned
    after = [_submit(stack, f"after-{i}") for i in range(5)]
    eventually(lambda: all(s == "completed" for s in _statuses(stack, after).values()), timeout_s=120,
               what="the workloads submitted after one worker left completed")  # fmt: skip
    assert stack.managed and all(c.proc.poll() is None for c in stack.managed if c.name == "worker-2")
