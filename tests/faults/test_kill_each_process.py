"""Fault injection: ``kill -9`` of each process of a running, supervised system in turn (worker, API with its
sink, simulated fleet, grid producer, broker) while workloads flow. The supervisor restarts each; afterwards no
receipt, bill, payout or decision is duplicated, no workload is stuck active, and a new submission is routed.

Run it alone with ``make faults`` (it prints the counts before and after every kill)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from tests.integration.conftest import free_port
from toogreen.app.demo import Stack, start_core
from toogreen.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(420)]

ACTIVE = ("submitted", "routed", "running", "checkpointed", "migrating")
VICTIMS = tuple(os.environ.get("FAULTS_VICTIMS", "worker,api,fleet,grid,broker").split(","))

COUNTS_SQL = {
    "workloads": "SELECT count(*) FROM workloads",
    "completed": "SELECT count(*) FROM workloads WHERE status = 'completed'",
    "lost": "SELECT count(*) FROM workloads WHERE status = 'lost'",
    "active": f"SELECT count(*) FROM workloads WHERE status IN {ACTIVE}",
    "decisions": "SELECT count(*) FROM routing_decisions",
    "receipts": "SELECT count(*) FROM carbon_receipts",
    "bills": "SELECT count(*) FROM billing_records",
    "payouts": "SELECT count(*) FROM payouts",
    "dead_letters": "SELECT count(*) FROM dead_letters",
    "lifetimes": "SELECT count(*) FROM log_lifetimes",
}
DUPLICATES_SQL = {
    "receipts": "SELECT count(*) FROM (SELECT workload_id FROM carbon_receipts GROUP BY 1 HAVING count(*) > 1)",
    # one final bill (and its payout) per workload; interim ones, per metering interval and node, have their own ids
    "bills": "SELECT count(*) FROM (SELECT workload_id FROM billing_records WHERE billing_id LIKE '%-final' "
    "GROUP BY 1 HAVING count(*) > 1)",
    "payouts": "SELECT count(*) FROM (SELECT workload_id, rail FROM payouts WHERE payout_id LIKE '%-final:%' "
    "GROUP BY ALL HAVING count(*) > 1)",
    # a workload placed twice from scratch: two initial decisions
    "decisions": "SELECT count(*) FROM (SELECT workload_id FROM routing_decisions WHERE type = 'initial' "
    "GROUP BY 1 HAVING count(*) > 1)",
}


def snapshot(stack: Stack, sql: str) -> Any:
    con = duckdb.connect(str(stack.settings.storage.snapshot_path), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def counts(stack: Stack) -> dict[str, int]:
    return {name: snapshot(stack, sql) for name, sql in COUNTS_SQL.items()}


def duplicates(stack: Stack) -> dict[str, int]:
    return {name: snapshot(stack, sql) for name, sql in DUPLICATES_SQL.items()}


def supervised_until(stack: Stack, what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    """Keep the supervisor running (as the demo's loop does) until ``check()`` is truthy."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        stack.supervise()
        try:
            last = check()
        except (httpx.HTTPError, duckdb.Error, ValueError, KeyError, TypeError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"{what} not reached within {timeout_s:.0f} s (last: {last!r}; logs in {stack.run_dir})")


def submit(stack: Stack, name: str) -> str | None:
    """The workload id once accepted; None on a 503 (the client retries with the same Idempotency-Key)."""
    body = {"name": name, "workload_type": "inference", "image": "ghcr.io/x/y:1", "vram_mb": 8000,
            "expected_hours": 0.5}  # fmt: skip
    headers = {**stack.api_headers(), "Idempotency-Key": f"faults-{name}"}
    response = httpx.post(f"{stack.api_url()}/api/v1/workloads", json=body, headers=headers, timeout=15)
    if response.status_code == 503:
        print(f"{name}: 503 {response.text}")
        return None
    assert response.status_code == 202, response.text
    return response.json()["workload_id"]


def decided(stack: Stack | Any, workload_id: str) -> bool:
    """The workload has left ``submitted`` (routed, queued or rejected: the router saw it)."""
    response = httpx.get(f"{stack.api_url()}/api/v1/workloads/{workload_id}", headers=stack.api_headers(), timeout=5)
    return response.status_code == 200 and response.json()["status"] not in ("submitted",)


def pid_of(stack: Stack, name: str) -> int:
    if name == "broker":
        assert stack.broker is not None and stack.broker.process is not None
        return stack.broker.process.pid
    return next(proc.pid for n, proc in stack.children if n == name)


def workers_ready(stack: Stack) -> bool:
    return stack.log_text("worker").count("Worker]: Ready") >= 1 + sum(
        c.restarts for c in stack.managed if c.name == "worker"
    )


@pytest.fixture(scope="module")
def flowing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A supervised system with workloads flowing fast (a simulated hour per second)."""
    run_dir: Path = tmp_path_factory.mktemp("faults")
    env = {
        "TOOGREEN_BROKER__EMBEDDED_PORT": str(free_port()),
        "TOOGREEN_API__PORT": str(free_port()),
        "TOOGREEN_STORAGE__DUCKDB_PATH": str(run_dir / "toogreen.duckdb"),
        "TOOGREEN_STORAGE__SNAPSHOT_PATH": str(run_dir / "snapshot.duckdb"),
        "TOOGREEN_STORAGE__SNAPSHOT_INTERVAL_S": "1",
        "TOOGREEN_SETTLEMENT__SIGNING_KEY_PATH": str(run_dir / "signing.pem"),
        "TOOGREEN_SETTLEMENT__SOLANA_RPC_URL": "litesvm",
        "TOOGREEN_SETTLEMENT__SOLANA_PAYER_KEY_PATH": str(run_dir / "payer.json"),
        "TOOGREEN_DEMO__GRID_INTERVAL_S": "1",
        "TOOGREEN_DEMO__TELEMETRY_INTERVAL_S": "1",
        "TOOGREEN_DEMO__WORKLOAD_INTERVAL_S": "0.5",
        "TOOGREEN_DEMO__WORKLOAD_HOURS_PER_SECOND": "1.0",
        "TOOGREEN_SUPERVISION__FLEET_STATE_PATH": str(run_dir / "fleet-state.json"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
    stack = Stack(settings, run_dir, env=env, supervised=True)
    try:
        start_core(stack)
        stack.spawn("fleet", "produce", "telemetry")
        stack.spawn("grid", "produce", "grid")
        stack.spawn("workloads", "produce", "workloads")
        supervised_until(stack, "receipts and bills", lambda: counts(stack)["bills"] >= 3, 90)
        yield stack
    finally:
        stack.stop()


def test_kill_9_of_each_process_loses_nothing_and_duplicates_nothing(flowing: Stack, capsys: pytest.CaptureFixture):
    stack = flowing
    report = [f"{'after':22s} " + " ".join(f"{k:>12s}" for k in COUNTS_SQL)]

    def line(label: str, now: dict[str, int] | None = None) -> dict[str, int]:
        now = now or counts(stack)
        report.append(f"{label:22s} " + " ".join(f"{now[k]:12d}" for k in COUNTS_SQL))
        return now

    line("start")
    for victim in VICTIMS:
        before = counts(stack)
        os.kill(pid_of(stack, victim), signal.SIGKILL)
        killed_at = time.monotonic()
        supervised_until(stack, f"{victim} restarted", lambda v=victim: _restarted(stack, v), 30)
        supervised_until(stack, "worker ready", lambda: workers_ready(stack), 60)
        wid = submit_when_up(stack, f"after-{victim}")
        supervised_until(stack, f"a submission routed after kill -9 of {victim}", lambda w=wid: decided(stack, w), 60)
        # the pipeline goes on: more work completes after the kill than before it
        supervised_until(stack, "more completions", lambda b=before: counts(stack)["completed"] > b["completed"], 60)
        line(f"kill -9 {victim} ({time.monotonic() - killed_at:.0f} s)")
    stack.retire("workloads")
    # stopped producing: let what runs finish, then nothing may be left active
    # (a submission still in a killed producer's buffer may arrive late: the drained state is one snapshot)
    drained = supervised_until(stack, "no workload stuck active", lambda: (c := counts(stack))["active"] == 0 and c, 90)
    final = line("drained", drained)
    dup = duplicates(stack)
    report.append("duplicated per workload: " + ", ".join(f"{k} {v}" for k, v in dup.items()))
    with capsys.disabled():
        print("\n" + "\n".join(report))
    assert dup == {"receipts": 0, "bills": 0, "payouts": 0, "decisions": 0}
    assert final["active"] == 0
    assert final["lifetimes"] == 2  # the first broker's log, and the one after its kill -9
    assert (stack.run_dir / "supervisor.log").read_text().count("restarted") >= len(VICTIMS)


def _restarted(stack: Stack, victim: str) -> bool:
    if victim == "broker":
        return stack.broker_restarts >= 1 and stack.broker is not None and stack.broker.alive()
    child = next(c for c in stack.managed if c.name == victim)
    return child.restarts >= 1 and child.proc.poll() is None


def submit_when_up(stack: Stack, name: str) -> str:
    """Submit once the API answers again (it may be the process just killed)."""
    result: list[str] = []

    def attempt() -> bool:
        wid = submit(stack, name)
        if wid is not None:
            result.append(wid)
        return wid is not None

    supervised_until(stack, "API accepting submissions", attempt, 60)
    return result[-1]
