"""What the peer jobs share: the window arithmetic and the per-node state, in plain Python (each framework is
measured on its own windowing and state, with the same fold in each)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

TUMBLING_MS = 300_000
HOPPING_MS = 3_600_000
HOP_STEP_MS = 300_000
GRID, TELEMETRY = "grid.readings", "node.telemetry"


def empty() -> dict[str, float]:
    return {"count": 0, "carbon": 0.0, "renewable": 0.0, "price": 0.0}


def fold(acc: dict[str, float], reading: dict[str, Any]) -> dict[str, float]:
    return {
        "count": acc["count"] + 1,
        "carbon": acc["carbon"] + reading["carbon_intensity_gco2_per_kwh"],
        "renewable": acc["renewable"] + (reading["renewable_pct"] or 0.0),
        "price": acc["price"] + (reading["price"] or 0.0),
    }


def merge(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a[k] + b[k] for k in a}


def window_record(zone: str, kind: str, start_ms: int, acc: dict[str, float]) -> bytes:
    n = acc["count"] or 1
    return json.dumps({
        "zone": zone, "kind": kind, "start_ms": start_ms, "count": acc["count"], "carbon_mean": acc["carbon"] / n,
        "renewable_mean": acc["renewable"] / n, "price_mean": acc["price"] / n,
    }).encode()  # fmt: skip


def node_step(state: dict[str, Any] | None, sample: dict[str, Any]) -> dict[str, Any]:
    """The node's latest sample and the joules drawn since the one before (a counter reset counts as zero)."""
    drawn = 0.0 if state is None else max(0.0, sample["energy_j"] - state["energy_j"])
    total = drawn + (0.0 if state is None else state["drawn_j"])
    return {"ts_ms": sample["ts_ms"], "energy_j": sample["energy_j"], "power_w": sample["power_w"], "drawn_j": total}


@dataclass
class Progress:
    """Counts events and times the first and the last one; says when all have been seen."""

    expected: int
    seen: int = 0
    first_s: float = 0.0
    last_s: float = 0.0
    windows_written: int = 0
    zones: set[str] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)

    def tick(self) -> bool:
        now = time.perf_counter()
        if self.seen == 0:
            self.first_s = now
        self.seen += 1
        self.last_s = now
        return self.seen >= self.expected

    def report(self, framework: str) -> str:
        elapsed = max(self.last_s - self.first_s, 1e-9)
        return json.dumps({
            "framework": framework, "events": self.seen, "seconds": elapsed,
            "events_per_s": (self.seen - 1) / elapsed if self.seen > 1 else 0.0,
            "zones": len(self.zones), "nodes": len(self.nodes), "windows_written": self.windows_written,
        })  # fmt: skip
