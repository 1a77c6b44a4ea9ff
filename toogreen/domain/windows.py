"""Event-time window maths for zone readings: which windows a reading falls in, how an aggregate absorbs a
reading (in or out of order), when a reading is too late, and when a zone is in surplus.

Aggregates are small immutable values with a plain-dict wire form (``to_dict`` / ``from_dict``: an empty
measure's minimum is infinite, which JSON carries as ``Infinity``), so a Faust table can hold them and the offline
evaluation can use the same code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from toogreen.domain.records import GridReading, ZoneWindow
from toogreen.settings import SurplusSettings, WindowSettings


@dataclass(frozen=True)
class WindowSpec:
    kind: str  # "tumbling" or "hopping"
    size_ms: int
    step_ms: int

    def starts(self, ts_ms: int) -> list[int]:
        """Start times of every window of this spec that contains ``ts_ms`` (oldest first)."""
        last = ts_ms - ts_ms % self.step_ms
        return list(range(last - self.size_ms + self.step_ms, last + 1, self.step_ms))


def specs_from(settings: WindowSettings) -> tuple[WindowSpec, WindowSpec]:
    """The tumbling and hopping window specs the settings describe. A hopping window is assembled from the
    tumbling windows it spans, so it must hop by one tumbling window and span a whole number of them."""
    if settings.hopping_step_s != settings.tumbling_s or settings.hopping_size_s % settings.tumbling_s:
        raise ValueError(
            f"hopping windows ({settings.hopping_size_s} s by {settings.hopping_step_s} s) must hop by the tumbling "
            f"window ({settings.tumbling_s} s) and span a whole number of them"
        )
    return (
        WindowSpec("tumbling", settings.tumbling_s * 1000, settings.tumbling_s * 1000),
        WindowSpec("hopping", settings.hopping_size_s * 1000, settings.hopping_step_s * 1000),
    )


def is_too_late(ts_ms: int, watermark_ms: int, grace_ms: int) -> bool:
    """A reading older than the watermark minus the grace period no longer changes any window."""
    return ts_ms < watermark_ms - grace_ms


@dataclass(frozen=True)
class Stat:
    """Running mean/min/max/last/stddev of one measure; ``last`` is the value with the newest event time."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    last: float | None = None
    last_ts_ms: int = -1

    def add(self, value: float | None, ts_ms: int) -> Stat:
        if value is None:
            return self
        newer = ts_ms >= self.last_ts_ms
        return Stat(
            n=self.n + 1,
            total=self.total + value,
            total_sq=self.total_sq + value * value,
            min=min(self.min, value),
            max=max(self.max, value),
            last=value if newer else self.last,
            last_ts_ms=ts_ms if newer else self.last_ts_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "total": self.total, "total_sq": self.total_sq, "min": self.min, "max": self.max,
                "last": self.last, "last_ts_ms": self.last_ts_ms}  # fmt: skip

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def std(self) -> float | None:
        if self.n < 2:
            return None
        mean = self.total / self.n
        return math.sqrt(max(self.total_sq / self.n - mean * mean, 0.0))


