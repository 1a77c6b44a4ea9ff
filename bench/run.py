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
    parser.add_argument(
        "--only", default="", help="comma-separated step names (e.g. 'kafka ingest,api'): run those and replace "
        "their sections in --out, keeping the others as they were measured",
    )  # fmt: skip
    args = parser.parse_args()
    results_dir = ROOT / "bench-results"
    results_dir.mkdir(exist_ok=True)
    q = args.quick
    steps = [
        ("evaluation", lambda: bench_evaluation.run(results_dir)),
        ("shifting in time", lambda: bench_deferral.run(results_dir)),
        ("shifting in time over 9 traces", lambda: bench_deferral.traces(results_dir)),
        ("forecast error", lambda: bench_forecast.run(results_dir, every_h=72 if q else 12)),
        ("duckdb", lambda: bench_duckdb.run(runs=1 if q else 3, batch=20_000 if q else 100_000)),
        ("rescoring", lambda: bench_rescoring.run(runs=1 if q else 5)),
        ("records", lambda: bench_records.run(runs=1 if q else 5)),
        ("throughput", lambda: bench_pipeline.throughput(events=12_000 if q else 150_000)),
        ("kafka ingest", lambda: bench_kafka.ingest_throughput(events=12_000 if q else 150_000)),
        ("routing latency", lambda: bench_pipeline.routing_latency(seconds=4 if q else 8)),
        ("kafka routing latency", lambda: bench_pipeline.routing_latency_on_kafka(seconds=4 if q else 8)),
        ("api alone", lambda: bench_api.api_alone(seconds=5 if q else 10)),
        ("api", lambda: bench_api.api_latency(seconds=5 if q else 10)),
        ("memory", lambda: bench_pipeline.worker_memory(*((2_000, 10_000) if q else (10_000, 100_000)))),
        ("node agent moves", lambda: bench_node_agent.run(runs=1 if q else 3)),
    ]
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if unknown := only - {name for name, _ in steps}:
        parser.error(f"no such step: {', '.join(sorted(unknown))} (steps: {', '.join(n for n, _ in steps)})")
    if only:
        steps = [(name, step) for name, step in steps if name in only]
    tables: list[Table] = []
    failed = []
    for name, step in steps:
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        try:
            tables.append(step())
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    stamp = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    sections = [t.markdown() for t in tables]
    if only and args.out.exists():
        sections = merged_sections(args.out.read_text(), sections, stamp)
    written = f"Written by `make bench` on {stamp}"
    if only and args.out.exists():
        earlier = next((line for line in args.out.read_text().splitlines() if line.startswith("Written by")), "")
        first = earlier.split(". Machine")[0].split("; some sections")[0] or "Written by `make bench`"
        written = f"{first}; some sections measured again since"
    lines = [
        "# Benchmarks",
        "",
        f"{written}. Machine: {machine()}.",
        "Every ratio compares numbers measured side by side in the same run.",
        "",
        *sections,
    ]
    if failed:
        lines += ["## Benchmarks that failed in this run", "", *[f"- {f}" for f in failed], ""]
    args.out.write_text("\n".join(lines))
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


def merged_sections(previous: str, fresh: list[str], stamp: str) -> list[str]:
    """The sections of an earlier BENCHMARKS.md with those measured again replaced (matched by their heading) and
    marked with when; new ones are added at the end."""
    kept = ["## " + part for part in previous.split("\n## ")[1:]]
    heading = {section.splitlines()[0]: section for section in fresh}
    out = []
    for section in kept:
        title = section.splitlines()[0]
        if title in heading:
            out.append(_stamped(heading.pop(title), stamp))
        elif not title.startswith("## Benchmarks that failed"):
            out.append(section.rstrip("\n") + "\n")
    return out + [_stamped(section, stamp) for section in heading.values()]


def _stamped(section: str, stamp: str) -> str:
    title, rest = section.split("\n", 1)
    return f"{title}\n\nMeasured again on {stamp} (`python -m bench.run --only`).\n{rest}"


if __name__ == "__main__":
    sys.exit(main())
