"""``make bench``: every benchmark, then BENCHMARKS.md (tables, the machine, the settings, medians, ratios)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import traceback
from pathlib import Path

from bench import (
    bench_api,
    bench_deferral,
    bench_duckdb,
    bench_evaluation,
    bench_forecast,
    bench_kafka,
    bench_node_agent,
    bench_pipeline,
    bench_records,
    bench_rescoring,
)
from bench.common import Table, machine

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    results_dir = ROOT / "bench-results"
    results_dir.mkdir(exist_ok=True)
    q = args.quick
    steps = [
        ("evaluation", lambda: bench_evaluation.run(results_dir)),
        ("shifting in time", lambda: bench_deferral.run(results_dir)),
        ("forecast error", lambda: bench_forecast.run(results_dir, every_h=72 if q else 12)),
        ("duckdb", lambda: bench_duckdb.run(runs=1 if q else 3, batch=20_000 if q else 100_000)),
        ("rescoring", lambda: bench_rescoring.run(runs=1 if q else 5)),
        ("records", lambda: bench_records.run(runs=1 if q else 5)),
        ("throughput", lambda: bench_pipeline.throughput(events=12_000 if q else 150_000)),
        ("kafka ingest", lambda: bench_kafka.ingest_throughput(events=12_000 if q else 150_000)),
        ("routing latency", lambda: bench_pipeline.routing_latency(seconds=4 if q else 8)),
        ("api alone", lambda: bench_api.api_alone(seconds=5 if q else 10)),
        ("api", lambda: bench_api.api_latency(seconds=5 if q else 10)),
        ("memory", lambda: bench_pipeline.worker_memory(*((2_000, 10_000) if q else (10_000, 100_000)))),
        ("node agent moves", lambda: bench_node_agent.run(runs=1 if q else 3)),
    ]
    tables: list[Table] = []
    failed = []
    for name, step in steps:
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        try:
            tables.append(step())
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine()}.",
        "Every ratio compares numbers measured side by side in the same run.",
        "",
        *[t.markdown() for t in tables],
    ]
    if failed:
        lines += ["## Benchmarks that failed in this run", "", *[f"- {f}" for f in failed], ""]
    args.out.write_text("\n".join(lines))
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
