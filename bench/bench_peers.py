"""The peers on our ingest job: the same windows and node state written with quix-streams and with bytewax
(``bench/peers/``), on the same broker and the same pre-produced events as the toogreen worker in
``bench.bench_kafka``, in the same run.

They run in ``.venv-peers`` (``make peers-venv``; ``make bench`` builds it), because they pin other versions of
confluent-kafka and pydantic than the project does.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PEERS_PYTHON = PROJECT / ".venv-peers" / "bin" / "python"
JOBS = {"quix-streams": "bench.peers.quix_job", "bytewax": "bench.peers.bytewax_job"}


@dataclass(frozen=True)
class PeerRun:
    framework: str
    events: int
    seconds: float
    events_per_s: float
    zones: int
    nodes: int
    windows_written: int


def available() -> bool:
    return PEERS_PYTHON.exists()


def run_peer(framework: str, bootstrap: str, events: int, timeout_s: float = 600) -> PeerRun:
    """One peer over every pre-produced event, in its own process; raises with its output if it fails."""
    with tempfile.TemporaryDirectory(prefix=f"peer-{framework}-") as state_dir:
        out_topic = f"peer-{framework}-windows-{os.getpid()}"
        env = {**os.environ, "PYTHONPATH": str(PROJECT)}
        proc = subprocess.run(
            [str(PEERS_PYTHON), "-m", JOBS[framework], bootstrap, str(events), out_topic, state_dir],
            env=env, cwd=PROJECT, capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{framework} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-3000:]}")
    report = json.loads(lines[-1])
    if report["events"] < events:
        raise RuntimeError(f"{framework} saw {report['events']} of {events} events")
    return PeerRun(**report)
