"""API latency under 50 concurrent clients while the pipeline writes: the dashboard's reads (what its pages poll),
side by side in one run on fresh stacks, each signed in as admin (the dashboard's widest view):

- ``per request``: computed from DuckDB on every request (read models and answer cache off);
- ``answer cache (before)``: the API as it was before the read models: the answer cache, invalidated by every
  committed write and recomputed on the request that comes next, on uvicorn's asyncio loop and h11 parser;
- ``read models``: the default: encoded once per committed write, served as bytes (uvloop, httptools).

The load generator is light on purpose, since it shares the machine with what it measures: one process, one
asyncio (uvloop) event loop, one keep-alive HTTP/1.1 connection per client, requests written as prepared bytes and
answers read by their Content-Length (no HTTP client library). Two load patterns on each stack, one after the
other: closed loop (each client asks again as soon as it has its answer, no think time: the hardest case for 50
clients, and one that saturates the two cores by itself) and polling (each client asks for the six reads every
2 s, as an open dashboard does)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

from bench.bench_pipeline import _start, free_port
from bench.common import Table, percentile

ENDPOINTS = ("/api/v1/dashboard", "/api/v1/zones", "/api/v1/nodes", "/api/v1/workloads?limit=100",
             "/api/v1/billing?limit=1000", "/api/v1/sustainability")  # fmt: skip
WARMUP_S = 3.0
SETUPS: dict[str, dict[str, str]] = {
    "per request": {"TOOGREEN_READ_MODELS__ENABLED": "false", "TOOGREEN_API__ANSWER_CACHE_MAX_AGE_S": "0"},
    "answer cache (before)": {
        "TOOGREEN_READ_MODELS__ENABLED": "false",
        "TOOGREEN_API__UVICORN_LOOP": "asyncio",
        "TOOGREEN_API__UVICORN_HTTP": "h11",
    },
    "read models": {},
}
TARGET_P99_MS = 50.0
POLL_S = 2.0  # the dashboard's poll (api/dashboard/static/js/app.js: POLL_MS)
PATTERNS: dict[str, float | None] = {"closed loop": None, f"polling every {POLL_S:.0f} s": POLL_S}


class _Connection:
    """One keep-alive HTTP/1.1 connection: a prepared GET written, the answer read by its Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        await self.reader.readexactly(length)
        return status


def _load(
    url: str, headers: dict[str, str], clients: int, seconds: float, period_s: float | None
) -> dict[str, list[float]]:
    """``clients`` concurrent clients, each asking for the dashboard's reads in turn for ``seconds``, after
    ``WARMUP_S`` of the same load not counted (connections opened, first answers built). ``period_s`` None: each
    client asks again as soon as it has its answer (closed loop); else each asks for the six reads one after
    another every ``period_s`` (the dashboard's poll), the clients spread evenly over the period."""
    host, port = url.removeprefix("http://").split(":")
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = {e: f"GET {e} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode() for e in ENDPOINTS}
    results: dict[str, list[float]] = {e: [] for e in ENDPOINTS}

    async def client(k: int) -> None:
        connection = _Connection(*await asyncio.open_connection(host, int(port)))
        try:
            counted_from = time.monotonic() + WARMUP_S
            end = counted_from + seconds
            next_round = time.monotonic() + (period_s or 0) * k / clients
            j = k
            while (now := time.monotonic()) < end:
                if period_s is not None and j % len(ENDPOINTS) == k % len(ENDPOINTS):
                    await asyncio.sleep(max(0.0, next_round - now))
                    next_round += period_s
                    now = time.monotonic()
                path = ENDPOINTS[j % len(ENDPOINTS)]
                t0 = time.perf_counter()
                status = await connection.get(requests[path])
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}")
                if now >= counted_from:
                    results[path].append(1000 * (time.perf_counter() - t0))
                j += 1
        finally:
            connection.writer.close()

    async def main() -> None:
        await asyncio.gather(*(client(k) for k in range(clients)))

    uvloop.run(main())
    return results


Run = tuple[dict[str, list[float]], str]  # latencies (ms) by endpoint, the machine's load average around them


