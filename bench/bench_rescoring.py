"""Rescoring scale: a zone-window update re-scoring N nodes (the router's ``route``) and finding the running
workloads it affects (``workloads_to_rescore``), for N = 1 k / 10 k / 100 k."""

from __future__ import annotations

import random
import time

from bench.common import Table, median_of, timed
from toogreen.domain.rerouting import workloads_to_rescore
from toogreen.domain.scoring import NodeView, WorkloadSpec, ZoneView, route
from toogreen.domain.zones import ZONES
from toogreen.settings import Settings

NOW = 1_800_000_000_000


def fleet(n: int, seed: int = 1) -> tuple[list[NodeView], dict[str, ZoneView]]:
    rng = random.Random(seed)
    zones = {
        z: ZoneView(z, rng.uniform(30, 500), rng.uniform(10, 90), 50.0, rng.random() < 0.2, 0.5, NOW, NOW)
        for z in ZONES
    }
    kinds = [
        ("datacenter", "H100", 81920),
        ("datacenter", "A100", 81920),
        ("recycler", "A100", 81920),
        ("gamer", "RTX 4090", 24564),
    ]
    nodes = []
    for i in range(n):
        kind, gpu, vram = rng.choice(kinds)
        busy = rng.random() < 0.5
        nodes.append(
            NodeView(
                f"n{i:06d}",
                kind,
                gpu,
                rng.choice(list(ZONES)),
                rng.uniform(1.0, 1.5),
                vram,
                0 if busy else vram,
                rng.uniform(0, 100),
                "healthy",
                NOW,
                None,
                gpu != "RTX 4090",
                400.0,
                int(busy),
                (),
            )
        )
    return nodes, zones


def run(runs: int = 3) -> Table:
    settings = Settings()
    work = WorkloadSpec("w", vram_mb=20_000, expected_hours=4.0)
    table = Table(
        "Rescoring scale: one workload re-scored against N nodes",
        f"pure domain code on one core, medians of {runs} runs (100 k: 1 run); a third of the nodes busy",
        ["nodes", "route() ms (median)", "µs per node", "affected-workload scan ms (N running)"],
    )
    previous = None
    for n in (1_000, 10_000, 100_000):
        nodes, zones = fleet(n)
        reps = 1 if n >= 100_000 else runs
        ms, _ = median_of(
            reps,
            lambda nodes=nodes, zones=zones: (
                1000
                * timed(
                    lambda: route(
                        work, nodes, zones, NOW, settings.scoring, settings.pricing, migration=settings.migration
                    )
                )
            ),
        )
        running = {
            f"w{i}": {"node_id": f"n{i:06d}", "zone": nodes[i].zone, "carbon_gco2_per_kwh": 300.0, "last_rescore_ms": 0}
            for i in range(n)
        }
        t0 = time.perf_counter()
        workloads_to_rescore(zones["FR"], running, NOW, settings.migration)
        scan_ms = 1000 * (time.perf_counter() - t0)
        table.rows.append([f"{n:,}", f"{ms:,.1f}", f"{1000 * ms / n:.1f}", f"{scan_ms:,.1f}"])
        if previous:
            table.notes.append(
                f"{n:,} vs {previous[0]:,} nodes: {ms / previous[1]:.1f}x the time (linear would be 10x)."
            )
        previous = (n, ms)
    table.notes.append(
        "Target: 100 k nodes in ≤ 50 ms; "
        + (
            "met."
            if previous and previous[1] <= 50
            else "not met: route() is plain Python over every node (see the closing note)."
        )
    )
    return table
