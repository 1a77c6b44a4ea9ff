"""Inputs of the evaluation: grid series per zone, a fleet, a workload trace (files, or generated from a seed)."""

from __future__ import annotations

import bisect
import csv
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from toogreen.domain.intensity import IntensityPoint, parse_time, read_intensity_csv
from toogreen.domain.kinds import NodeKind

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class FleetNode:
    node_id: str
    zone: str
    node_type: NodeKind
    gpu_model: str
    vram_mb: int
    power_w: float
    pue: float


@dataclass(frozen=True)
class TraceWorkload:
    workload_id: str
    submitted_ms: int
    duration_h: float
    deadline_ms: int
    vram_mb: int
    priority: str
    green_only: bool


class GridSeries:
    """A zone's readings as a step function of time (each value holds until the next)."""

    def __init__(self, zone: str, points: list[IntensityPoint]) -> None:
        if not points:
            raise ValueError(f"no readings for zone {zone}")
        self.zone = zone
        self.points = points
        self._times = [p.ts_ms for p in points]

    def at(self, ts_ms: int) -> IntensityPoint:
        i = bisect.bisect_right(self._times, ts_ms) - 1
        return self.points[max(i, 0)]

    @property
    def step_ms(self) -> int:
        gaps = sorted(b - a for a, b in zip(self._times, self._times[1:], strict=False) if b > a)
        return gaps[len(gaps) // 2] if gaps else HOUR_MS


def load_grid(specs: list[str]) -> dict[str, GridSeries]:
    """``ZONE=PATH`` items: ``Time, Carbon Intensity`` CSVs (optional ``Price``, ``Renewable Percentage``)."""
    out = {}
    for item in specs:
        zone, _, path = item.partition("=")
        if not path:
            raise ValueError(f"--grid takes ZONE=PATH, got {item!r}")
        out[zone] = GridSeries(zone, read_intensity_csv(Path(path)))
    return out


GPU_TYPES = {"H100": (81559, 700.0), "A100": (81920, 400.0), "RTX 4090": (24564, 450.0)}


def generated_fleet(zones: list[str], seed: int) -> list[FleetNode]:
    """Per zone: 2 data-centre H100, 2 data-centre A100, 1 recycler A100, 2 gamer RTX 4090 (seeded PUEs)."""
    rng = random.Random(seed)
    nodes = []
    for zone in zones:
        layout = (
            [(NodeKind.DATACENTER, "H100")] * 2
            + [(NodeKind.DATACENTER, "A100")] * 2
            + [(NodeKind.RECYCLER, "A100"), (NodeKind.GAMER, "RTX 4090"), (NodeKind.GAMER, "RTX 4090")]
        )
        for i, (kind, gpu) in enumerate(layout):
            vram, power = GPU_TYPES[gpu]
            pue = (
                1.0
                if kind == NodeKind.GAMER
                else round(rng.uniform(1.05, 1.1) if kind == NodeKind.RECYCLER else rng.uniform(1.15, 1.4), 2)
            )
            nodes.append(
                FleetNode(f"{zone.lower()}-{kind[:2]}-{gpu.split()[-1].lower()}-{i}", zone, kind, gpu, vram, power, pue)
            )
    return nodes


def _node_kind(value: str, node_id: str) -> NodeKind:
    try:
        return NodeKind(value)
    except ValueError:
        known = ", ".join(NodeKind)
        raise ValueError(f"node {node_id}: unknown node_type {value!r} (one of {known})") from None


def read_fleet(path: Path) -> list[FleetNode]:
    with path.open(newline="") as fh:
        return [
            FleetNode(
                r["node_id"],
                r["zone"],
                _node_kind(r["node_type"], r["node_id"]),
                r["gpu_model"],
                int(r["vram_mb"]),
                float(r["power_w"]),
                float(r["pue"]),
            )
            for r in csv.DictReader(fh)
        ]


def generated_workloads(start_ms: int, days: float, per_day: float, seed: int) -> list[TraceWorkload]:
    """Poisson arrivals; durations 0.5-12 h; deadlines 1.5-4x the duration after submission."""
    rng = random.Random(seed)
    out: list[TraceWorkload] = []
    t, n = start_ms, 0
    end = start_ms + int(days * 24 * HOUR_MS)
    while True:
        t += int(rng.expovariate(per_day / (24 * HOUR_MS)))
        if t >= end:
            return out
        n += 1
        duration = round(rng.uniform(0.5, 12.0), 2)
        out.append(
            TraceWorkload(
                f"ev-{n:05d}",
                t,
                duration,
                t + int(duration * rng.uniform(1.5, 4.0) * HOUR_MS),
                rng.choice((16384, 24576, 40960, 65536, 78000)),
                rng.choice(("urgent", "normal", "async")),
                rng.random() < 0.3,
            )
        )


def read_workloads(path: Path) -> list[TraceWorkload]:
    with path.open(newline="") as fh:
        return [
            TraceWorkload(
                workload_id=r["workload_id"],
                submitted_ms=parse_time(r["submitted_at"]),
                duration_h=float(r["duration_h"]),
                deadline_ms=parse_time(r["deadline_at"]),
                vram_mb=int(r["vram_mb"]),
                priority=r.get("priority") or "normal",
                green_only=r.get("green_only", "").lower() in ("1", "true", "yes"),
            )
            for r in csv.DictReader(fh)
        ]


def day_start(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)
