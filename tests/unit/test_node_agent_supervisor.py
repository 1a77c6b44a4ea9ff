"""The node agent's supervisor on real processes (no Kafka): the router's protocol, a move between two nodes
through the checkpoint store, refusals and failures with their reasons."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.node_agent.store import FileCheckpointStore, split_uri
from connectors.node_agent.supervisor import Supervisor
from toogreen.settings import NodeAgentSettings

REFERENCE = "python -m toogreen.workloads.reference --steps 150 --hidden 24"
FAST = NodeAgentSettings(checkpoint_interval_s=3600, progress_interval_s=0.2, restore_timeout_s=20,
                         stop_timeout_s=20, checkpoint_timeout_s=20)  # fmt: skip


def command(node: str, action: str, wid: str = "wl-1", cmd: str | None = REFERENCE, **extra: Any) -> dict[str, Any]:
    return {"command_id": f"{node}:{action}:{time.monotonic_ns()}", "node_id": node, "ts_ms": 0, "action": action,
            "workload_id": wid, "checkpoint_uri": None, "vram_mb": 1000, "expected_hours": 0.01, "image": None,
            "command": cmd, "mig_profile": None, "decision_id": "d-1", **extra}  # fmt: skip


def pump(nodes: list[Supervisor], until: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 30) -> list:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for node in nodes:
            seen += node.poll()
        if until(seen):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"not reached in {timeout_s} s; events: {[(e['type'], e.get('reason')) for e in seen]}")


def has(kind: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: any(e["type"] == kind for e in events)


@pytest.fixture(scope="module")
def unmoved_sha256(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("unmoved")
    env = {**os.environ, "TOOGREEN_CHECKPOINT_DIR": str(tmp / "c"), "TOOGREEN_OUTPUT": str(tmp / "out")}
    subprocess.run([sys.executable, *REFERENCE.split()[1:]], env=env, check=True, capture_output=True)
    return hashlib.sha256((tmp / "out").read_bytes()).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> FileCheckpointStore:
    return FileCheckpointStore(tmp_path / "store")


def node(name: str, tmp_path: Path, store: FileCheckpointStore, settings: NodeAgentSettings = FAST) -> Supervisor:
    return Supervisor(name, tmp_path / name, store, settings, vram_mb=80_000)


def test_a_started_workload_runs_as_a_process_and_completes_with_its_result(tmp_path, store, unmoved_sha256):
    a = node("a", tmp_path, store)
    assert [e["type"] for e in a.handle(command("a", "start"))] == ["started"]
    assert a.busy() and a.used_vram_mb() == 1000
    events = pump([a], has("completed"))
    done = events[-1]
    assert done["exit_code"] == 0 and done["progress_pct"] == 100.0
    assert done["result_sha256"] == unmoved_sha256
    assert Path(split_uri(done["result_uri"])[0].removeprefix("file://")).exists()
    assert "reference: done at step 150" in (tmp_path / "a" / "wl-1" / "stdout.log").read_text()
    assert not a.busy()


def test_a_move_between_two_nodes_ends_with_the_unmoved_result(tmp_path, store, unmoved_sha256):
    slow = REFERENCE + " --step-ms 15"
    a, b = node("a", tmp_path, store), node("b", tmp_path, store)
    a.handle(command("a", "start", cmd=slow))
    pump([a], lambda _e: (tmp_path / "a" / "wl-1" / "progress.json").exists())
    assert a.handle(command("a", "checkpoint", cmd=slow, checkpoint_uri="ckpt://a/wl-1/d-1")) == []
    checkpointed = pump([a], has("checkpointed"))[-1]
    assert not a.busy()  # gone before anyone hears of the checkpoint: it never runs in two places
    uri = checkpointed["checkpoint_uri"]
    assert uri.startswith("file://") and split_uri(uri)[1] == checkpointed["checkpoint_sha256"]
    assert checkpointed["checkpoint_bytes"] > 0 and checkpointed["checkpoint_s"] >= 0 and checkpointed["store_s"] >= 0
    assert 0 < checkpointed["progress_pct"] < 100
    assert a.handle(command("a", "stop", cmd=slow)) == []
    assert b.handle(command("b", "resume", cmd=slow, checkpoint_uri=uri)) == []
    resumed = pump([b], has("resumed"))[-1]
    assert resumed["node_id"] == "b" and resumed["checkpoint_sha256"] == checkpointed["checkpoint_sha256"]
    assert resumed["transfer_s"] > 0 and resumed["restore_s"] > 0
    assert resumed["downtime_s"] >= resumed["restore_s"]
    done = pump([b], has("completed"))[-1]
    assert done["result_sha256"] == unmoved_sha256


def test_a_corrupted_checkpoint_refuses_the_resume(tmp_path, store):
    a, b = node("a", tmp_path, store), node("b", tmp_path, store)
    a.handle(command("a", "start", cmd=REFERENCE + " --step-ms 10"))
    pump([a], lambda _e: (tmp_path / "a" / "wl-1" / "progress.json").exists())
    a.handle(command("a", "checkpoint"))
    uri = pump([a], has("checkpointed"))[-1]["checkpoint_uri"]
    path = Path(split_uri(uri)[0].removeprefix("file://"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    failed = b.handle(command("b", "resume", checkpoint_uri=uri))
    assert [e["type"] for e in failed] == ["failed"] and "refused to resume" in failed[0]["reason"]
    assert "hashes to" in failed[0]["reason"] and not b.busy()


def test_periodic_checkpoints_are_stored_and_reported_on_progress_events(tmp_path, store):
    periodic = FAST.model_copy(update={"checkpoint_interval_s": 0.3})
    a = node("a", tmp_path, store, periodic)
    a.handle(command("a", "start", cmd=REFERENCE + " --step-ms 10"))
    events = pump([a], lambda ev: sum(1 for e in ev if e["type"] == "progress" and e["checkpoint_uri"]) >= 2)
    stored = [e for e in events if e["type"] == "progress" and e["checkpoint_uri"]]
    assert all(e["checkpoint_sha256"] and e["checkpoint_bytes"] > 0 for e in stored)
    assert stored[0]["checkpoint_uri"] != stored[1]["checkpoint_uri"]
    assert a.busy()  # a periodic checkpoint does not stop it
    a.handle(command("a", "stop"))
    assert pump([a], lambda _e: not a.runs) == []  # told to stop: it stops without a report


def test_a_failing_command_is_reported_with_its_exit_code_and_stderr(tmp_path, store):
    a = node("a", tmp_path, store)
    a.handle(command("a", "start", cmd="echo 'disk on fire' >&2; exit 3"))
    failed = pump([a], has("failed"))[-1]
    assert failed["exit_code"] == 3 and "exited with code 3" in failed["reason"] and "disk on fire" in failed["reason"]


def test_a_workload_that_ignores_the_contract_is_told_so(tmp_path, store):
    a = node("a", tmp_path, store, FAST.model_copy(update={"checkpoint_interval_s": 0.2, "signal_grace_s": 1.0}))
    a.handle(command("a", "start", cmd="sleep 30"))
    failed = pump([a], has("failed"))[-1]
    assert "does not handle SIGUSR1" in failed["reason"]


def test_what_a_node_cannot_run_is_refused_at_once(tmp_path, store):
    a = node("a", tmp_path, store)
    image_only = a.handle(command("a", "start", cmd=None, image="ghcr.io/x/y:1"))
    assert image_only[0]["type"] == "failed" and "images are not supported" in image_only[0]["reason"]
    too_big = a.handle(command("a", "start", wid="wl-2", vram_mb=200_000))
    assert too_big[0]["type"] == "failed" and "not enough VRAM" in too_big[0]["reason"]
    assert a.handle(command("b", "start")) == []  # another node's command


def test_a_redelivered_command_is_a_no_op(tmp_path, store):
    a = node("a", tmp_path, store)
    start = command("a", "start", cmd="sleep 5")
    assert len(a.handle(start)) == 1
    assert a.handle(start) == [] and a.handle({**start, "command_id": "other"}) == []
    a.handle(command("a", "stop"))
    pump([a], lambda _e: not a.runs)


def test_the_workload_sees_the_contract_environment_and_none_of_the_agents_settings(tmp_path, store, monkeypatch):
    monkeypatch.setenv("TOOGREEN_SETTLEMENT__STRIPE_API_KEY", "sk_secret")
    a = node("a", tmp_path, store)
    a.handle(command("a", "start", cmd='env | grep ^TOOGREEN_ | sort > "$TOOGREEN_OUTPUT"; command -v python'))
    done = pump([a], has("completed"))[-1]
    env = (tmp_path / "a" / "wl-1" / "output" / "result").read_text()
    assert "TOOGREEN_WORKLOAD_ID=wl-1" in env and "TOOGREEN_CHECKPOINT_DIR=" in env and "sk_secret" not in env
    assert "TOOGREEN_RESUME_FROM" not in env
    assert (tmp_path / "a" / "wl-1" / "stdout.log").read_text().strip() == str(Path(sys.executable).parent / "python")
    assert done["result_bytes"] == len(env.encode())
