"""The system on Apache Kafka for the integration tests: a local KRaft cluster (1 or 3 brokers, from the Maven
Central jars) and the same processes as on the embedded broker, pointed at it through the environment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import run_env
from toogreen.app.demo import Stack, start_core
from toogreen.kafka.cluster import KafkaCluster
from toogreen.settings import Settings


def java_available() -> bool:
    import shutil

    return shutil.which("java") is not None and shutil.which("mvn") is not None


needs_java = pytest.mark.skipif(not java_available(), reason="Apache Kafka needs java (17+) and mvn on PATH")


@contextmanager
def kafka_cluster(run_dir: Path, brokers: int, partitions: int = 4) -> Iterator[KafkaCluster]:
    settings = Settings()
    cluster = KafkaCluster(settings.kafka, run_dir / "kafka", brokers, partitions)
    with cluster:
        yield cluster


def stack_env(cluster: KafkaCluster, run_dir: Path, **extra: str) -> dict[str, str]:
    return {**cluster.client_env(), **run_env(run_dir), **extra}


def stack_on(cluster: KafkaCluster, run_dir: Path, **extra: str) -> Stack:
    env = stack_env(cluster, run_dir, **extra)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
    return Stack(settings, run_dir, env=env)


@contextmanager
def running_system_on_kafka(run_dir: Path, brokers: int) -> Iterator[tuple[KafkaCluster, Stack]]:
    """Kafka, then broker-less core (worker, API with sink), the simulated fleet and the synthetic grid."""
    with kafka_cluster(run_dir, brokers) as cluster:
        stack = stack_on(cluster, run_dir)
        try:
            start_core(stack)
            stack.spawn("fleet", "produce", "telemetry")
            stack.spawn("grid", "produce", "grid")
            stack.wait_for("routable nodes", lambda: routable(stack) >= 15, 90)
            yield cluster, stack
        finally:
            stack.stop()


def routable(stack: Stack) -> int:
    try:
        nodes = httpx.get(f"{stack.api_url()}/api/v1/nodes", headers=stack.api_headers(), timeout=3).json()
        return sum(1 for n in nodes if n["routable"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return 0
