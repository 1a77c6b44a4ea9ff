"""Producers outside the project, on their clients' default settings, feeding the running system.

- A node run by ``tests/interop/outside_node.py`` (plain confluent-kafka with no settings but the bootstrap, its own
  Avro encoder from the ``.avsc`` files, no import of the project) registers, streams telemetry, is listed routable
  by ``GET /api/v1/nodes``, and runs the workload the API routes to it, through to its receipt.
- librdkafka's default partitioner (consistent_random: CRC32 of the key) gives the same results as the Java
  client's murmur2, although it puts a workload's events on another partition than the worker's own events.
- A node registered from Java (Avro + kafka-clients, their defaults) is routable too.
- Records that are wrong are dead-lettered with the reasons ``docs/producers.md`` lists.
"""

from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from tests.integration.conftest import running_core
from tests.integration.support import eventually
from tests.interop.java_tool import AvroJava, interop_jar
from tests.interop.outside_node import SingleObjectCodec
from toogreen import PROJECT_ROOT, SCHEMA_DIR
from toogreen.app.demo import Stack
from toogreen.codec import codec_for
from toogreen.settings import Settings

pytestmark = pytest.mark.integration

API = httpx.Client(headers={"Authorization": f"Bearer {Settings().api.admin_token}"})
SCRIPT = PROJECT_ROOT / "tests" / "interop" / "outside_node.py"
STDLIB = set(sys.stdlib_module_names)
API = httpx.Client(headers={"Authorization": f"Bearer {Settings().api.admin_token}"})  # the API wants a token


@pytest.fixture(scope="module")
def grid_core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Broker, worker, API and the synthetic grid: no fleet, so the only nodes are the ones a test brings."""
    with running_core(tmp_path_factory, "outside") as stack:
        stack.spawn("grid", "produce", "grid")
        stack.wait_for("zone windows", lambda: len([z for z in _get(stack, "/api/v1/zones") if z["window_5m"]]) >= 11,
                       90)  # fmt: skip
        yield stack


def _get(stack: Stack, path: str) -> Any:
    try:
        return API.get(f"{stack.api_url()}{path}", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return []


def node(stack: Stack, node_id: str) -> dict[str, Any] | None:
    return next((n for n in _get(stack, "/api/v1/nodes") if n["node_id"] == node_id), None)


def crc32_partition(key: str, partitions: int) -> int:
    """Where librdkafka's default partitioner (consistent_random) puts a key."""
    return (zlib.crc32(key.encode()) & 0xFFFFFFFF) % partitions


