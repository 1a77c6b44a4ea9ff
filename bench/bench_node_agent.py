"""A move of the reference workload between two node agents: checkpoint size, checkpoint / store / transfer /
restore seconds and the downtime, at two model sizes.

Two real supervisors (``connectors.node_agent.supervisor``, the agent's workload side: real processes, the real
file:// checkpoint store on this machine's disk) move a running ``python -m toogreen.workloads.reference`` from one
to the other by the router's protocol (checkpoint → checkpointed → resume → resumed). The broker hop between them
is not in these figures (the pipeline benchmarks measure that); the downtime runs from the SIGTERM on the origin to
the first progress report on the target.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Table
from connectors.node_agent.store import FileCheckpointStore
from connectors.node_agent.supervisor import Supervisor
from toogreen.settings import NodeAgentSettings
from toogreen.workloads.reference import parameter_count

SIZES = (("small", 1024), ("large", 131_072))
STEP_MS = 20
AGENT = NodeAgentSettings(checkpoint_interval_s=1e9, progress_interval_s=0.2, restore_timeout_s=120,
                          stop_timeout_s=120, checkpoint_timeout_s=120, signal_grace_s=120)  # fmt: skip


def _pump(nodes: list[Supervisor], kind: str, timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for node in nodes:
            for event in node.poll():
                if event["type"] == kind:
                    return event
                if event["type"] == "failed":
                    raise RuntimeError(f"the workload failed: {event['reason']}")
        time.sleep(0.005)
    raise TimeoutError(f"no {kind} within {timeout_s} s")


def _command(node: str, action: str, hidden: int, seq: int, uri: str | None = None) -> dict[str, Any]:
    return {"command_id": f"bench:{seq}:{node}:{action}", "node_id": node, "ts_ms": 0, "action": action,
            "workload_id": f"bench-{seq}", "checkpoint_uri": uri, "vram_mb": 1, "expected_hours": 1.0, "image": None,
            "command": f"python -m toogreen.workloads.reference --steps 1000000 --hidden {hidden} --step-ms {STEP_MS}",
            "mig_profile": None, "decision_id": None}  # fmt: skip


def one_move(root: Path, hidden: int, seq: int) -> dict[str, float]:
    store = FileCheckpointStore(root / "store")
    a = Supervisor("bench-a", root / "a", store, AGENT)
    b = Supervisor("bench-b", root / "b", store, AGENT)
    wid = f"bench-{seq}"
    a.handle(_command("bench-a", "start", hidden, seq))
    ready: Callable[[], bool] = lambda: (root / "a" / wid / "progress.json").exists()  # noqa: E731
    while not ready():
        a.poll()
        time.sleep(0.01)
    time.sleep(0.3)  # a few steps in
    a.handle(_command("bench-a", "checkpoint", hidden, seq))
    checkpointed = _pump([a], "checkpointed")
    a.handle(_command("bench-a", "stop", hidden, seq))
    b.handle(_command("bench-b", "resume", hidden, seq, checkpointed["checkpoint_uri"]))
    resumed = _pump([b], "resumed")
    b.handle(_command("bench-b", "stop", hidden, seq))
    while b.runs:
        b.poll()
        time.sleep(0.01)
    return {
        "bytes": float(checkpointed["checkpoint_bytes"]),
        "checkpoint_s": checkpointed["checkpoint_s"],
        "store_s": checkpointed["store_s"],
        "transfer_s": resumed["transfer_s"],
        "restore_s": resumed["restore_s"],
        "downtime_s": resumed["downtime_s"],
    }


def run(runs: int = 3) -> Table:
    table = Table(
        "Moving the reference workload between two node agents",
        f"reference workload (numpy MLP, Adam, float32) padded to {STEP_MS} ms a step; file:// store on the local "
        f"disk; median of {runs} moves per size",
        ["size", "parameters", "checkpoint", "checkpoint s", "store s", "transfer s", "restore s", "downtime s",
         "downtime / (sum of steps)"],
    )  # fmt: skip
    for label, hidden in SIZES:
        with tempfile.TemporaryDirectory(prefix="bench-node-agent-") as tmp:
            moves = [one_move(Path(tmp) / f"run{i}", hidden, i) for i in range(runs)]
        med = {k: statistics.median(m[k] for m in moves) for k in moves[0]}
        steps = med["checkpoint_s"] + med["store_s"] + med["transfer_s"] + med["restore_s"]
        table.rows.append([
            label, f"{parameter_count(hidden):,}", f"{med['bytes'] / 2**20:.2f} MiB", f"{med['checkpoint_s']:.3f}",
            f"{med['store_s']:.3f}", f"{med['transfer_s']:.3f}", f"{med['restore_s']:.3f}",
            f"{med['downtime_s']:.3f}", f"{med['downtime_s'] / steps:.2f}",
        ])  # fmt: skip
    table.notes += [
        "checkpoint s: SIGTERM until the workload exited with its checkpoint written (it finishes its step first); "
        "store s: tar + sha256 + write to the store; transfer s: read from the store, verify the sha256, unpack; "
        "restore s: the resumed process's start (interpreter, numpy, loading) to its first progress report",
        "downtime s: SIGTERM on the origin to the first progress report on the target; with the router in between, "
        "add the broker hops (checkpointed → resume), which the pipeline benchmarks measure",
        "12 bytes per parameter (fp32 weights and both Adam moments), as a real fp32 + AdamW checkpoint",
    ]
    return table


if __name__ == "__main__":
    print(run(1).markdown())
