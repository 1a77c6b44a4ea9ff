"""One running system for the integration tests: the embedded broker, the Faust worker, the API with the
DuckDB sink, the simulated fleet and the synthetic grid, as real processes on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from toogreen.app.demo import Stack, start_core
from toogreen.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_env(run_dir: Path) -> dict[str, str]:
    """What every test system sets: its own API port and DuckDB files, and a fast cadence."""
    return {
        "TOOGREEN_API__PORT": str(free_port()),
        "TOOGREEN_STORAGE__DUCKDB_PATH": str(run_dir / "toogreen.duckdb"),
        "TOOGREEN_STORAGE__SNAPSHOT_PATH": str(run_dir / "snapshot.duckdb"),
        "TOOGREEN_STORAGE__SNAPSHOT_INTERVAL_S": "1",
        "TOOGREEN_DEMO__GRID_INTERVAL_S": "1",
        "TOOGREEN_DEMO__TELEMETRY_INTERVAL_S": "1",
    }


@contextmanager
def running_core(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Stack]:
    """Broker, worker, API with its sink (each test module gets its own, so grid clocks never mix)."""
    run_dir: Path = tmp_path_factory.mktemp(name)
    env = {"TOOGREEN_BROKER__EMBEDDED_PORT": str(free_port()), **run_env(run_dir)}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
    stack = Stack(settings, run_dir, env=env)
    try:
        start_core(stack)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The core plus the simulated fleet and the synthetic grid, live."""
    with running_core(tmp_path_factory, "system") as stack:
        stack.spawn("fleet", "produce", "telemetry")
        stack.spawn("grid", "produce", "grid")
        stack.wait_for("routable nodes", lambda: _routable(stack) >= 15, 90)
        yield stack


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The core alone, for tests that bring their own inputs."""
    with running_core(tmp_path_factory, "core") as stack:
        yield stack


def _routable(stack: Stack) -> int:
    try:
        return sum(
            1
            for n in httpx.get(f"{stack.api_url()}/api/v1/nodes", headers=stack.api_headers(), timeout=3).json()
            if n["routable"]
        )
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return 0
