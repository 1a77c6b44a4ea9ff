"""Energy and carbon accounting for workloads (SPEC §6), as pure functions over telemetry samples.

Energy between two samples of a node is the NVML energy counter's delta where both samples carry it (and it
did not go backwards), else the trapezoid of the power samples. A workload gets its share of the node's energy
(its MIG slice's compute fraction, or an equal split among whole-GPU co-tenants) × the site's PUE. Emissions are
Σ energy of each interval × the zone's intensity in that interval (location-based); a recycler's declared
source gives the market-based figure beside it, never netted in.

A workload's energy on a node runs from when it started there up to when it stopped (``RunningShare.until_ms``:
the sample the node sends as the workload exits, and the piece after it up to the stop, are its own). With a
metering interval, no interval spans one of its boundaries (a sample's energy is split pro rata at them), so each
metering interval's usage is exactly the intervals inside it (``toogreen.domain.settlement``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from msgspec.structs import replace

from toogreen.domain.records import AccrualInterval, Accruals, NodeKind, NodeState, RunningShare, TelemetrySample
from toogreen.domain.views import ZoneView

J_PER_KWH = 3_600_000.0


def energy_between_j(prev: Mapping[str, Any], cur: Mapping[str, Any]) -> tuple[float, str]:
    """Joules drawn by the GPU between two telemetry samples, and how they were measured."""
    dt_s = (cur["ts_ms"] - prev["ts_ms"]) / 1000.0
    if dt_s <= 0:
        return 0.0, "none"
    e0, e1 = prev.get("energy_j"), cur.get("energy_j")
    if e0 is not None and e1 is not None and e1 >= e0:
        return e1 - e0, "nvml_energy_counter"
    return 0.5 * (prev["power_w"] + cur["power_w"]) * dt_s, "integrated_power"


@dataclass(frozen=True)
class Slot:
    """Where and how a workload drew energy at one moment."""

    node_id: str
    zone: str
    pue: float
    share: float
    carbon_gco2_per_kwh: float
    window_start_ms: int
    market_gco2_per_kwh: float | None = None


def metering_bucket(ts_ms: int, metering_ms: int) -> int:
    """The metering interval ``ts_ms`` lies in (its start), or 0 without metering intervals."""
    return ts_ms - ts_ms % metering_ms if metering_ms > 0 else 0


def metering_pieces(start_ms: int, end_ms: int, metering_ms: int) -> list[tuple[int, int]]:
    """[start, end] cut at every metering boundary inside it."""
    if metering_ms <= 0:
        return [(start_ms, end_ms)]
    pieces, at = [], start_ms
    while at < end_ms:
        cut = min(end_ms, metering_bucket(at, metering_ms) + metering_ms)
        pieces.append((at, cut))
        at = cut
    return pieces


def accrue(
    intervals: Accruals,
    slot: Slot,
    start_ms: int,
    end_ms: int,
    gpu_energy_j: float,
    method: str,
    metering_ms: int = 0,
) -> Accruals:
    """The workload's intervals after adding ``gpu_energy_j`` of its node drawn in [start, end]. Consecutive
    samples on the same node in the same zone window (and metering interval) extend one interval, so a receipt
    stays small; an interval already billed by an interim record is never extended."""
    kwh = gpu_energy_j * slot.share * slot.pue / J_PER_KWH
    gco2 = kwh * slot.carbon_gco2_per_kwh
    market = None if slot.market_gco2_per_kwh is None else kwh * slot.market_gco2_per_kwh
    out = list(intervals)
    last = out[-1] if out else None
    if (
        last is not None
        and last.node_id == slot.node_id
        and last.zone == slot.zone
        and last.window_start_ms == slot.window_start_ms
        and last.end_ms == start_ms
        and last.billing_id is None
        and metering_bucket(last.start_ms, metering_ms) == metering_bucket(start_ms, metering_ms)
    ):
        kwh_total = last.kwh + kwh
        out[-1] = replace(
            last,
            end_ms=end_ms,
            kwh=kwh_total,
            gco2=last.gco2 + gco2,
            carbon_gco2_per_kwh=(last.gco2 + gco2) / kwh_total if kwh_total > 0 else slot.carbon_gco2_per_kwh,
            gpu_ms=last.gpu_ms + (end_ms - start_ms) * slot.share,
            market_gco2=None if market is None else (last.market_gco2 or 0.0) + market,
            methods=tuple(sorted({*last.methods, method})),
        )
    else:
        out.append(AccrualInterval(
            node_id=slot.node_id, zone=slot.zone, window_start_ms=slot.window_start_ms, start_ms=start_ms,
            end_ms=end_ms, kwh=kwh, gco2=gco2, carbon_gco2_per_kwh=slot.carbon_gco2_per_kwh,
            gpu_ms=(end_ms - start_ms) * slot.share, market_gco2=market, methods=(method,),
        ))  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class PowerPoint:
    """One telemetry sample of a node, as the energy between samples needs it."""

    ts_ms: int
    power_w: float
    energy_j: float | None = None

    @classmethod
    def of(cls, sample: TelemetrySample) -> PowerPoint:
        return cls(sample.ts_ms, sample.power_w, sample.energy_j)

    def wire(self) -> dict[str, Any]:
        return {"ts_ms": self.ts_ms, "power_w": self.power_w, "energy_j": self.energy_j}


def accrued_to_ms(intervals: Accruals | None, node_id: str) -> int | None:
    """Up to when the workload's energy on ``node_id`` is accrued already (None: none is)."""
    ends = [i.end_ms for i in intervals or () if i.node_id == node_id]
    return max(ends) if ends else None