def _loaded(url: str, headers: dict[str, str], clients: int, seconds: float) -> dict[str, Run]:
    """Both load patterns, one after the other, each with the machine's 1-minute load average before and after
    it (the machine is shared)."""
    runs = {}
    for pattern, period_s in PATTERNS.items():
        before = os.getloadavg()[0]
        results = _load(url, headers, clients, seconds, period_s)
        runs[pattern] = (results, f"{before:.1f} before, {os.getloadavg()[0]:.1f} after")
    return runs


def _measure(env: dict[str, str], clients: int, seconds: float) -> dict[str, Run]:
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
            return _loaded(stack.api_url(), stack.api_headers(), clients, seconds)
        finally:
            stack.stop()


def _measure_alone(env: dict[str, str], clients: int, seconds: float) -> dict[str, Run]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.api_alone_server", str(port), tmp], env={**os.environ, **env}
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            return _loaded(url, {"Authorization": "Bearer demo-admin-token"}, clients, seconds)
        finally:
            server.terminate()
            server.wait(timeout=10)


def _table(table: Table, runs: dict[str, dict[str, Run]], seconds: float) -> Table:
    worst: dict[tuple[str, str], float] = {}
    for pattern in PATTERNS:
        for path in ENDPOINTS:
            for setup, by_pattern in runs.items():
                values = by_pattern[pattern][0][path]
                p99 = percentile(values, 99)
                worst[setup, pattern] = max(worst.get((setup, pattern), 0.0), p99)
                table.rows.append(
                    [path, pattern, setup, f"{len(values):,}", f"{percentile(values, 50):,.1f}", f"{p99:,.1f}"]
                )
    for pattern in PATTERNS:
        for setup, by_pattern in runs.items():
            results, load = by_pattern[pattern]
            rate = sum(len(v) for v in results.values()) / seconds
            table.notes.append(f"{setup}, {pattern}: {rate:,.0f} requests/s in all; 1-min load average {load}.")
    for pattern in PATTERNS:
        before, after = worst["answer cache (before)", pattern], worst["read models", pattern]
        table.notes.append(
            f"{pattern.capitalize()}, worst p99: {worst['per request', pattern]:,.1f} ms per request, {before:,.1f} "
            f"ms with the answer cache (before), {after:,.1f} ms with the read models ({before / max(after, 1e-9):.1f}x"
            f" lower than before). Target p99 ≤ {TARGET_P99_MS:.0f} ms: "
            + ("met." if after <= TARGET_P99_MS else "not met in this run.")
        )
    return table


HEADERS = ["endpoint", "clients", "setup", "requests", "p50 ms", "p99 ms"]
CLIENTS = (
    "{clients} concurrent clients (bench/bench_api.py's raw keep-alive client, one process), two patterns one "
    "after the other: closed loop (each asks again as soon as it has its answer) and polling (each asks for the "
    "six reads every 2 s, as the dashboard polls), each for {seconds:.0f} s after {warmup:.0f} s not counted"
)


def api_alone(clients: int = 50, seconds: float = 10.0) -> Table:
    """The API's own part: the API process alone, a batch committed every 0.5 s, the clients in this process."""
    table = Table(
        "API latency under 50 concurrent clients, the API alone with a batch landing every 0.5 s",
        CLIENTS.format(clients=clients, seconds=seconds, warmup=WARMUP_S) + ", against the API process alone "
        "(bench/api_alone_server.py: 2 zones, the 20-node simulated fleet, a writer thread committing a grid "
        "reading every 0.5 s as the sink's batches would); the setups are bench/bench_api.py's SETUPS",
        HEADERS,
    )
    runs = {setup: _measure_alone(env, clients, seconds) for setup, env in SETUPS.items()}
    return _table(table, runs, seconds)


def api_latency(clients: int = 50, seconds: float = 10.0) -> Table:
    table = Table(
        "API latency under 50 concurrent clients while the pipeline writes",
        CLIENTS.format(clients=clients, seconds=seconds, warmup=WARMUP_S) + ", against a running stack (broker, "
        "worker, API with its DuckDB sink; grid, fleet and a workload a second flowing), each setup on a fresh "
        "stack; the setups are bench/bench_api.py's SETUPS",
        HEADERS,
    )
    runs = {setup: _measure(env, clients, seconds) for setup, env in SETUPS.items()}
    return _table(table, runs, seconds)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    if which in ("alone", "both"):
        print(api_alone().markdown())
    if which in ("stack", "both"):
        print(api_latency().markdown())
