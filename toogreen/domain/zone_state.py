"""A zone's windows over time: absorbing one reading into every window it belongs to, pruning old windows, and
the routing view of the zone (its newest tumbling window, judged for surplus against its hopping window)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from msgspec.structs import replace

from toogreen.domain.records import GridReading, ZoneMeta
from toogreen.domain.views import ZoneView
from toogreen.domain.windows import (
    Surplus,
    WindowAggregate,
    WindowSpec,
    assemble,
    detect_surplus,
    empty_window,
    is_too_late,
)
from toogreen.settings import SurplusSettings


def window_key(zone: str, kind: str, start_ms: int) -> str:
    return f"{zone}|{kind}|{start_ms}"


@dataclass
class ReadingOutcome:
    too_late: bool
    stored: tuple[str, WindowAggregate, Surplus] | None  # the tumbling window to store (key, aggregate, surplus)
    # the hopping windows the reading changed, assembled from the tumbling ones on demand: a run of readings
    # publishes each hopping window once, so most of them are never assembled
    hopping: Sequence[tuple[str, Callable[[], WindowAggregate]]]
    expired_keys: list[str]
    meta: ZoneMeta
    view: ZoneView | None


def _tumbling_starts_in(start_ms: int, size_ms: int, tumbling: WindowSpec) -> range:
    return range(start_ms, start_ms + size_ms, tumbling.step_ms)


def keys_needed(zone: str, ts_ms: int, meta: ZoneMeta, specs: tuple[WindowSpec, WindowSpec]) -> list[str]:
    """The tumbling-window keys :func:`apply_reading` reads for a reading at ``ts_ms``: those making up every
    hopping window the reading falls in, and those behind the window holding the watermark."""
    tumbling, hopping = specs
    watermark = max(meta.watermark_ms, ts_ms)
    first = min(hopping.starts(ts_ms)[0], watermark - watermark % tumbling.step_ms - hopping.size_ms)
    last = max(ts_ms, watermark)
    return [
        window_key(zone, tumbling.kind, s) for s in range(first - first % tumbling.step_ms, last + 1, tumbling.step_ms)
    ]


def apply_reading(
    reading: GridReading,
    windows: dict[str, WindowAggregate],
    meta: ZoneMeta,
    specs: tuple[WindowSpec, WindowSpec],
    grace_ms: int,
    keep_ms: int,
    surplus_settings: SurplusSettings,
) -> ReadingOutcome:
    """Absorb ``reading`` into its tumbling window; derive the hopping windows it changed from the tumbling
    windows they span (only tumbling windows are stored). ``windows`` holds the keys of :func:`keys_needed`."""
    zone, ts = reading.zone, reading.ts_ms
    if meta.watermark_ms >= 0 and is_too_late(ts, meta.watermark_ms, grace_ms):
        return ReadingOutcome(True, None, [], [], replace(meta, too_late_count=meta.too_late_count + 1), None)
    meta = replace(
        meta, watermark_ms=max(meta.watermark_ms, ts), late_count=meta.late_count + (1 if ts < meta.watermark_ms else 0)
    )

    tumbling, hopping = specs
    start = tumbling.starts(ts)[0]
    key = window_key(zone, tumbling.kind, start)
    merged = {**windows, key: (windows.get(key) or empty_window(zone, tumbling, start)).add(reading)}
    open_keys = meta.open_keys if key in meta.open_keys else (*meta.open_keys, key)
    stored, derived, hop = _published(zone, ts, merged, specs, surplus_settings)

    horizon = meta.watermark_ms - keep_ms
    expired = [k for k in open_keys if int(k.rsplit("|", 1)[1]) + tumbling.size_ms < horizon]
    gone = set(expired)
    meta = replace(meta, open_keys=tuple(k for k in open_keys if k not in gone))

    view = current_view(zone, merged, meta, tumbling, lambda end_ms: hop(end_ms - hopping.size_ms), surplus_settings)
    return ReadingOutcome(False, stored, derived, expired, meta, view)


def _published(
    zone: str,
    ts_ms: int,
    windows: dict[str, WindowAggregate],
    specs: tuple[WindowSpec, WindowSpec],
    surplus_settings: SurplusSettings,
) -> tuple[
    tuple[str, WindowAggregate, Surplus],
    list[tuple[str, Callable[[], WindowAggregate]]],
    Callable[[int], WindowAggregate],
]:
    """The tumbling window holding ``ts_ms`` (key, aggregate, surplus), the hopping windows holding it (assembled on
    demand), and the assembler of any hopping window, from ``windows`` (which hold the tumbling one)."""
    tumbling, hopping = specs
    assembled: dict[int, WindowAggregate] = {}

    def hop(hop_start: int) -> WindowAggregate:
        if hop_start not in assembled:
            parts = [windows[k] for s in _tumbling_starts_in(hop_start, hopping.size_ms, tumbling)
                     if (k := window_key(zone, tumbling.kind, s)) in windows]  # fmt: skip
            assembled[hop_start] = assemble(zone, hopping, hop_start, parts)
        return assembled[hop_start]

    key = window_key(zone, tumbling.kind, tumbling.starts(ts_ms)[0])
    this = windows[key]
    stored = (key, this, detect_surplus(this, hop(this.end_ms - hopping.size_ms), surplus_settings))
    derived: list[tuple[str, Callable[[], WindowAggregate]]] = [
        (window_key(zone, hopping.kind, s), partial(hop, s)) for s in hopping.starts(ts_ms)
    ]
    return stored, derived, hop


def republished(
    zone: str,
    ts_ms: int,
    windows: dict[str, WindowAggregate],
    specs: tuple[WindowSpec, WindowSpec],
    surplus_settings: SurplusSettings,
) -> tuple[tuple[str, WindowAggregate, Surplus], list[tuple[str, Callable[[], WindowAggregate]]]] | None:
    """What :func:`apply_reading` published for a reading at ``ts_ms`` that ``windows`` (the keys of
    :func:`keys_needed`) already hold: a redelivered reading is not folded in again, but its windows are published
    again (the first publication may have been lost with the worker). None if its tumbling window is gone."""
    tumbling = specs[0]
    if window_key(zone, tumbling.kind, tumbling.starts(ts_ms)[0]) not in windows:
        return None
    stored, derived, _hop = _published(zone, ts_ms, windows, specs, surplus_settings)
    return stored, derived


def current_view(
    zone: str,
    windows: dict[str, WindowAggregate],
    meta: ZoneMeta,
    tumbling: WindowSpec,
    hour_ending_at: Callable[[int], WindowAggregate],
    surplus_settings: SurplusSettings,
) -> ZoneView | None:
    """The zone as routing sees it: the tumbling window holding the watermark, judged for surplus against the
    hour that ends with it."""
    start = meta.watermark_ms - meta.watermark_ms % tumbling.step_ms
    current = windows.get(window_key(zone, tumbling.kind, start))
    if current is None or current.carbon.mean is None:
        return None
    surplus = detect_surplus(current, hour_ending_at(current.end_ms), surplus_settings)
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
