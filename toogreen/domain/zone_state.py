"""A zone's windows over time: absorbing one reading into every window it belongs to, pruning old windows, and
the routing view of the zone (its newest tumbling window, judged for surplus against its hopping window)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toogreen.domain.scoring import ZoneView
from toogreen.domain.windows import (
    Surplus,
    WindowAggregate,
    WindowSpec,
    detect_surplus,
    empty_window,
    is_too_late,
)
from toogreen.settings import SurplusSettings


def window_key(zone: str, kind: str, start_ms: int) -> str:
    return f"{zone}|{kind}|{start_ms}"


@dataclass
class ZoneMeta:
    """Per-zone bookkeeping kept beside the windows: watermark, open window keys, late counters."""

    watermark_ms: int = -1
    open_keys: list[str] = field(default_factory=list)
    late_count: int = 0
    too_late_count: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ZoneMeta:
        return cls(**data) if data else cls()

    def to_dict(self) -> dict[str, Any]:
        return {
            "watermark_ms": self.watermark_ms,
            "open_keys": list(self.open_keys),
            "late_count": self.late_count,
            "too_late_count": self.too_late_count,
        }


@dataclass
class ReadingOutcome:
    too_late: bool
    updated: list[tuple[str, WindowAggregate, Surplus]]
    expired_keys: list[str]
    meta: ZoneMeta
    view: ZoneView | None


def apply_reading(
    reading: dict[str, Any],
    windows: dict[str, WindowAggregate],
    meta: ZoneMeta,
    specs: tuple[WindowSpec, WindowSpec],
    grace_ms: int,
    keep_ms: int,
    surplus_settings: SurplusSettings,
) -> ReadingOutcome:
    """Absorb ``reading`` into its windows. ``windows`` maps the keys of ``meta.open_keys`` to aggregates."""
    zone, ts = reading["zone"], reading["ts_ms"]
    if meta.watermark_ms >= 0 and is_too_late(ts, meta.watermark_ms, grace_ms):
        meta.too_late_count += 1
        return ReadingOutcome(True, [], [], meta, None)
    if ts < meta.watermark_ms:
        meta.late_count += 1
    meta.watermark_ms = max(meta.watermark_ms, ts)

    tumbling, hopping = specs
    changed: dict[str, WindowAggregate] = {}
    for spec in specs:
        for start in spec.starts(ts):
            key = window_key(zone, spec.kind, start)
            agg = windows.get(key) or empty_window(zone, spec, start)
            changed[key] = agg.add(reading)
            if key not in meta.open_keys:
                meta.open_keys.append(key)
    merged = {**windows, **changed}

    horizon = meta.watermark_ms - keep_ms
    sizes = {spec.kind: spec.size_ms for spec in specs}
    expired = [k for k in meta.open_keys if _window_end(k, sizes) < horizon]
    meta.open_keys = [k for k in meta.open_keys if k not in set(expired)]

    # Surplus of a tumbling window is judged against the hopping window that ends with it.
    updated = []
    for key, agg in changed.items():
        baseline = _hopping_ending_at(merged, zone, agg.end_ms, hopping) if agg.kind == "tumbling" else None
        surplus = detect_surplus(agg, baseline, surplus_settings) if agg.kind == "tumbling" else Surplus()
        updated.append((key, agg, surplus))
    view = current_view(zone, merged, meta, tumbling, hopping, surplus_settings)
    return ReadingOutcome(False, updated, expired, meta, view)


def _window_end(key: str, sizes: dict[str, int]) -> int:
    _zone, kind, start = key.rsplit("|", 2)
    return int(start) + sizes[kind]


def keys_needed(zone: str, ts_ms: int, meta: ZoneMeta, specs: tuple[WindowSpec, WindowSpec]) -> list[str]:
    """The window keys :func:`apply_reading` reads for a reading at ``ts_ms``: its own windows, the tumbling
    window holding the watermark, and the hopping windows those are judged against."""
    tumbling, hopping = specs
    keys = [window_key(zone, spec.kind, start) for spec in specs for start in spec.starts(ts_ms)]
    watermark = max(meta.watermark_ms, ts_ms)
    tumbling_starts = {ts_ms - ts_ms % tumbling.step_ms, watermark - watermark % tumbling.step_ms}
    for start in sorted(tumbling_starts):
        keys.append(window_key(zone, tumbling.kind, start))
        keys.append(window_key(zone, hopping.kind, start + tumbling.size_ms - hopping.size_ms))
    return list(dict.fromkeys(keys))


def _hopping_ending_at(
    windows: dict[str, WindowAggregate], zone: str, end_ms: int, hopping: WindowSpec
) -> WindowAggregate | None:
    return windows.get(window_key(zone, hopping.kind, end_ms - hopping.size_ms))


def current_view(
    zone: str,
    windows: dict[str, WindowAggregate],
    meta: ZoneMeta,
    tumbling: WindowSpec,
    hopping: WindowSpec,
    surplus_settings: SurplusSettings,
) -> ZoneView | None:
    """The zone as routing sees it: the tumbling window holding the watermark."""
    start = meta.watermark_ms - meta.watermark_ms % tumbling.step_ms
    current = windows.get(window_key(zone, tumbling.kind, start))
    if current is None or current.carbon.mean is None:
        return None
    surplus = detect_surplus(current, _hopping_ending_at(windows, zone, current.end_ms, hopping), surplus_settings)
    return ZoneView(
        zone=zone,
        carbon_gco2_per_kwh=round(current.carbon.mean, 4),
        renewable_pct=None if current.renewable.mean is None else round(current.renewable.mean, 4),
        price_eur_per_mwh=current.price.mean,
        surplus=surplus.active,
        surplus_strength=surplus.strength,
        window_start_ms=current.start_ms,
        last_ts_ms=current.last_ts_ms,
    )


def zone_view_to_dict(view: ZoneView) -> dict[str, Any]:
    return dict(view.__dict__)


def zone_view_from_dict(data: dict[str, Any]) -> ZoneView:
    return ZoneView(**data)