def accrue_energy(
    running: Mapping[str, RunningShare],
    before: NodeState | None,
    sample: TelemetrySample,
    zone: ZoneView | None,
    accruals: Mapping[str, Accruals],
    metering_ms: int = 0,
    history: Sequence[PowerPoint] = (),
) -> dict[str, Accruals]:
    """Each workload running on the node, with its intervals after its share of the energy the node drew up to
    ``sample``, in the node's zone window now (``zone``): from when it started there (or from where its energy here
    is accrued already), up to when it stopped (cut at every metering boundary, ``metering_ms``).

    Normally that is the energy between the node's previous telemetry (in ``before``) and ``sample``. ``history``,
    the node's samples before that one (oldest first), lets a share that reached the node's partition late (the
    owner's word on who runs where travels through its own log: seconds, under failover more) still get what it
    drew since it started: a workload of a few seconds could otherwise start and stop between two samples the
    partition applied before it heard of it, and get no energy, no receipt and no bill."""
    if not running or before is None or before.telemetry is None or before.registration is None or zone is None:
        return {}
    prev, reg = before.telemetry, before.registration
    if sample.ts_ms <= prev.last_seen_ms:
        return {}
    points = [p for p in history if p.ts_ms < prev.last_seen_ms]
    points += [PowerPoint(prev.last_seen_ms, prev.power_w, prev.energy_j), PowerPoint.of(sample)]
    declared = reg.declared_carbon_gco2_per_kwh if reg.node_type == NodeKind.RECYCLER else None
    # when each share was on the node, and from when its energy is still to accrue
    on_node = {w: (held.since_ms, held.until_ms or sample.ts_ms) for w, held in running.items()}
    owed_from = {w: max(held.since_ms, accrued_to_ms(accruals.get(w), reg.node_id) or held.since_ms)
                 for w, held in running.items()}  # fmt: skip
    out: dict[str, Accruals] = {}
    for a, b in pairwise(points):
        span_ms = b.ts_ms - a.ts_ms
        owed = {w: (max(a.ts_ms, owed_from[w]), min(b.ts_ms, on_node[w][1])) for w in running}
        owed = {w: span for w, span in owed.items() if span[0] < span[1]}
        if span_ms <= 0 or not owed:
            continue
        energy_j, method = energy_between_j(a.wire(), b.wire())
        # between two moments a tenant started or stopped, those on the node then share it (equally, or by
        # fraction), whether or not their own part of it is accrued already
        present = {w: (max(a.ts_ms, start), min(b.ts_ms, end)) for w, (start, end) in on_node.items()}
        present = {w: span for w, span in present.items() if span[0] < span[1]}
        cuts = sorted({t for span in present.values() for t in span})
        for part_start, part_end in pairwise(cuts):
            tenants = [w for w, (start, end) in present.items() if start <= part_start and part_end <= end]
            for workload_id in tenants:
                start, end = owed.get(workload_id, (0, 0))
                if not (start <= part_start and part_end <= end):
                    continue  # accrued already (or not owed here)
                slot = Slot(
                    node_id=reg.node_id,
                    zone=reg.zone,
                    pue=reg.pue,
                    share=running[workload_id].fraction or 1.0 / len(tenants),
                    carbon_gco2_per_kwh=zone.carbon_gco2_per_kwh,
                    window_start_ms=zone.window_start_ms,
                    market_gco2_per_kwh=declared,
                )
                intervals = out.get(workload_id, list(accruals.get(workload_id) or []))
                for piece_start, piece_end in metering_pieces(part_start, part_end, metering_ms):
                    own_j = energy_j * (piece_end - piece_start) / span_ms
                    intervals = accrue(intervals, slot, piece_start, piece_end, own_j, method, metering_ms)
                out[workload_id] = intervals
    return out


@dataclass(frozen=True)
class Totals:
    kwh: float
    gco2_actual: float
    gco2_baseline: float
    gco2_market_based: float | None
    gpu_hours: float

    @property
    def gco2_saved(self) -> float:
        return self.gco2_baseline - self.gco2_actual


def totals(intervals: Iterable[AccrualInterval], baseline_gco2_per_kwh: float) -> Totals:
    items = list(intervals)
    kwh = sum(i.kwh for i in items)
    market = [i.market_gco2 for i in items if i.market_gco2 is not None]
    return Totals(
        kwh=kwh,
        gco2_actual=sum(i.gco2 for i in items),
        gco2_baseline=kwh * baseline_gco2_per_kwh,
        gco2_market_based=sum(market) if market else None,
        gpu_hours=sum(i.gpu_ms for i in items) / 3_600_000.0,
    )
