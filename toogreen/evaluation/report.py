"""Running every policy on one scenario, the JSON result, and the plot of intensity and where the work ran."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from toogreen.evaluation.inputs import HOUR_MS
from toogreen.evaluation.simulate import POLICIES, PolicyResult, Scenario, run_policy


def evaluate(
    scenario: Scenario, policies: tuple[str, ...] = POLICIES
) -> tuple[dict[str, Any], dict[str, PolicyResult]]:
    results, timings = {}, {}
    for name in policies:
        t0 = time.perf_counter()
        results[name] = run_policy(scenario, name)
        timings[name] = round(time.perf_counter() - t0, 3)
    report = {
        "scenario": {
            "zones": sorted(scenario.grid),
            "start_ms": scenario.start_ms,
            "end_ms": scenario.end_ms,
            "nodes": len(scenario.fleet),
            "workloads": len(scenario.workloads),
            "slot_minutes": scenario.slot_ms / 60_000,
            "seed": scenario.seed,
        },
        "policies": {name: r.summary() for name, r in results.items()},
        "seconds_to_compute": timings,
    }
    return report, results


def write_report(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


def plot(scenario: Scenario, result: PolicyResult, out: Path, title: str, forecast: bool = False) -> None:
    """Hourly intensity per zone (top; with ``forecast``, dashed, what the latest forecast issued before each hour
    said of it) and GPU-hours run per zone per hour by one policy (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = list(range(scenario.start_ms, scenario.end_ms, HOUR_MS))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    for zone, series in sorted(scenario.grid.items()):
        top.plot([(h - scenario.start_ms) / HOUR_MS for h in hours], [series.at(h).carbon_gco2_per_kwh for h in hours],
                 label=zone)  # fmt: skip
    if forecast:
        for zone in sorted(scenario.grid):
            said = []
            for h in hours:
                f = scenario.forecasts.latest_at(h).get(zone)
                p = f.at(h) if f else None
                said.append(p.mean_gco2_per_kwh if p else float("nan"))
            top.plot([(h - scenario.start_ms) / HOUR_MS for h in hours], said, linestyle="--", linewidth=0.8,
                     label=f"{zone} forecast")  # fmt: skip
    top.set_ylabel("gCO2eq/kWh")
    top.legend(loc="upper right")
    top.set_title(title)
    by_zone: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for zone, t, gpu_h in result.usage:
        by_zone[zone][(t - scenario.start_ms) // HOUR_MS] += gpu_h
    xs = list(range(len(hours)))
    base = [0.0] * len(xs)
    for zone in sorted(by_zone):
        ys = [by_zone[zone].get(x, 0.0) for x in xs]
        bottom.bar(xs, ys, bottom=base, width=1.0, label=zone)
        base = [a + b for a, b in zip(base, ys, strict=True)]
    bottom.set_ylabel("GPU-hours run per hour")
    bottom.set_xlabel("hours from start")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
