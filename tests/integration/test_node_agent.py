"""Real node agents on the embedded broker, beside the real worker and API: the reference workload submitted
through the API runs as a real process and completes with its result's sha256; the router moves it between two
agents (checkpoint → stop → resume through the checkpoint store) twice and the result is byte-identical to an
unmoved run; ``kill -9`` of an agent mid-run leaves nothing running there, the workload resumes on another node
from its last periodic checkpoint and completes exactly once."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.integration.conftest import running_core
from toogreen.app.demo import Stack
from toogreen.codec import decode
from toogreen.kafka.producer import RecordProducer
from toogreen.topics import DEAD_LETTERS, GRID_READINGS, NODE_COMMANDS, ROUTING_DECISIONS, WORKLOAD_EVENTS

pytestmark = pytest.mark.integration

AGENT_ENV = {
    "TOOGREEN_NODE_AGENT__TELEMETRY_INTERVAL_S": "1",
    "TOOGREEN_NODE_AGENT__PROGRESS_INTERVAL_S": "0.5",
    "TOOGREEN_NODE_AGENT__CHECKPOINT_INTERVAL_S": "1.5",
    "TOOGREEN_MIGRATION__RESCORE_MIN_INTERVAL_S": "0",
    "TOOGREEN_MIGRATION__MIN_DWELL_S": "0",
    # a node silent this long is presumed lost (telemetry comes every second: eight missed samples, even when loaded)
    "TOOGREEN_LOST_NODES__NODE_LOST_AFTER_S": "8",
    "TOOGREEN_LOST_NODES__CHECK_INTERVAL_S": "1",
    "TOOGREEN_MIGRATION__QUEUE_RETRY_S": "1",
}
ZONE_OF = {"agent-fr": "FR", "agent-de": "DE"}


def reference(steps: int, step_ms: int = 0) -> str:
    return f"python -m toogreen.workloads.reference --steps {steps} --hidden 64 --step-ms {step_ms}"


def unmoved_sha256(tmp: Path, steps: int) -> str:
    env = {**os.environ, "TOOGREEN_CHECKPOINT_DIR": str(tmp / "c"), "TOOGREEN_OUTPUT": str(tmp / "out")}
    subprocess.run([sys.executable, "-m", *reference(steps).split()[2:]], env=env, check=True, capture_output=True)
    return hashlib.sha256((tmp / "out").read_bytes()).hexdigest()


class EventLog:
    """Every ``workload.events`` record, read from the beginning, by workload."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{uuid.uuid4().hex[:8]}",
                                  "enable.auto.commit": False})  # fmt: skip
        meta = self.consumer.list_topics(WORKLOAD_EVENTS.name, timeout=10)
        parts = meta.topics[WORKLOAD_EVENTS.name].partitions
        self.consumer.assign([TopicPartition(WORKLOAD_EVENTS.name, p, OFFSET_BEGINNING) for p in parts])
        self.by_workload: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def wait(self, wid: str, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 90) -> list:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(500, timeout=0.3):
                if not msg.error():
                    event = decode(WORKLOAD_EVENTS.name, msg.value())
                    self.by_workload[event["workload_id"]].append(event)
            if until(self.by_workload[wid]):
                return self.by_workload[wid]
        kinds = [(e["type"], e["node_id"], e["reason"]) for e in self.by_workload[wid]]
        raise AssertionError(f"{wid}: not reached within {timeout_s} s; its events: {kinds}")

    def close(self) -> None:
        self.consumer.close()


def count(kind: str, n: int = 1, node: str | None = None) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: sum(1 for e in events if e["type"] == kind and node in (None, e["node_id"])) >= n


def steps(events: list[dict[str, Any]]) -> list[tuple[str, str | None, str | None]]:
    """What happened, less the progress reports: for a failure's message."""
    return [(e["type"], e["node_id"], e["reason"]) for e in events if e["type"] != "progress"]


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def publish_grid(stack: Stack, carbon: dict[str, float], readings: int) -> None:
    """``readings`` readings per zone at the given intensity (the tumbling window's mean moves towards it)."""
    producer = RecordProducer(stack.settings.bootstrap)
    start = int(time.time() * 1000) - readings
    for i in range(readings):
        for zone, ci in carbon.items():
            producer.send(GRID_READINGS.name, zone, {
                "zone": zone, "ts_ms": start + i, "carbon_intensity_gco2_per_kwh": ci,
                "carbon_intensity_kind": "lifecycle", "carbon_intensity_basis": "average", "renewable_pct": 60.0,
                "price": 50.0, "price_unit": "EUR/MWh", "price_market": "day_ahead", "curtailment_mw": None,
                "source": "test", "estimated": False,
            })  # fmt: skip
    producer.flush()


