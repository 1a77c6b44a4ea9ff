"""``toogreen demo`` as a user runs it: kill -9 of its broker, recovery by itself, Ctrl-C, the next start, kill -9 of
the demo itself; and a worker whose broker is gone stops when told to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.test_kill_each_process import decided
from tests.integration.conftest import free_port
from toogreen.app.demo import Stack
from toogreen.kafka.broker import die_with_parent
from toogreen.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(300)]

STOP_WITHIN_S = 5.0


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return {p for p in found if alive(p)}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(check, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout_s:.0f} s")


class Demo:
    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        self.run_dir, self.env = run_dir, env
        self.out = run_dir / f"demo-{time.monotonic_ns()}.out"
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "toogreen.app.cli", "demo"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
                preexec_fn=die_with_parent,  # an interrupted test run leaves no demo behind
            )

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_up(self, timeout_s: float = 120) -> float:
        def up() -> bool:
            assert self.proc.poll() is None, f"the demo exited:\n{self.text()[-3000:]}"
            return "is running" in self.text()

        return wait_until(up, timeout_s, "the demo up")

    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['TOOGREEN_API__PORT']}"

    def api_headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.env.get("TOOGREEN_API__ADMIN_TOKEN", Settings().api.admin_token)}

    def url(self, path: str) -> str:
        return f"{self.api_url()}{path}"


@pytest.fixture
def demo_env(tmp_path) -> dict[str, str]:
    return {
        "TOOGREEN_BROKER__EMBEDDED_PORT": str(free_port()),
        "TOOGREEN_API__PORT": str(free_port()),
        "TOOGREEN_STORAGE__DUCKDB_PATH": str(tmp_path / "toogreen.duckdb"),
        "TOOGREEN_STORAGE__SNAPSHOT_PATH": str(tmp_path / "snapshot.duckdb"),
        "TOOGREEN_SETTLEMENT__SIGNING_KEY_PATH": str(tmp_path / "signing.pem"),
        "TOOGREEN_SETTLEMENT__SOLANA_PAYER_KEY_PATH": str(tmp_path / "payer.json"),
        "TOOGREEN_DEMO__WORKLOAD_INTERVAL_S": "0.5",
    }


def test_the_demo_survives_its_broker_stops_in_time_and_starts_again_at_once(tmp_path, demo_env, capsys):
    demo = Demo(tmp_path, demo_env)
    try:
        first_start_s = demo.wait_up()
        time.sleep(5)  # workloads flowing, some running
        broker = next(p for p in descendants(demo.proc.pid) if "tansu" in Path(f"/proc/{p}/cmdline").read_text())
        os.kill(broker, signal.SIGKILL)
        killed = time.monotonic()
        unhealthy_after_s = None
        while time.monotonic() - killed < 10 and unhealthy_after_s is None:
            try:
                if httpx.get(demo.url("/healthz"), timeout=1).status_code == 503:
                    unhealthy_after_s = time.monotonic() - killed
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        supervisor_log = tmp_path / "demo-logs" / "supervisor.log"
        wait_until(lambda: "broker restarted" in supervisor_log.read_text(), 30, "a new broker")

        def submitted() -> str | None:
            body = {"name": "after-broker", "workload_type": "inference", "image": "x/y:1", "vram_mb": 8000,
                    "expected_hours": 0.5}  # fmt: skip
            try:
                response = httpx.post(demo.url("/api/v1/workloads"), json=body, headers=demo.api_headers(), timeout=5)
            except httpx.HTTPError:
                return None
            return response.json()["workload_id"] if response.status_code == 202 else None

        wid: list[str] = []
        wait_until(lambda: (w := submitted()) is not None and not wid.append(w), 60, "a submission accepted")

        def routed() -> bool:
            try:
                return decided(demo, wid[0])
            except httpx.HTTPError:
                return False

        recovered_s = time.monotonic() - killed + wait_until(routed, 60, "the new submission routed")
        lost = httpx.get(
            demo.url("/api/v1/workloads?status=lost&limit=1000"), headers=demo.api_headers(), timeout=5
        ).json()

        children = descendants(demo.proc.pid)
        assert len(children) >= 6  # broker, worker, API, grid, fleet, workloads
        stop_started = time.monotonic()
        demo.proc.send_signal(signal.SIGINT)
        demo.proc.wait(timeout=15)
        stop_s = time.monotonic() - stop_started
        left = {p for p in children if alive(p)}
        assert "stopped in" in demo.text()
    finally:
        if demo.proc.poll() is None:
            os.killpg(demo.proc.pid, signal.SIGKILL)

    again = Demo(tmp_path, demo_env)
    try:
        second_start_s = again.wait_up()
        children_again = descendants(again.proc.pid)
        os.kill(again.proc.pid, signal.SIGKILL)  # kill -9 of the demo itself: nothing may outlive it
        orphans_gone_s = wait_until(lambda: not any(alive(p) for p in children_again), 5, "the children gone")
    finally:
        if again.proc.poll() is None:
            os.killpg(again.proc.pid, signal.SIGKILL)
        for pid in descendants(again.proc.pid) | children_again:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    with capsys.disabled():
        print(
            f"\ndemo: up in {first_start_s:.1f} s; broker kill -9: /healthz 503 after "
            f"{'never (within 10 s)' if unhealthy_after_s is None else f'{unhealthy_after_s:.1f} s'}, "
            f"{len(lost)} workloads lost with the old log, a new submission routed {recovered_s:.1f} s after the kill; "
            f"Ctrl-C stopped all in {stop_s:.1f} s; next start up in {second_start_s:.1f} s; after kill -9 of the "
            f"demo its {len(children_again)} children were gone within {orphans_gone_s:.1f} s"
        )
    assert stop_s <= STOP_WITHIN_S
    assert left == set(), f"outlived the demo: {left}"
    assert all(w["reason"] and "log lifetime" in w["reason"] for w in lost)
    assert second_start_s < 60
    assert unhealthy_after_s is not None, "/healthz stayed 200 for 10 s without a broker"


def test_a_worker_whose_broker_is_gone_stops_within_5_s(tmp_path, capsys):
    env = {
        "TOOGREEN_BROKER__EMBEDDED_PORT": str(free_port()),
        "TOOGREEN_STORAGE__DUCKDB_PATH": str(tmp_path / "toogreen.duckdb"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
    stack = Stack(settings, tmp_path, env=env)
    try:
        stack.start_broker()
        stack.create_topics()
        worker = stack.spawn("worker", "worker", "--loglevel", "info")
        stack.wait_for("worker", stack.worker_ready, 90)
        assert stack.broker is not None and stack.broker.process is not None
        stack.broker.process.kill()
        stack.broker.process.wait()
        time.sleep(1)
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        took_s = time.monotonic() - started
        with capsys.disabled():
            print(f"\nworker without a broker: stopped {took_s:.1f} s after SIGTERM")
        assert took_s <= STOP_WITHIN_S
    finally:
        stack.stop()
