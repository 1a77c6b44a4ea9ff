"""The workload's process under the node agent: it dies with its agent, however the agent was started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from connectors.node_agent.process import _group_members

AGENT = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    from connectors.node_agent.process import WorkloadDir, spawn
    if sys.argv[2] == "nohup":
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does to the agent
    proc = spawn("sleep 60", "wl-1", WorkloadDir(Path(sys.argv[1])), None)
    print(proc.pid, flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("started", ["plain", "nohup"])
def test_the_workload_dies_with_its_agent_even_when_the_agent_ignores_sighup(tmp_path: Path, started: str):
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(tmp_path / "wl"), started], stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    try:
        assert agent.stdout is not None
        group = int(agent.stdout.readline())
        deadline = time.monotonic() + 10
        while not _group_members(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _group_members(group), "the workload did not start"
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(10)
        deadline = time.monotonic() + 5
        while _group_members(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _group_members(group) == [], "the workload went on running after its agent was killed"
    finally:
        agent.kill()
        for pid in _group_members(group) if "group" in locals() else []:
            os.kill(pid, signal.SIGKILL)