def shift_grid(stack: Stack, events: EventLog, carbon: dict[str, float], readings: int) -> None:
    """Change the grid: the placement owner re-scores what runs at the end of its run of zone views (however the
    run ends, streams/agents.py ``rescore_after_grid_change``)."""
    publish_grid(stack, carbon, readings)


def spawn_agent(stack: Stack, name: str) -> subprocess.Popen[bytes]:
    return stack.spawn(name, "node-agent", "--node-id", name, "--zone", ZONE_OF[name], "--telemetry", "replay",
                       "--workdir", str(stack.run_dir / "nodes"),
                       "--checkpoint-store", (stack.run_dir / "checkpoints").as_uri())  # fmt: skip


def routable(stack: Stack) -> set[str]:
    try:
        return {
            n["node_id"]
            for n in httpx.get(f"{stack.api_url()}/api/v1/nodes", headers=stack.api_headers(), timeout=3).json()
            if n["routable"]
        }
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return set()


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The core, two node agents (FR, DE: replayed H100 telemetry) and a grid the tests set themselves."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in AGENT_ENV.items():
            mp.setenv(key, value)
        with running_core(tmp_path_factory, "agents") as stack:
            for name in ZONE_OF:
                spawn_agent(stack, name)
            publish_grid(stack, {"FR": 80.0, "DE": 500.0}, 20)
            stack.wait_for("both agents routable", lambda: routable(stack) >= set(ZONE_OF), 90)
            yield stack


@pytest.fixture(scope="module")
def events(agents: Stack) -> Iterator[EventLog]:
    log = EventLog(agents.settings.bootstrap)
    yield log
    log.close()


def submit(stack: Stack, command: str) -> str:
    body = {"name": "reference", "workload_type": "training", "command": command, "vram_mb": 1000,
            "expected_hours": 0.05}  # fmt: skip
    response = httpx.post(f"{stack.api_url()}/api/v1/workloads", json=body, headers=stack.api_headers(), timeout=15)
    assert response.status_code == 202, response.text
    return response.json()["workload_id"]


def workload_view(stack: Stack, wid: str) -> dict[str, Any]:
    return httpx.get(f"{stack.api_url()}/api/v1/workloads/{wid}", headers=stack.api_headers(), timeout=5).json()


