"""Shared test builders: records and events as the tests need them, in one place (tests never import each other
or conftest helpers)."""

from __future__ import annotations

import time
from typing import Any

from toogreen.domain.records import EventKind, WorkloadEvent
from toogreen.domain.views import NodeView, ZoneView
from toogreen.submission import submission_event

NOW_MS = 1_800_000_000_000
REQUEST: dict[str, Any] = {"name": "job", "workload_type": "training", "image": "img", "vram_mb": 16_000,
                           "expected_hours": 1.0}  # fmt: skip


def now_ms() -> int:
    return int(time.time() * 1000)


def grid_reading(zone: str = "FR", ts_ms: int = 1_700_000_000_000, carbon: float = 60.0, **extra: Any) -> dict:
    """A ``grid.readings`` record (its wire form)."""
    return {
        "zone": zone,
        "ts_ms": ts_ms,
        "carbon_intensity_gco2_per_kwh": carbon,
        "carbon_intensity_kind": "lifecycle",
        "carbon_intensity_basis": "average",
        "renewable_pct": extra.pop("renewable_pct", 70.0),
        "price": extra.pop("price", 50.0),
        "price_unit": "EUR/MWh",
        "price_market": "day_ahead",
        "curtailment_mw": extra.pop("curtailment_mw", None),
        "source": "test",
        "estimated": False,
        **extra,
    }


def submission(request: dict[str, Any] | None = None, workload_id: str = "w1", ts_ms: int = NOW_MS) -> WorkloadEvent:
    """A ``submitted`` workload event, as the API publishes it."""
    return WorkloadEvent.from_wire(submission_event(request or REQUEST, workload_id, ts_ms))


def workload_event(kind: str, workload_id: str = "w1", n: int = 0, ts_ms: int = NOW_MS, **fields: Any) -> WorkloadEvent:
    """A workload event a node would report (``n`` tells events of the same kind apart)."""
    return WorkloadEvent(event_id=f"{workload_id}:{kind}:{n}", workload_id=workload_id, ts_ms=ts_ms,
                         type=EventKind(kind), **fields)  # fmt: skip


def zone_view(zone: str = "FR", carbon: float = 50.0, at_ms: int = NOW_MS, **extra: Any) -> ZoneView:
    fields: dict[str, Any] = {"renewable_pct": 80.0, "price_eur_per_mwh": 40.0, "surplus": False,
                              "surplus_strength": 0.0, "window_start_ms": at_ms - 60_000, "last_ts_ms": at_ms,
                              **extra}  # fmt: skip
    return ZoneView(zone=zone, carbon_gco2_per_kwh=carbon, **fields)


def node_view(node_id: str = "dc-1", zone: str = "FR", at_ms: int = NOW_MS, **extra: Any) -> NodeView:
    fields: dict[str, Any] = {"node_type": "datacenter", "gpu_model": "H100", "pue": 1.2, "vram_mb": 81_920,
                              "vram_free_mb": 81_920, "util_pct": 5.0, "health": "healthy", **extra}  # fmt: skip
    return NodeView(node_id=node_id, zone=zone, last_seen_ms=at_ms, **fields)