def murmur2_partition(key: str, partitions: int) -> int:
    """Where the Java client, aiokafka (and so the Faust worker) put a key."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def split_id(prefix: str, partitions: int) -> str:
    """An id the two partitioners put on different partitions (so the tests below show something)."""
    return next(
        f"{prefix}-{i}"
        for i in range(1000)
        if crc32_partition(f"{prefix}-{i}", partitions) != murmur2_partition(f"{prefix}-{i}", partitions)
    )


class OutsideNode:
    """``outside_node.py`` as a process; what it says (JSON lines) is collected as it comes."""

    def __init__(self, stack: Stack, node_id: str, *args: str) -> None:
        log = open(stack.run_dir / f"outside-{node_id}.log", "ab")  # noqa: SIM115  (the child owns it)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(SCRIPT), "--bootstrap", stack.settings.bootstrap, "--schemas", str(SCHEMA_DIR),
             "--node-id", node_id, "--seconds", "120", *args],
            stdout=subprocess.PIPE, stderr=log, cwd=stack.run_dir, text=True,
        )  # fmt: skip
        self.said: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.said.append(json.loads(line))

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.said if e["event"] == kind]

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        assert self.proc.returncode == 0, f"outside node exited with {self.proc.returncode}"
        (offline,) = self.events("offline")
        return offline


def test_the_outside_node_imports_nothing_of_the_project():
    tree = ast.parse(SCRIPT.read_text())
    modules = {alias.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules - STDLIB == {"fastavro", "confluent_kafka"}


def test_an_outside_node_registers_streams_telemetry_and_receives_work(grid_core: Stack):
    stack, api = grid_core, grid_core.api_url()
    node_id = split_id("outside-gpu", stack.settings.broker.topic_partitions)
    outside = OutsideNode(stack, node_id)
    try:
        listed = eventually(lambda: (n := node(stack, node_id)) and n["routable"] and n, 60, f"{node_id} routable")
        assert listed["zone"] == "FR" and listed["node_type"] == "datacenter" and listed["score"] is not None

        body = {"name": "outside-job", "workload_type": "fine_tune", "image": "ghcr.io/x/y:1", "vram_mb": 20_000,
                "expected_hours": 0.05}  # fmt: skip
        response = API.post(f"{api}/api/v1/workloads", json=body, timeout=15)
        assert response.status_code == 202, response.text
        wid = response.json()["workload_id"]
        done = eventually(
            lambda: (w := API.get(f"{api}/api/v1/workloads/{wid}").json())["status"] == "completed"
            and w["receipt_id"] and w,
            90, "the workload completed on the outside node, with its receipt",
        )  # fmt: skip
        assert done["decisions"][0]["chosen_node_id"] == node_id
        assert [e["type"] for e in done["events"]][:4] == ["submitted", "routed", "started", "completed"]
        assert {"action": "start", "workload_id": wid} in [
            {k: e[k] for k in ("action", "workload_id")} for e in outside.events("command")
        ]
        receipt = API.get(f"{api}/api/v1/receipts/{done['receipt_id']}").json()
        assert receipt["kwh"] > 0 and {i["node_id"] for i in receipt["intervals"]} == {node_id}
    finally:
        offline = outside.stop()
    assert offline["undelivered"] == 0 and offline["telemetry_samples"] >= 3
    eventually(lambda: (n := node(stack, node_id)) and not n["routable"], 30, f"{node_id} no longer routable")


def _workload_partitions(stack: Stack, workload_id: str) -> dict[str, int]:
    """The partition each of a workload's events landed on, by event type (read back from the log)."""
    consumer = Consumer({"bootstrap.servers": stack.settings.bootstrap, "group.id": f"it-{workload_id}",
                         "enable.auto.commit": False})  # fmt: skip
    parts = consumer.list_topics("workload.events", timeout=10).topics["workload.events"].partitions
    consumer.assign([TopicPartition("workload.events", p, OFFSET_BEGINNING) for p in parts])
    found: dict[str, int] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(found) < 4:
        for msg in consumer.consume(1000, 0.5):
            if msg.error() is None and msg.key() == workload_id.encode():
                found[codec_for("workload.events").decode(msg.value())["type"]] = msg.partition()
    consumer.close()
    return found


def run_outside_node_with_its_own_workload(
    stack: Stack, node_id: str, workload_id: str, node_config: list[str], workload_partitioner: str
) -> dict[str, Any]:
    """An outside node that submits a workload on workload.events itself and runs it: what came of it, as the
    worker made it (decision, command, receipt, bill) and as the DuckDB sink recorded the workload's life."""
    api = stack.api_url()
    outside = OutsideNode(stack, node_id, "--submit", workload_id, "--workload-events-partitioner",
                          workload_partitioner, *(f"--producer-config={c}" for c in node_config))  # fmt: skip
    try:
        settled = eventually(
            lambda: (w := API.get(f"{api}/api/v1/workloads/{workload_id}")).status_code == 200
            and (w := w.json())["receipt_id"] and w["billing"] and w,
            90, f"{workload_id} settled",
        )  # fmt: skip
        time.sleep(2)  # what the sink makes of the last events
        done = API.get(f"{api}/api/v1/workloads/{workload_id}").json()
    finally:
        outside.stop()
    eventually(lambda: (n := node(stack, node_id)) and not n["routable"], 30, f"{node_id} offline")
    receipt = API.get(f"{api}/api/v1/receipts/{settled['receipt_id']}").json()
    # a workload submitted before the node's own registration has reached the placement owner waits in the queue
    # first (right, and racy: not what these runs compare), so queueing is left out of both views
    worker = {
        "decisions": [(d["type"], d["chosen_node_id"] == node_id) for d in done["decisions"] if d["type"] != "queued"],
        "commands": [e["action"] for e in outside.events("command") if e["workload_id"] == workload_id],
        "receipt_on_own_node": {i["node_id"] for i in receipt["intervals"]} == {node_id},
        "kwh_positive": receipt["kwh"] > 0,
        "billed": len(done["billing"]),
    }
    sink = {
        "status": done["status"],
        "events": [e["type"] for e in done["events"] if e["type"] not in ("queued", "retry")],
    }
    return {"worker": worker, "sink": sink, "partitions": _workload_partitions(stack, workload_id)}