def eventually(check: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def test_a_submitted_workload_runs_under_a_real_agent_and_completes_with_its_result(agents, events, tmp_path):
    expected = unmoved_sha256(tmp_path, 100)
    wid = submit(agents, reference(100, 10))
    done = events.wait(wid, count("completed"))
    started, completed = of(done, "started"), of(done, "completed")
    assert len(started) == 1 and started[0]["node_id"] == "agent-fr"  # the cleaner zone
    assert len(completed) == 1 and completed[0]["node_id"] == "agent-fr"
    assert completed[0]["exit_code"] == 0 and completed[0]["result_sha256"] == expected
    log = agents.run_dir / "nodes" / "agent-fr" / wid / "stdout.log"
    assert "reference: done at step 100" in log.read_text()
    view = eventually(lambda: (w := workload_view(agents, wid))["status"] == "completed" and w, "completed in the API")
    assert view["node_id"] == "agent-fr"


def test_the_router_moves_a_running_workload_twice_and_its_result_is_unchanged(agents, events, tmp_path):
    expected = unmoved_sha256(tmp_path, 1600)
    publish_grid(agents, {"FR": 80.0, "DE": 500.0}, 20)
    wid = submit(agents, reference(1600, 25))
    events.wait(wid, count("progress", 2, "agent-fr"))
    shift_grid(agents, events, {"FR": 800.0, "DE": 40.0}, 300)  # France dirty, Germany clean: move there
    events.wait(wid, count("resumed", 1, "agent-de"))
    shift_grid(agents, events, {"FR": 20.0, "DE": 900.0}, 1200)  # and back
    try:
        events.wait(wid, count("resumed", 1, "agent-fr"))
    except AssertionError as exc:
        reasons = [(d["type"], d["reason"]) for d in workload_view(agents, wid)["decisions"]]
        raise AssertionError(f"{exc}\ndecisions: {reasons}") from None
    done = events.wait(wid, count("completed"), timeout_s=120)

    checkpointed, resumed = of(done, "checkpointed"), of(done, "resumed")
    assert [e["node_id"] for e in checkpointed] == ["agent-fr", "agent-de"], steps(done)
    assert [e["node_id"] for e in resumed] == ["agent-de", "agent-fr"]
    for ckpt, res in zip(checkpointed, resumed, strict=True):
        assert res["checkpoint_uri"] == ckpt["checkpoint_uri"] and res["checkpoint_sha256"] == ckpt["checkpoint_sha256"]
        assert ckpt["checkpoint_bytes"] > 12 * 64 * 32 and ckpt["checkpoint_s"] >= 0 and ckpt["store_s"] >= 0
        assert res["transfer_s"] > 0 and res["restore_s"] > 0 and res["downtime_s"] >= res["restore_s"]
    assert len(of(done, "migrating")) == 2 and len(of(done, "started")) == 1
    completed = of(done, "completed")
    assert len(completed) == 1 and completed[0]["node_id"] == "agent-fr"
    assert completed[0]["result_sha256"] == expected
    view = eventually(lambda: (w := workload_view(agents, wid))["status"] == "completed" and w, "completed in the API")
    assert [d["type"] for d in view["decisions"]].count("reroute") == 2
    assert view["result_sha256"] == expected and view["exit_code"] == 0
    assert [(m["from_node_id"], m["to_node_id"]) for m in view["moves"]] == [("agent-fr", "agent-de"),
                                                                             ("agent-de", "agent-fr")]  # fmt: skip
    for move, ckpt, res in zip(view["moves"], checkpointed, resumed, strict=True):
        assert move["checkpoint_sha256"] == ckpt["checkpoint_sha256"] and move["checkpoint_bytes"] > 0
        assert move["checkpoint_s"] == ckpt["checkpoint_s"] and move["downtime_s"] == res["downtime_s"]
        assert move["transfer_s"] == res["transfer_s"] and move["restore_s"] == res["restore_s"]


def worker_like_producer(stack: Stack) -> RecordProducer:
    """``node.commands`` as the worker writes them: aiokafka's partitioner, the Java client's murmur2 (a node agent
    reads the partition its node id hashes to)."""
    return RecordProducer(stack.settings.bootstrap, partitioner="murmur2_random")


def send_command(stack: Stack, node: str, action: str, wid: str, command: str, uri: str | None = None) -> None:
    producer = worker_like_producer(stack)
    producer.send(NODE_COMMANDS.name, node, {
        "command_id": f"it:{wid}:{action}:{node}", "node_id": node, "ts_ms": int(time.time() * 1000),
        "action": action, "workload_id": wid, "checkpoint_uri": uri, "vram_mb": 1000, "expected_hours": 0.01,
        "image": None, "command": command, "mig_profile": None, "decision_id": None,
    })  # fmt: skip
    producer.flush()


def test_kill_9_of_an_agent_mid_run_then_the_workload_resumes_elsewhere_from_its_last_checkpoint(
    agents, events, tmp_path
):
    expected = unmoved_sha256(tmp_path, 500)
    command = reference(500, 20)
    wid = f"wl-kill-{uuid.uuid4().hex[:8]}"  # sent as node.commands directly: the router never heard of it
    send_command(agents, "agent-fr", "start", wid, command)
    before = events.wait(wid, lambda ev: sum(1 for e in ev if e["type"] == "progress" and e["checkpoint_uri"]) >= 2)
    last_checkpoint = [e for e in before if e["checkpoint_uri"]][-1]

    victim = next(child for child in agents.managed if child.name == "agent-fr")
    agents.managed.remove(victim)  # no longer the stack's to watch: its death is the test
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(10)
    progress = agents.run_dir / "nodes" / "agent-fr" / wid / "progress.json"
    time.sleep(0.5)
    frozen = progress.read_text()
    time.sleep(1.0)
    assert progress.read_text() == frozen, "the workload went on running after its agent was killed"

    send_command(agents, "agent-de", "resume", wid, command, last_checkpoint["checkpoint_uri"])
    done = events.wait(wid, count("completed"))
    resumed = of(done, "resumed")
    assert len(resumed) == 1 and resumed[0]["node_id"] == "agent-de"
    assert resumed[0]["checkpoint_sha256"] == last_checkpoint["checkpoint_sha256"]
    assert resumed[0]["downtime_s"] is None  # a loss, not a move: there was no stop signal to count from
    assert [e["node_id"] for e in of(done, "completed")] == ["agent-de"]
    assert of(done, "completed")[0]["result_sha256"] == expected

    spawn_agent(agents, "agent-fr")  # the killed agent comes back: it starts nothing again
    agents.wait_for("agent-fr back", lambda: "node agent agent-fr" in agents.log_text("agent-fr"), 60)
    time.sleep(3)
    final = events.wait(wid, lambda _ev: True)
    assert len(of(final, "started")) == 1 and len(of(final, "completed")) == 1
    assert not any(e["node_id"] == "agent-fr" and e["ts_ms"] > last_checkpoint["ts_ms"] + 5000 for e in final)


def read_topic(stack: Stack, topic: str, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 30) -> list:
    """Every record of ``topic`` from the beginning, read until ``until`` holds of the ones read (or the time is up)."""
    consumer = Consumer({"bootstrap.servers": stack.settings.bootstrap, "group.id": f"it-{uuid.uuid4().hex[:8]}"})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not until(records) and time.monotonic() < deadline:
            records += [decode(topic, m.value()) for m in consumer.consume(500, timeout=0.5) if not m.error()]
    finally:
        consumer.close()
    return records


def kill_9(stack: Stack, name: str) -> None:
    victim = next(child for child in stack.managed if child.name == name)
    stack.managed.remove(victim)  # no longer the stack's to watch: its death is the test
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(10)


def test_kill_9_of_the_agent_a_routed_workload_runs_on_then_the_router_resumes_it_elsewhere_exactly_once(
    agents, events, tmp_path
):
    """The router's side of a lost node: nobody tells it the agent died. Its telemetry stops; past
    ``node_lost_after_s`` the placement owner re-queues the workload, which the router's normal placement resumes on
    the other agent from the last periodic checkpoint the dead one reported; it completes once, with the result of
    an unmoved run; the agent, once back, is told to stop it."""
    expected = unmoved_sha256(tmp_path, 700)
    wid = submit(agents, reference(700, 20))
    events.wait(wid, lambda ev: sum(1 for e in ev if e["type"] == "progress" and e["checkpoint_uri"]) >= 2)
    victim = of(events.wait(wid, count("started")), "started")[0]["node_id"]
    other = next(n for n in ZONE_OF if n != victim)
    kill_9(agents, victim)

    done = events.wait(wid, count("completed"), timeout_s=120)
    requeued = [e for e in of(done, "queued") if e["node_id"] == victim]
    assert len(requeued) == 1, steps(done)
    why = requeued[0]["reason"]
    assert f"node {victim} sent no telemetry for" in why and "presumed lost" in why, why
    before_loss = done[: done.index(requeued[0])]
    last_checkpoint = [e for e in before_loss if e["type"] == "progress" and e["checkpoint_uri"]][-1]
    assert last_checkpoint["node_id"] == victim
    assert f"resume from its last checkpoint {last_checkpoint['checkpoint_uri']}" in why
    assert requeued[0]["checkpoint_uri"] == last_checkpoint["checkpoint_uri"]
    resumed = of(done, "resumed")
    assert [e["node_id"] for e in resumed] == [other]
    assert resumed[0]["checkpoint_uri"] == last_checkpoint["checkpoint_uri"]
    assert resumed[0]["checkpoint_sha256"] == last_checkpoint["checkpoint_sha256"]
    completed = of(done, "completed")
    assert [e["node_id"] for e in completed] == [other] and completed[0]["result_sha256"] == expected
    assert len(of(done, "started")) == 1  # resumed, not started again from scratch

    decisions = read_topic(agents, ROUTING_DECISIONS.name, lambda rs: any(
        r["workload_id"] == wid and r["type"] == "reroute" for r in rs))  # fmt: skip
    mine = [d for d in decisions if d["workload_id"] == wid]
    lost = [d for d in mine if d["type"] == "queued" and d["from_node_id"]]
    assert len(lost) == 1 and lost[0]["from_node_id"] == victim and lost[0]["reason"] == why
    assert [d["chosen_node_id"] for d in mine if d["type"] == "initial"] == [victim]  # placed once from scratch
    moved = [(d["from_node_id"], d["chosen_node_id"]) for d in mine if d["type"] == "reroute"]
    assert moved == [(victim, other)]  # then resumed off the lost node: a move

    spawn_agent(agents, victim)  # the killed agent comes back: told to stop what was re-queued off it
    stops = read_topic(agents, NODE_COMMANDS.name, lambda rs: any(
        r["workload_id"] == wid and r["node_id"] == victim and r["action"] == "stop" for r in rs), 60)  # fmt: skip
    assert any(r["workload_id"] == wid and r["node_id"] == victim and r["action"] == "stop" for r in stops)
    agents.wait_for(f"{victim} routable again", lambda: victim in routable(agents), 60)
    final = events.wait(wid, lambda _ev: True)
    assert len(of(final, "completed")) == 1 and len(of(final, "started")) == 1
    view = eventually(lambda: (w := workload_view(agents, wid))["status"] == "completed" and w, "completed in the API")
    assert view["result_sha256"] == expected and view["node_id"] == other
    assert [(m["from_node_id"], m["to_node_id"]) for m in view["moves"]] == [(victim, other)]
    assert view["moves"][0]["checkpoint_sha256"] == last_checkpoint["checkpoint_sha256"]


def test_a_command_the_agent_cannot_read_is_dead_lettered_and_the_agent_goes_on(agents, events, tmp_path):
    producer = worker_like_producer(agents)
    producer.send_raw(NODE_COMMANDS.name, b"agent-de", b"not a command")
    producer.flush()
    # the sink dead-letters it too, under the same key (the message's coordinates): read the topic, not the table
    consumer = Consumer({"bootstrap.servers": agents.settings.bootstrap, "group.id": f"it-{uuid.uuid4().hex[:8]}"})
    parts = consumer.list_topics(DEAD_LETTERS.name, timeout=10).topics[DEAD_LETTERS.name].partitions
    consumer.assign([TopicPartition(DEAD_LETTERS.name, p, OFFSET_BEGINNING) for p in parts])
    mine: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not mine and time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=0.5):
            record = decode(DEAD_LETTERS.name, msg.value())
            if record["stage"] == "node_agent" and record["source_topic"] == NODE_COMMANDS.name:
                mine.append(record)
    consumer.close()
    assert mine and "not Avro single-object encoding" in mine[0]["reason"] and mine[0]["raw"] == b"not a command"
    wid = f"wl-after-{uuid.uuid4().hex[:8]}"
    send_command(agents, "agent-de", "start", wid, "python -c pass")
    assert of(events.wait(wid, count("completed")), "completed")[0]["node_id"] == "agent-de"