@dataclass(frozen=True)
class WindowAggregate:
    zone: str
    kind: str
    start_ms: int
    end_ms: int
    count: int = 0
    late_count: int = 0
    carbon: Stat = Stat()
    renewable: Stat = Stat()
    price: Stat = Stat()
    curtailment_max_mw: float | None = None
    last_ts_ms: int = -1

    def add(self, reading: GridReading | Mapping[str, Any]) -> WindowAggregate:
        if not isinstance(reading, GridReading):  # a reading in its wire form
            reading = GridReading.from_wire(reading)
        ts = reading.ts_ms
        cur = reading.curtailment_mw
        return replace(
            self,
            count=self.count + 1,
            late_count=self.late_count + (1 if ts < self.last_ts_ms else 0),
            carbon=self.carbon.add(reading.carbon_intensity_gco2_per_kwh, ts),
            renewable=self.renewable.add(reading.renewable_pct, ts),
            price=self.price.add(reading.price, ts),
            curtailment_max_mw=cur
            if self.curtailment_max_mw is None or (cur or 0) > self.curtailment_max_mw
            else self.curtailment_max_mw,
            last_ts_ms=max(self.last_ts_ms, ts),
        )

    def to_dict(self) -> dict[str, Any]:
        # written out by hand: dataclasses.asdict deep-copies and was most of a reading's cost
        return {
            "zone": self.zone, "kind": self.kind, "start_ms": self.start_ms, "end_ms": self.end_ms,
            "count": self.count, "late_count": self.late_count, "carbon": self.carbon.to_dict(),
            "renewable": self.renewable.to_dict(), "price": self.price.to_dict(),
            "curtailment_max_mw": self.curtailment_max_mw, "last_ts_ms": self.last_ts_ms,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowAggregate:
        return cls(
            zone=data["zone"], kind=data["kind"], start_ms=data["start_ms"], end_ms=data["end_ms"],
            count=data["count"], late_count=data["late_count"], carbon=Stat(**data["carbon"]),
            renewable=Stat(**data["renewable"]), price=Stat(**data["price"]),
            curtailment_max_mw=data["curtailment_max_mw"], last_ts_ms=data["last_ts_ms"],
        )  # fmt: skip

    def to_record(self, surplus: Surplus) -> ZoneWindow:
        """The ``zone.windows`` record of this aggregate."""
        return ZoneWindow(
            zone=self.zone,
            kind=self.kind,
            window_start_ms=self.start_ms,
            window_end_ms=self.end_ms,
            count=self.count,
            late_count=self.late_count,
            carbon_mean=self.carbon.mean or 0.0,
            carbon_min=self.carbon.min,
            carbon_max=self.carbon.max,
            carbon_last=self.carbon.last or 0.0,
            renewable_mean=self.renewable.mean,
            renewable_min=self.renewable.min if self.renewable.n else None,
            renewable_max=self.renewable.max if self.renewable.n else None,
            renewable_last=self.renewable.last,
            renewable_std=self.renewable.std,
            price_mean=self.price.mean,
            price_min=self.price.min if self.price.n else None,
            price_max=self.price.max if self.price.n else None,
            price_last=self.price.last,
            curtailment_max_mw=self.curtailment_max_mw,
            last_ts_ms=self.last_ts_ms,
            surplus=surplus.active,
            surplus_reason=surplus.reason,
            surplus_strength=surplus.strength,
        )


def _merge_stats(stats: list[Stat]) -> Stat:
    filled = [s for s in stats if s.n]
    if not filled:
        return Stat()
    newest = max(filled, key=lambda s: s.last_ts_ms)
    return Stat(
        n=sum(s.n for s in filled),
        total=sum(s.total for s in filled),
        total_sq=sum(s.total_sq for s in filled),
        min=min(s.min for s in filled),
        max=max(s.max for s in filled),
        last=newest.last,
        last_ts_ms=newest.last_ts_ms,
    )


def assemble(zone: str, spec: WindowSpec, start_ms: int, parts: list[WindowAggregate]) -> WindowAggregate:
    """A (hopping) window made of the tumbling windows inside it."""
    curtailments = [p.curtailment_max_mw for p in parts if p.curtailment_max_mw is not None]
    return WindowAggregate(
        zone=zone,
        kind=spec.kind,
        start_ms=start_ms,
        end_ms=start_ms + spec.size_ms,
        count=sum(p.count for p in parts),
        late_count=sum(p.late_count for p in parts),
        carbon=_merge_stats([p.carbon for p in parts]),
        renewable=_merge_stats([p.renewable for p in parts]),
        price=_merge_stats([p.price for p in parts]),
        curtailment_max_mw=max(curtailments) if curtailments else None,
        last_ts_ms=max((p.last_ts_ms for p in parts), default=-1),
    )


def empty_window(zone: str, spec: WindowSpec, start_ms: int) -> WindowAggregate:
    return WindowAggregate(zone=zone, kind=spec.kind, start_ms=start_ms, end_ms=start_ms + spec.size_ms)


@dataclass(frozen=True)
class Surplus:
    active: bool = False
    reason: str | None = None
    strength: float = 0.0  # 0..1, drives the surplus discount


def detect_surplus(current: WindowAggregate, baseline: WindowAggregate | None, settings: SurplusSettings) -> Surplus:
    """Is the zone in surplus in ``current`` (a short window), judged also against ``baseline`` (its own
    longer window)? Curtailment, a price under the threshold, or a renewable share far above its own window."""
    reasons: list[str] = []
    strength = 0.0
    if current.curtailment_max_mw and current.curtailment_max_mw > 0:
        reasons.append(f"curtailment {current.curtailment_max_mw:.0f} MW")
        strength = max(strength, min(1.0, current.curtailment_max_mw / settings.curtailment_full_discount_mw))
    price = current.price.last
    if price is not None and price < settings.price_below_eur_per_mwh:
        reasons.append(f"price {price:.1f} < {settings.price_below_eur_per_mwh:.1f}")
        floor = settings.price_below_eur_per_mwh
        strength = max(strength, min(1.0, (floor - price) / max(floor, 1e-9) * 0.5 + 0.5))
    ren = current.renewable.last
    if baseline is not None and ren is not None and baseline.renewable.n >= settings.min_window_count:
        mean, std = baseline.renewable.mean, baseline.renewable.std
        if mean is not None and std and ren > mean + settings.renewable_sigma * std:
            reasons.append(f"renewable {ren:.1f}% > {mean:.1f}% + {settings.renewable_sigma:g} sd ({std:.1f})")
            strength = max(strength, min(1.0, (ren - mean) / (4 * std)))
    return Surplus(active=bool(reasons), reason="; ".join(reasons) or None, strength=round(strength, 4))
