"""Replaying historical grid files through ``grid.readings`` with their own timestamps (event time), at a
chosen speed-up, so the zone windows and routing behave as they would have live."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.entsoe import intensities, read_production_csv
from toogreen.domain.intensity import read_intensity_csv
from toogreen.domain.zones import require_zone
from toogreen.kafka.producer import DeliveryStats, RecordProducer
from toogreen.settings import GridSourceSettings
from toogreen.topics import GRID_READINGS


def is_production_csv(path: Path) -> bool:
    with path.open() as fh:
        header = fh.readline()
    return not header.startswith("Time") and "Nuclear" in header


def load_readings(
    zone: str,
    path: Path,
    settings: GridSourceSettings,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[dict[str, Any]]:
    """``grid.readings`` records of one zone from an ENTSO-E production CSV (intensity computed here) or a
    ``Time, Carbon Intensity[, Renewable Percentage, Price]`` CSV."""
    require_zone(zone)
    lo = int(start.timestamp() * 1000) if start else None
    hi = int(end.timestamp() * 1000) if end else None
    source = f"replay:{path.name}"
    out = []
    if is_production_csv(path):
        for ts, result in intensities(read_production_csv(path).mixes, settings):
            out.append(_reading(zone, ts, result.carbon_gco2_per_kwh, result.renewable_pct, None, source))
    else:
        for p in read_intensity_csv(path):
            out.append(_reading(zone, p.ts_ms, p.carbon_gco2_per_kwh, p.renewable_pct, p.price, source))
    return [r for r in out if (lo is None or r["ts_ms"] >= lo) and (hi is None or r["ts_ms"] < hi)]


def _reading(zone: str, ts: int, ci: float, ren: float | None, price: float | None, source: str) -> dict[str, Any]:
    return {
        "zone": zone, "ts_ms": ts, "carbon_intensity_gco2_per_kwh": round(ci, 6),
        "carbon_intensity_kind": "lifecycle", "carbon_intensity_basis": "average",
        "renewable_pct": None if ren is None else round(ren, 4), "price": price, "price_unit": "EUR/MWh",
        "price_market": "day_ahead", "curtailment_mw": None, "source": source, "estimated": False,
    }  # fmt: skip


def merge_in_time(series: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return list(heapq.merge(*series, key=lambda r: (r["ts_ms"], r["zone"])))


def play(
    producer: RecordProducer,
    readings: list[dict[str, Any]],
    speed: float,
    stop: threading.Event,
    on_sent: Callable[[int], None] | None = None,
) -> DeliveryStats:
    """Send ``readings`` (time-ordered) so event time advances ``speed`` times faster than the wall clock
    (0: as fast as the broker takes them)."""
    if not readings:
        return producer.flush()
    t0_event, t0_wall = readings[0]["ts_ms"], time.monotonic()
    for i, reading in enumerate(readings):
        if stop.is_set():
            break
        if speed > 0:
            due = t0_wall + (reading["ts_ms"] - t0_event) / 1000 / speed
            if (wait := due - time.monotonic()) > 0:
                producer.flush()
                stop.wait(wait)
        producer.send(GRID_READINGS.name, reading["zone"], reading, timestamp_ms=reading["ts_ms"])
        if on_sent and i % 200 == 0:
            on_sent(i + 1)
    stats = producer.flush()
    if on_sent:
        on_sent(len(readings))
    return stats
