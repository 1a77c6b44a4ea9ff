"""Shared test builders: records and events as the tests need them, in one place (tests never import each other
or conftest helpers)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from toogreen.codec import encode
from toogreen.domain.records import (
    EventKind,
    NodeKind,
    NodeRegistration,
    RunningEntry,
    TelemetrySample,
    WorkloadEvent,
)
from toogreen.domain.views import NodeView, ZoneView
from toogreen.submission import submission_event

NOW_MS = 1_800_000_000_000
REQUEST: dict[str, Any] = {"name": "job", "workload_type": "training", "image": "img", "vram_mb": 16_000,
                           "expected_hours": 1.0}  # fmt: skip


@dataclass
class Msg:
    """The slice of confluent_kafka.Message the sinks read."""

    _topic: str
    _value: bytes
    _offset: int
    _partition: int = 0
    _key: bytes = b"k"

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def error(self) -> None:
        return None


def messages(records: list[tuple[str, Any]]) -> list[Msg]:
    """Each (topic, record or bytes) as the message the sink would consume, offsets in order."""
    return [
        Msg(topic, value if isinstance(value, bytes) else encode(topic, value), i)
        for i, (topic, value) in enumerate(records)
    ]


def now_ms() -> int:
    return int(time.time() * 1000)


def window_aligned_now_ms(window_ms: int = 300_000) -> int:
    """Now, moved back to the start of its tumbling window (plus 1 ms), so readings a few seconds apart share one
    window whatever the wall clock says."""
    now = now_ms()
    return now - now % window_ms + 1


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


def registration(node_id: str = "n1", zone: str = "FR", **extra: Any) -> NodeRegistration:
    fields: dict[str, Any] = {"provider": "p", "node_type": NodeKind.DATACENTER, "gpu_model": "H100",
                              "vram_mb": 81_920, "lat": 48.8, "lng": 2.3, "pue": 1.2, "max_power_w": 700.0,
                              **extra}  # fmt: skip
    return NodeRegistration(node_id=node_id, zone=zone, **fields)


def telemetry(node_id: str = "n1", ts_ms: int = NOW_MS, util: float = 50.0, **extra: Any) -> TelemetrySample:
    fields: dict[str, Any] = {"mem_used_mb": 1_000, "mem_total_mb": 81_920, "power_w": 300.0, **extra}
    return TelemetrySample(node_id=node_id, ts_ms=ts_ms, sm_util_pct=util, **fields)


def running_entry(
    node_id: str = "n1", zone: str = "FR", carbon: float = 100.0, last_rescore_ms: int = 0
) -> RunningEntry:
    return RunningEntry(node_id=node_id, zone=zone, carbon_gco2_per_kwh=carbon, last_rescore_ms=last_rescore_ms)
