"""Rescoring scale: a zone-window update re-scoring N nodes (the router's ``route``) and finding the running
workloads it affects (``workloads_to_rescore``), for N = 1 k / 10 k / 100 k."""

from __future__ import annotations

import random
import time
from dataclasses import replace

from bench.common import Table, median_of, timed
from toogreen.domain.fleet import Fleet
from toogreen.domain.rerouting import workloads_to_rescore
from toogreen.domain.scoring import route
from toogreen.domain.views import NodeView, WorkloadSpec, ZoneView
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


def run(runs: int = 5) -> Table:
    settings = Settings()
    work = WorkloadSpec("w", vram_mb=20_000, expected_hours=4.0)
    table = Table(
        "Rescoring scale: one workload re-scored against N nodes",
        f"pure domain code on one core, medians of {runs} runs; half the nodes busy; the decision reports "
        f"{settings.scoring.decision_alternatives} + {settings.scoring.decision_alternatives} alternatives and "
        "counts the rest",
        ["nodes", "route() on the kept fleet, ms", "µs per node", "fleet built from the node list first, ms",
         "kept vs built", "one node's update, µs", "affected-workload scan ms (N running)"],
    )  # fmt: skip
    previous = None
    for n in (1_000, 10_000, 100_000):
        nodes, zones = fleet(n)
        kept = Fleet.of(nodes)

        def decide(over: Fleet | list[NodeView], zones: dict[str, ZoneView] = zones) -> object:
            return route(work, over, zones, NOW, settings.scoring, settings.pricing, migration=settings.migration,
                         keep=settings.scoring.decision_alternatives)  # fmt: skip

        ms, _ = median_of(runs, lambda kept=kept, decide=decide: 1000 * timed(lambda: decide(kept)))
        built_ms, _ = median_of(runs, lambda nodes=nodes, decide=decide: 1000 * timed(lambda: decide(nodes)))
        changed = [replace(v, util_pct=v.util_pct / 2) for v in nodes[:1000]]
        t0 = time.perf_counter()
        for v in changed:
            kept.upsert(v)
        update_us = 1e6 * (time.perf_counter() - t0) / len(changed)
        running = {
            f"w{i}": {"node_id": f"n{i:06d}", "zone": nodes[i].zone, "carbon_gco2_per_kwh": 300.0, "last_rescore_ms": 0}
            for i in range(n)
        }
        t0 = time.perf_counter()
        workloads_to_rescore(zones["FR"], running, NOW, settings.migration)
        scan_ms = 1000 * (time.perf_counter() - t0)
        table.rows.append([f"{n:,}", f"{ms:,.2f}", f"{1000 * ms / n:.2f}", f"{built_ms:,.1f}",
                           f"{built_ms / ms:.0f}x faster", f"{update_us:.1f}", f"{scan_ms:,.1f}"])  # fmt: skip
        if previous:
            table.notes.append(
                f"{n:,} vs {previous[0]:,} nodes: {ms / previous[1]:.1f}x the time (linear would be 10x)."
            )
        previous = (n, ms)
    table.notes.append(
        "The worker keeps its fleet as numpy columns and updates only the nodes that changed; route() judges every "
        "node with array operations and builds Python objects only for the alternatives it reports."
    )
    table.notes.append("Target: 100 k nodes in ≤ 50 ms: " + ("met." if previous and previous[1] <= 50 else "not met."))
    return table
