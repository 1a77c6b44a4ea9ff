"""API latency under 50 concurrent clients while the pipeline writes: the dashboard's reads, answered per
request as before (answer cache off) and from the read models and the answer cache, side by side on fresh
stacks in one run, each signed in as admin (the dashboard's widest view)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.bench_pipeline import _start, free_port
from bench.common import Table, percentile

ENDPOINTS = ("/api/v1/dashboard", "/api/v1/zones", "/api/v1/nodes", "/api/v1/workloads?limit=50")


WARMUP_S = 3.0


def _load(url: str, headers: dict[str, str], clients: int, seconds: float) -> dict[str, list[float]]:
    """``clients`` concurrent clients, each asking for the dashboard's reads in turn for ``seconds``, after
    ``WARMUP_S`` of the same load not counted (connections opened, first answers computed)."""
    results: dict[str, list[float]] = {e: [] for e in ENDPOINTS}

    async def client(k: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            counted_from = time.monotonic() + WARMUP_S
            end = counted_from + seconds
            j = k
            while (now := time.monotonic()) < end:
                path = ENDPOINTS[j % len(ENDPOINTS)]
                t0 = time.perf_counter()
                r = await http.get(path)
                r.raise_for_status()
                if now >= counted_from:
                    results[path].append(1000 * (time.perf_counter() - t0))
                j += 1

    async def main() -> None:
        await asyncio.gather(*(client(k) for k in range(clients)))

    asyncio.run(main())
    return results


def _measure(env: dict[str, str], clients: int, seconds: float) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp_name:
        stack = _start({"TOOGREEN_DEMO__WORKLOAD_INTERVAL_S": "1", **env}, Path(tmp_name))
        try:
            for name, args in (
                ("grid", ("produce", "grid")),
                ("fleet", ("produce", "telemetry")),
                ("workloads", ("produce", "workloads")),
            ):
                stack.spawn(name, *args)
            time.sleep(15)
            return _load(stack.api_url(), stack.api_headers(), clients, seconds)
        finally:
            stack.stop()


def _measure_alone(max_age_s: str, clients: int, seconds: float) -> dict[str, list[float]]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TOOGREEN_API__ANSWER_CACHE_MAX_AGE_S": max_age_s}
        server = subprocess.Popen([sys.executable, "-m", "bench.api_alone_server", str(port), tmp], env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            return _load(url, {"Authorization": "Bearer demo-admin-token"}, clients, seconds)
        finally:
            server.terminate()
            server.wait(timeout=10)


def _rows(table: Table, runs: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    worst: dict[str, float] = {}
    for path in ENDPOINTS:
        for setup, results in runs.items():
            values = results[path]
            p99 = percentile(values, 99)
            worst[setup] = max(worst.get(setup, 0.0), p99)
            table.rows.append([path, setup, f"{len(values):,}", f"{percentile(values, 50):,.0f}", f"{p99:,.0f}"])
    return worst


def api_alone(clients: int = 50, seconds: float = 10.0) -> Table:
    """The API's own part: the API process alone, a batch committed every 0.5 s, the clients in this process."""
    table = Table(
        "API latency under 50 concurrent clients, the API alone with a batch landing every 0.5 s",
        f"{clients} concurrent clients for {seconds:.0f} s after {WARMUP_S:.0f} s not counted, against the API "
        "process alone (bench/api_alone_server.py: 2 zones, the 20-node simulated fleet, a writer thread "
        "committing a grid reading every 0.5 s as the sink's batches would); 'per request' is the answer cache "
        "off, 'read models' the default",
        ["endpoint", "setup", "requests", "p50 ms", "p99 ms"],
    )
    runs = {"per request": _measure_alone("0", clients, seconds), "read models": _measure_alone("1", clients, seconds)}
    worst = _rows(table, runs)
    table.notes.append(
        f"Worst p99: {worst['per request']:,.0f} ms per request, {worst['read models']:,.0f} ms with the read "
        f"models. Target p99 ≤ 50 ms: " + ("met." if worst["read models"] <= 50 else "not met on this machine.")
    )
    return table


def api_latency(clients: int = 50, seconds: float = 10.0) -> Table:
    table = Table(
        "API latency under 50 concurrent clients while the pipeline writes",
        f"{clients} concurrent clients (one process, httpx) for {seconds:.0f} s after {WARMUP_S:.0f} s not counted, "
        "against a running stack (grid, "
        "fleet, a workload a second flowing), each setup on a fresh stack; 'per request' is the answer cache off "
        "(TOOGREEN_API__ANSWER_CACHE_MAX_AGE_S=0), 'read models' the default",
        ["endpoint", "setup", "requests", "p50 ms", "p99 ms"],
    )
    runs = {
        "per request": _measure({"TOOGREEN_API__ANSWER_CACHE_MAX_AGE_S": "0"}, clients, seconds),
        "read models": _measure({}, clients, seconds),
    }
    worst = _rows(table, runs)
    table.notes.append(
        f"Worst p99: {worst['per request']:,.0f} ms per request, {worst['read models']:,.0f} ms with the read "
        f"models ({worst['per request'] / max(worst['read models'], 1e-9):.1f}x). Target p99 ≤ 50 ms: "
        + ("met." if worst["read models"] <= 50 else "not met on this machine.")
    )
    return table


if __name__ == "__main__":
    print(api_alone().markdown())
    print(api_latency().markdown())
