"""One running system for the integration tests: the embedded broker, the Faust worker, the API with the
DuckDB sink, the simulated fleet and the synthetic grid, as real processes on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from toogreen.demo import Stack, start_core
from toogreen.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_dir: Path = tmp_path_factory.mktemp("system")
    env = {
        "TOOGREEN_BROKER__EMBEDDED_PORT": str(free_port()),
        "TOOGREEN_API__PORT": str(free_port()),
        "TOOGREEN_STORAGE__DUCKDB_PATH": str(run_dir / "toogreen.duckdb"),
        "TOOGREEN_STORAGE__SNAPSHOT_PATH": str(run_dir / "snapshot.duckdb"),
        "TOOGREEN_STORAGE__SNAPSHOT_INTERVAL_S": "1",
        "TOOGREEN_DEMO__GRID_INTERVAL_S": "1",
        "TOOGREEN_DEMO__TELEMETRY_INTERVAL_S": "1",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
    stack = Stack(settings, run_dir, env=env)
    try:
        start_core(stack)
        stack.spawn("fleet", "produce", "telemetry")
        stack.spawn("grid", "produce", "grid")
        stack.wait_for("routable nodes", lambda: _routable(stack) >= 15, 90)
        yield stack
    finally:
        stack.stop()


def _routable(stack: Stack) -> int:
    try:
        return sum(1 for n in httpx.get(f"{stack.api_url()}/api/v1/nodes", timeout=3).json() if n["routable"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return 0
