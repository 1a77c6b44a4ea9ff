"""API latency under 50 concurrent clients while the pipeline writes: the dashboard's reads, answered per
request as before (answer cache off) and from the read models and the answer cache, side by side on fresh
stacks in one run, each signed in as admin (the dashboard's widest view)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from bench.bench_pipeline import _start
from bench.common import Table, percentile

ENDPOINTS = ("/api/v1/dashboard", "/api/v1/zones", "/api/v1/nodes", "/api/v1/workloads?limit=50")


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
            results: dict[str, list[float]] = {e: [] for e in ENDPOINTS}

            async def client(k: int) -> None:
                async with httpx.AsyncClient(base_url=stack.api_url(), headers=stack.api_headers(), timeout=30) as h:
                    end = time.monotonic() + seconds
                    j = k
                    while time.monotonic() < end:
                        path = ENDPOINTS[j % len(ENDPOINTS)]
                        t0 = time.perf_counter()
                        r = await h.get(path)
                        r.raise_for_status()
                        results[path].append(1000 * (time.perf_counter() - t0))
                        j += 1

            async def main() -> None:
                await asyncio.gather(*(client(k) for k in range(clients)))

            asyncio.run(main())
            return results
        finally:
            stack.stop()


def api_latency(clients: int = 50, seconds: float = 10.0) -> Table:
    table = Table(
        "API latency under 50 concurrent clients while the pipeline writes",
        f"{clients} concurrent clients (one process, httpx) for {seconds:.0f} s against a running stack (grid, "
        "fleet, a workload a second flowing), each setup on a fresh stack; 'per request' is the answer cache off "
        "(TOOGREEN_API__ANSWER_CACHE_MAX_AGE_S=0), 'read models' the default",
        ["endpoint", "setup", "requests", "p50 ms", "p99 ms"],
    )
    runs = {
        "per request": _measure({"TOOGREEN_API__ANSWER_CACHE_MAX_AGE_S": "0"}, clients, seconds),
        "read models": _measure({}, clients, seconds),
    }
    worst = {}
    for path in ENDPOINTS:
        for setup, results in runs.items():
            values = results[path]
            p99 = percentile(values, 99)
            worst[setup] = max(worst.get(setup, 0.0), p99)
            table.rows.append([path, setup, f"{len(values):,}", f"{percentile(values, 50):,.0f}", f"{p99:,.0f}"])
    table.notes.append(
        f"Worst p99: {worst['per request']:,.0f} ms per request, {worst['read models']:,.0f} ms with the read "
        f"models ({worst['per request'] / max(worst['read models'], 1e-9):.1f}x). Target p99 ≤ 50 ms: "
        + ("met." if worst["read models"] <= 50 else "not met on this machine.")
    )
    return table


if __name__ == "__main__":
    print(api_latency().markdown())