def test_two_operator_moves_keep_the_result_and_the_receipt_covers_both_nodes(agents, events, tmp_path):
    expected = unmoved_sha256(tmp_path, 1000)
    wid = submit(agents, reference(1000, 25))
    first = of(events.wait(wid, count("progress", 2)), "started")[0]["node_id"]
    other = next(n for n in ZONE_OF if n != first)
    admin = agents.api_headers()

    def move(body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(f"{agents.api_url()}/api/v1/admin/workloads/{wid}/move", json=body, headers=admin, timeout=10)
        assert r.status_code == 202, r.text
        return r.json()

    eventually(lambda: workload_view(agents, wid)["status"] == "running", "running in the API")
    assert move({"node_id": other})["from_node_id"] == first  # wherever the grid says: an operator decides
    events.wait(wid, count("resumed", 1, other))
    # a stint of a few telemetry samples, so that the receipt has energy on both nodes to show
    events.wait(wid, count("progress", 6, other))
    eventually(lambda: workload_view(agents, wid)["node_id"] == other, f"on {other} in the API")
    assert move({})["node_id"] is None  # the best other node: the only other H100
    done = events.wait(wid, count("completed"), timeout_s=120)
    assert [e["node_id"] for e in of(done, "resumed")] == [other, first]
    assert of(done, "completed")[0]["result_sha256"] == expected

    view = eventually(lambda: (w := workload_view(agents, wid))["receipt_id"] and w, "the receipt", 60)
    assert view["result_sha256"] == expected and len(view["moves"]) == 2
    assert all("operator move" in m["reason"] for m in view["moves"])
    receipt = httpx.get(f"{agents.api_url()}/api/v1/receipts/{view['receipt_id']}", headers=admin, timeout=5).json()
    assert {i["node_id"] for i in receipt["intervals"]} == {"agent-fr", "agent-de"}, receipt["intervals"]
    assert all(i["kwh"] > 0 for i in receipt["intervals"])
    not_running = httpx.post(f"{agents.api_url()}/api/v1/admin/workloads/{wid}/move", json={}, headers=admin)
    assert not_running.status_code == 409 and "completed" in not_running.text