def test_librdkafka_default_partitioner_gives_the_same_result_as_murmur2(grid_core: Stack):
    partitions = grid_core.settings.broker.topic_partitions

    def run(name: str, node_config: list[str], workload_partitioner: str) -> dict[str, Any]:
        node_id, workload_id = split_id(f"{name}-node", partitions), split_id(f"wl-{name}", partitions)
        return run_outside_node_with_its_own_workload(grid_core, node_id, workload_id, node_config,
                                                      workload_partitioner)  # fmt: skip

    # the Java client's partitioner everywhere, as the README used to ask of every producer
    murmur = run("murmur", ["partitioner=murmur2_random"], "murmur2_random")
    assert murmur["worker"] == {"decisions": [("initial", True)], "commands": ["start"], "receipt_on_own_node": True,
                                "kwh_positive": True, "billed": 1}  # fmt: skip
    assert murmur["sink"] == {"status": "completed", "events": ["submitted", "routed", "started", "completed"]}
    assert len(set(murmur["partitions"].values())) == 1  # all of the workload's events on one partition

    # node.registry and node.telemetry on librdkafka's defaults (its CRC32 partitioner): the same in every respect
    default = run("default", [], "murmur2_random")
    assert default["worker"] == murmur["worker"] and default["sink"] == murmur["sink"]

    # workload.events on librdkafka's defaults too: the worker still routes, starts, settles and bills it the
    # same, and since workload.events is the single-partition placement log (docs/ownership.md), the workload's
    # events lie on its one partition whichever partitioner wrote them
    everywhere = run("crc32", [], "default")
    assert everywhere["worker"] == murmur["worker"]
    assert len(set(everywhere["partitions"].values())) == 1


def test_a_node_registered_from_java_is_routable(grid_core: Stack):
    java = AvroJava(interop_jar())
    node_id = split_id("java-gpu", grid_core.settings.broker.topic_partitions)
    proc = java.java("toogreen.interop.OutsideNode", grid_core.settings.bootstrap, str(SCHEMA_DIR), node_id, "DE",
                     "20")  # fmt: skip
    try:
        listed = eventually(lambda: (n := node(grid_core, node_id)) and n["routable"] and n, 40, f"{node_id} routable")
        assert listed["gpu_model"] == "A100" and listed["zone"] == "DE"
        assert proc.wait(timeout=40) == 0  # it ran its 20 s and said it goes away
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    eventually(lambda: (n := node(grid_core, node_id)) and not n["routable"], 30, f"{node_id} offline")


def test_wrong_records_are_dead_lettered_with_their_reason(grid_core: Stack):
    registry = SingleObjectCodec(SCHEMA_DIR / "node_registry.avsc")
    good = {"node_id": "dl-node", "ts_ms": int(time.time() * 1000), "provider": "p", "node_type": "gamer",
            "gpu_model": "RTX 4090", "vram_mb": 24_564, "zone": "FR", "lat": 1.0, "lng": 2.0}  # fmt: skip
    producer = Producer({"bootstrap.servers": grid_core.settings.bootstrap})
    wrong = {
        "unknown zone 'XX'": registry.encode({**good, "zone": "XX"}),
        "unknown writer schema fingerprint": registry.header[:2]
        + registry.header[2:][::-1]
        + registry.encode(good)[10:],
        "not Avro single-object encoding": json.dumps(good).encode(),
        "corrupt Avro body": registry.header + b"\x02",
    }
    for value in wrong.values():
        producer.produce("node.registry", key=b"dl-node", value=value)
    assert producer.flush(10) == 0

    def reasons() -> list[str]:
        return [d["reason"] for d in _get(grid_core, "/api/v1/dead-letters?limit=1000")
                if d["source_topic"] == "node.registry"]  # fmt: skip

    found = eventually(lambda: (r := reasons()) and all(any(w in x for x in r) for w in wrong) and r, 30,
                       "a dead letter for each wrong record")  # fmt: skip
    assert any(x.startswith("node.registry: invalid record: unknown zone 'XX': known zones are") for x in found)
    assert node(grid_core, "dl-node") is None  # nothing wrong was applied
