"""The whole pipeline, unchanged, on Apache Kafka (KRaft) with 1 and with 3 brokers: workloads submitted through
the API are routed, run and settled; on 3 brokers every topic, the worker's own changelogs included, has
replication 3 and min.insync.replicas 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from tests.integration.kafka_stack import needs_java, running_system_on_kafka
from tests.integration.support import eventually, log_tail, snapshot_rows
from toogreen.app.demo import Stack
from toogreen.kafka.cluster import KafkaCluster
from toogreen.settings import Settings
from toogreen.topics import ALL_TOPICS

pytestmark = [pytest.mark.integration, needs_java]
# the API asks for a bearer token: the tests call it as the settings' admin
HEADERS = {"Authorization": f"Bearer {Settings().api.admin_token}"}


@pytest.fixture(scope="module", params=[1, 3], ids=["1-broker", "3-brokers"])
def on_kafka(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[KafkaCluster, Stack]]:
    run_dir: Path = tmp_path_factory.mktemp(f"kafka{request.param}")
    with running_system_on_kafka(run_dir, request.param) as pair:
        yield pair


def _submit(api: str, name: str, vram_mb: int) -> str:
    body = {"name": name, "workload_type": "inference", "image": "ghcr.io/x/y:1", "vram_mb": vram_mb,
            "expected_hours": 0.15}  # fmt: skip
    response = httpx.post(f"{api}/api/v1/workloads", json=body, headers=HEADERS, timeout=15)
    assert response.status_code == 202, response.text
    return response.json()["workload_id"]


def test_workloads_are_routed_run_and_settled_on_kafka(on_kafka: tuple[KafkaCluster, Stack]):
    cluster, stack = on_kafka
    api = stack.api_url()
    ids = [_submit(api, f"kafka-{cluster.brokers}-{i}", 16_000) for i in range(8)]

    seen: dict[str, object] = {}

    def all_completed() -> list[dict] | None:
        found = [httpx.get(f"{api}/api/v1/workloads/{wid}", headers=HEADERS).json() for wid in ids]
        # what each one last looked like, so that a timeout says where they stood and why
        seen.update({w.get("workload_id", "?"): (w.get("status"), w.get("decisions"), w.get("reason")) for w in found})
        return found if all(w.get("status") == "completed" for w in found) else None

    try:
        done = eventually(all_completed, timeout_s=120, what="8 workloads completed")
    except AssertionError as exc:
        logs = "\n".join(log_tail(stack, name) for name in ("worker", "api"))
        raise AssertionError(f"{exc}; where they stood: {seen}\n{logs}") from None
    # each was placed once, on a node (a submission that came before the fleet reached the owner queued first)
    placed = [[d for d in w["decisions"] if d["type"] != "queued"] for w in done]
    assert all(p[0]["type"] == "initial" and p[0]["chosen_node_id"] for p in placed)
    settled = eventually(
        lambda: (rows := snapshot_rows(
            stack, "SELECT count(DISTINCT workload_id) FROM billing_records WHERE workload_id IN (SELECT unnest(?))",
            [ids],
        )) and rows[0][0] == len(ids),
        timeout_s=60, what="a bill per workload",
    )  # fmt: skip
    assert settled
    decisions = snapshot_rows(
        stack, "SELECT workload_id, count(*) FROM routing_decisions WHERE workload_id IN (SELECT unnest(?)) "
        "AND type = 'initial' GROUP BY ALL", [ids],
    )  # fmt: skip
    assert sorted(n for _, n in decisions) == [1] * len(ids)


def test_topics_are_replicated_as_the_cluster_allows(on_kafka: tuple[KafkaCluster, Stack]):
    cluster, _stack = on_kafka
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    topics = admin.list_topics(timeout=10).topics
    product = [t.name for t in ALL_TOPICS]
    changelogs = [name for name in topics if name.endswith("-changelog")]
    assert set(product) <= set(topics) and changelogs, sorted(topics)
    for name in [*product, *changelogs]:
        replicas = {len(p.replicas) for p in topics[name].partitions.values()}
        assert replicas == {cluster.replication_factor}, (name, replicas)
    configs = admin.describe_configs([ConfigResource("topic", name) for name in [*product, *changelogs]])
    for resource, future in configs.items():
        isr = future.result()["min.insync.replicas"].value
        assert int(isr) == cluster.min_insync_replicas, (resource, isr)


@needs_java
def test_a_cluster_id_that_begins_with_a_dash_formats(tmp_path: Path):
    """Cluster ids are URL-safe base64, so 1 in 64 begins with '-': the storage tool must not take it for an option
    (a fresh-clone run failed to start its cluster on one)."""
    cluster = KafkaCluster(Settings().kafka, tmp_path / "kafka", 1, 1, cluster_id="-" + "A" * 21)
    cluster.prepare()
    assert all((node.data_dir / "meta.properties").exists() for node in cluster.nodes)
