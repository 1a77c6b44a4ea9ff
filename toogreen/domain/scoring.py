"""Routing: hard rules (fit, freshness, green compliance, carbon, budget, deadline), tiers, the min-max
normalised composite score, and the decision with the alternatives considered (SPEC §4).

Every node is judged with array operations over the :class:`~toogreen.domain.fleet.Fleet`'s columns; only the
alternatives a decision reports become :class:`Candidate` objects. The same inputs always give the same decision:
candidates are ranked by (tier, score, node id), the tier taken in its order of :func:`preference` (work that is not
green-only takes a non-compliant node no dirtier than the cleanest compliant one first, sparing the compliant ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from toogreen.domain.fleet import NODE_TYPES, Fleet
from toogreen.domain.kinds import NodeKind
from toogreen.domain.mig import choose_profile, compute_fraction
from toogreen.domain.pricing import quote
from toogreen.domain.views import Candidate, Decision, NodeView, WorkloadSpec, ZoneView
from toogreen.settings import MigrationSettings, PricingSettings, ScoringSettings

MS_PER_HOUR = 3_600_000
NON_COMPLIANT_TIER = 4


def is_green_zone(zone: ZoneView, settings: ScoringSettings) -> bool:
    """At least ``green_renewable_pct`` renewable, or (where set) no dirtier than ``green_max_carbon_gco2_per_kwh``."""
    if zone.renewable_pct is not None and zone.renewable_pct >= settings.green_renewable_pct:
        return True
    low = settings.green_max_carbon_gco2_per_kwh
    return low is not None and zone.carbon_gco2_per_kwh <= low


def tier_of(node: NodeView, zone: ZoneView, settings: ScoringSettings) -> int:
    """1 energy recycler; 2 data centre in a surplus or green zone; 3 gamer in a green zone; 4 non-compliant."""
    if node.node_type == NodeKind.RECYCLER:
        return 1
    if node.node_type == NodeKind.DATACENTER and (zone.surplus or is_green_zone(zone, settings)):
        return 2
    if node.node_type == NodeKind.GAMER and is_green_zone(zone, settings):
        return 3
    return NON_COMPLIANT_TIER


def spares_compliant_nodes(green_only: bool, settings: ScoringSettings) -> bool:
    """Whether work ranks a non-compliant node no dirtier than the cleanest compliant one before every compliant
    one (``spare_compliant_nodes``, for work that is not green-only: the compliant nodes are kept for the green-only
    work that may run nowhere else, where that costs no carbon)."""
    return settings.spare_compliant_nodes and not green_only


def preference(tier: int, green_only: bool, settings: ScoringSettings) -> int:
    """A tier's place in the order a move may take, lower first: the tier itself; sparing compliant nodes, 0 for a
    non-compliant node (a move must be cleaner anyway), then the compliant tiers in their order."""
    if spares_compliant_nodes(green_only, settings):
        return 0 if tier == NON_COMPLIANT_TIER else tier
    return tier


def node_carbon(node: NodeView, zone: ZoneView) -> float:
    """gCO2eq/kWh at the node: a recycler's declared source where it has one, else the zone's window × PUE."""
    if node.node_type == NodeKind.RECYCLER and node.declared_carbon_gco2_per_kwh is not None:
        return node.declared_carbon_gco2_per_kwh * node.pue
    return zone.carbon_gco2_per_kwh * node.pue


# Why a node is not eligible, in the order the rules are checked: the first that fails is the reason.
STALE, UNHEALTHY, NO_ZONE, ZONE_STALE, NOT_GREEN, TOO_DIRTY, OVER_BUDGET, TOO_LATE = range(1, 9)
BUSY, SPLIT, NO_VRAM, NO_MIG, TOO_HOT_FOR_MIG, NO_SLICE = range(9, 15)
DRAINED = 15  # checked right after UNHEALTHY
REASONS = {
    STALE: "node telemetry stale", UNHEALTHY: "node unhealthy", NO_ZONE: "no grid data for the zone",
    ZONE_STALE: "zone readings stale", NOT_GREEN: "green-only workload, node not compliant",
    TOO_DIRTY: "carbon above the workload's max", OVER_BUDGET: "cost above budget",
    TOO_LATE: "cannot finish before the deadline", BUSY: "GPU busy with a whole-GPU workload",
    SPLIT: "GPU split into MIG slices", NO_VRAM: "not enough free VRAM", NO_MIG: "no MIG on this GPU",
    TOO_HOT_FOR_MIG: "utilisation too high to offer slices", NO_SLICE: "no free MIG slice holds it",
    DRAINED: "drained",
}  # fmt: skip
# Reasons a whole GPU did not fit that a MIG slice might not share: no idle GPU big enough, or over budget.
WHOLE_GPU_MISFITS = (OVER_BUDGET, BUSY, SPLIT, NO_VRAM)
_RECYCLER, _DATACENTER, _GAMER = (NODE_TYPES.index(k) for k in (NodeKind.RECYCLER, NodeKind.DATACENTER, NodeKind.GAMER))


@dataclass
class _Judged:
    """Every considered row's figures for one decision (arrays over the fleet's rows)."""

    rows: np.ndarray
    tier: np.ndarray  # 0 where the zone has no data
    carbon: np.ndarray
    price: np.ndarray
    why: np.ndarray  # 0 eligible, else a reason code
    slice_of: np.ndarray  # per row: index into ``slices`` of the MIG slice offered, -1 for a whole GPU
    slices: list[tuple[str, float]]  # (MIG profile, compute fraction)
    score: np.ndarray
    parts: np.ndarray  # (n, 3): carbon, price, utilisation parts
    rank: np.ndarray  # the order of preference between groups: the tier, or (sparing) non-compliant nodes first


def _normalised(values: np.ndarray) -> np.ndarray:
    lo, hi = values.min(), values.max()
    if hi - lo < 1e-12:
        return np.zeros_like(values)
    return (values - lo) / (hi - lo)


class _Zones:
    """The zones' windowed values as arrays indexed by the fleet's zone codes."""

    def __init__(self, fleet: Fleet, zones: Mapping[str, ZoneView], scoring: ScoringSettings) -> None:
        n = len(fleet.zones)
        self.views: list[ZoneView | None] = [None] * n
        self.present = np.zeros(n, dtype=bool)
        self.carbon = np.full(n, np.nan)
        self.last_ts = np.zeros(n, dtype=np.int64)
        self.green = np.zeros(n, dtype=bool)
        self.surplus = np.zeros(n, dtype=bool)
        for name, code in fleet.zones.items():
            zone = zones.get(name)
            if zone is None:
                continue
            self.views[code] = zone
            self.present[code] = True
            self.carbon[code] = zone.carbon_gco2_per_kwh
            self.last_ts[code] = zone.last_ts_ms
            self.green[code] = is_green_zone(zone, scoring)
            self.surplus[code] = zone.surplus


def _price_table(
    fleet: Fleet, zones: _Zones, pricing: PricingSettings, demand: float, fraction: float = 1.0
) -> np.ndarray:
    """€/GPU-hour per (GPU model code, zone code)."""
    table = np.full((max(1, len(fleet.gpu_models)), max(1, len(fleet.zones))), np.nan)
    for model, m in fleet.gpu_models.items():
        for code, zone in enumerate(zones.views):
            if zone is not None:
                strength = zone.surplus_strength if zone.surplus else 0.0
                table[m, code] = quote(model, zone.renewable_pct, strength, pricing, demand, fraction).eur_per_gpu_hour
    return table


def _judge(
    workload: WorkloadSpec,
    fleet: Fleet,
    rows: np.ndarray,
    zones: _Zones,
    now_ms: int,
    scoring: ScoringSettings,
    pricing: PricingSettings,
    demand: float,
    migration: MigrationSettings | None,
) -> _Judged:
    col = fleet.column
    zone, node_type, pue = col("zone")[rows], col("node_type")[rows], col("pue")[rows]
    present = zones.present[zone]
    green, surplus = zones.green[zone], zones.surplus[zone]
    tier = np.full(len(rows), NON_COMPLIANT_TIER, dtype=np.int64)
    tier[(node_type == _GAMER) & green] = 3
    tier[(node_type == _DATACENTER) & (surplus | green)] = 2
    tier[node_type == _RECYCLER] = 1
    tier[~present] = 0
    declared = col("declared")[rows]
    use_declared = (node_type == _RECYCLER) & ~np.isnan(declared)
    carbon = np.where(use_declared, declared, zones.carbon[zone]) * pue
    price = _price_table(fleet, zones, pricing, demand)[col("gpu_model")[rows], zone]

    why = np.zeros(len(rows), dtype=np.int64)

    def rule(code: int, fails: np.ndarray | bool) -> None:
        why[(why == 0) & fails] = code

    rule(STALE, now_ms - col("last_seen_ms")[rows] > scoring.node_stale_after_s * 1000)
    rule(UNHEALTHY, col("unhealthy")[rows])
    rule(DRAINED, col("drained")[rows])
    rule(NO_ZONE, ~present)
    rule(ZONE_STALE, now_ms - zones.last_ts[zone] > scoring.zone_stale_after_s * 1000)
    if workload.green_only:
        rule(NOT_GREEN, tier == NON_COMPLIANT_TIER)
    if workload.max_carbon_gco2_kwh is not None:
        rule(TOO_DIRTY, carbon > workload.max_carbon_gco2_kwh)
    if workload.budget_eur is not None:
        rule(OVER_BUDGET, price * workload.expected_hours > workload.budget_eur)
    too_late = (
        workload.deadline_ms is not None and now_ms + workload.expected_hours * MS_PER_HOUR > workload.deadline_ms
    )
    rule(TOO_LATE, bool(too_late))
    rule(BUSY, col("whole_tenants")[rows] > 0)
    rule(SPLIT, col("mig_slices_used")[rows] > 0)
    rule(NO_VRAM, col("vram_free_mb")[rows] < workload.vram_mb)

    slice_of = np.full(len(rows), -1, dtype=np.int64)
    slices: list[tuple[str, float]] = []
    if migration is not None and not (why == 0).any():
        _offer_slices(
            workload, fleet, rows, zones, pricing, demand, migration, bool(too_late), why, price, slice_of, slices
        )

    score = np.full(len(rows), np.nan)
    parts = np.full((len(rows), 3), np.nan)
    eligible = why == 0
    util = col("util_pct")[rows]
    weights = np.array([scoring.carbon_weight, scoring.price_weight, scoring.utilisation_weight])
    spare = spares_compliant_nodes(workload.green_only, scoring)
    rank = tier
    compliant = eligible & (tier > 0) & (tier < NON_COMPLIANT_TIER)
    if spare and compliant.any():  # a non-compliant node no dirtier than the cleanest compliant one goes first
        rank = np.where((tier == NON_COMPLIANT_TIER) & (carbon <= carbon[compliant].min()), 0, tier)
    for t in np.unique(rank[eligible]):
        group = eligible & (rank == t)
        normalised = np.column_stack([_normalised(carbon[group]), _normalised(price[group]), _normalised(util[group])])
        score[group] = np.round(normalised @ weights, 6)
        parts[group] = np.round(normalised, 6)
    return _Judged(rows, tier, carbon, price, why, slice_of, slices, score, parts, rank)


def _offer_slices(
    workload: WorkloadSpec,
    fleet: Fleet,
    rows: np.ndarray,
    zones: _Zones,
    pricing: PricingSettings,
    demand: float,
    migration: MigrationSettings,
    too_late: bool,
    why: np.ndarray,
    price: np.ndarray,
    slice_of: np.ndarray,
    slices: list[tuple[str, float]],
) -> None:
    """No whole GPU fits: offer MIG slices under the same rules (in place on ``why``, ``price``, ``slice_of``).
    The slice is chosen once per MIG layout (GPU model and slices held), priced once per slice size."""
    col = fleet.column
    retry = np.isin(why, WHOLE_GPU_MISFITS)
    capable = col("mig_capable")[rows]
    why[retry & ~capable] = NO_MIG
    retry &= capable
    busy = col("whole_tenants")[rows] > 0
    why[retry & busy] = BUSY
    retry &= ~busy
    hot = col("util_pct")[rows] >= migration.mig_max_util_pct
    why[retry & hot] = TOO_HOT_FOR_MIG
    retry &= ~hot
    if not retry.any():
        return
    layout_slice = np.full(len(fleet.mig_layouts), -1, dtype=np.int64)
    layouts = col("mig_layout")[rows]
    by_layout = {code: key for key, code in fleet.mig_layouts.items()}
    for code in np.unique(layouts[retry]).tolist():
        gpu_model, used = by_layout[code]
        chosen = choose_profile(gpu_model, workload.vram_mb, dict(used))
        if chosen is not None:
            layout_slice[code] = len(slices)
            slices.append((chosen.name, compute_fraction(gpu_model, chosen)))
    slice_of[retry] = layout_slice[layouts[retry]]
    why[retry & (slice_of < 0)] = NO_SLICE
    offered = retry & (slice_of >= 0)
    models, zone_codes = col("gpu_model")[rows], col("zone")[rows]
    for fraction in sorted({f for _name, f in slices}):
        sized = offered & np.isin(slice_of, [k for k, (_n, f) in enumerate(slices) if f == fraction])
        table = _price_table(fleet, zones, pricing, demand, fraction)
        price[sized] = table[models[sized], zone_codes[sized]]
    verdict = np.zeros(len(rows), dtype=np.int64)
    if workload.budget_eur is not None:
        verdict[price * workload.expected_hours > workload.budget_eur] = OVER_BUDGET
    if too_late:
        verdict[verdict == 0] = TOO_LATE
    why[offered] = verdict[offered]
    slice_of[offered & (why != 0)] = -1


def _reason_text(code: int, i: int, judged: _Judged, fleet: Fleet, zones: _Zones, workload: WorkloadSpec,
                 now_ms: int) -> str:  # fmt: skip
    view = fleet.views[judged.rows[i]]
    zone = zones.views[int(fleet.column("zone")[judged.rows[i]])]
    if code == STALE:
        return f"node telemetry stale ({(now_ms - view.last_seen_ms) / 1000:.0f} s old)"
    if code == NO_ZONE:
        return f"no grid data for zone {view.zone}"
    if code == ZONE_STALE and zone is not None:
        return f"zone {view.zone} readings stale ({(now_ms - zone.last_ts_ms) / 1000:.0f} s old)"
    if code == TOO_DIRTY and workload.max_carbon_gco2_kwh is not None:
        return f"carbon {judged.carbon[i]:.0f} g/kWh above max {workload.max_carbon_gco2_kwh:.0f}"
    if code == OVER_BUDGET and workload.budget_eur is not None:
        return f"cost {judged.price[i] * workload.expected_hours:.2f} EUR above budget {workload.budget_eur:.2f}"
    if code == SPLIT:
        return f"GPU split into {sum(c for _p, c in view.mig_used)} MIG slice(s)"
    if code == NO_VRAM:
        return f"needs {workload.vram_mb} MiB VRAM, {view.vram_free_mb} free"
    if code == TOO_HOT_FOR_MIG:
        return f"utilisation {view.util_pct:.0f}% too high to offer slices"
    if code == NO_SLICE:
        return f"no free MIG slice holds {workload.vram_mb} MiB"
    return REASONS[code]


def _candidates(
    shown: np.ndarray, judged: _Judged, fleet: Fleet, zones: _Zones, workload: WorkloadSpec, now_ms: int
) -> tuple[Candidate, ...]:
    """The reported rows as candidates (values leave numpy once, as Python lists)."""
    tier, why = judged.tier[shown].tolist(), judged.why[shown].tolist()
    score, parts = judged.score[shown].tolist(), judged.parts[shown].tolist()
    slice_of = judged.slice_of[shown].tolist()
    carbon, price = judged.carbon[shown].tolist(), judged.price[shown].tolist()
    out = []
    for k, i in enumerate(shown.tolist()):
        view = fleet.views[judged.rows[i]]
        has_zone, eligible = tier[k] != 0, why[k] == 0
        profile, fraction = judged.slices[slice_of[k]] if slice_of[k] >= 0 else (None, 1.0)
        carbon_part, price_part, utilisation_part = parts[k] if eligible else (None, None, None)
        out.append(
            Candidate(
                node_id=view.node_id,
                zone=view.zone,
                node_type=view.node_type,
                tier=tier[k] if has_zone else None,
                eligible=eligible,
                excluded_reason=None if eligible else _reason_text(why[k], i, judged, fleet, zones, workload, now_ms),
                score=score[k] if eligible else None,
                carbon_part=carbon_part,
                price_part=price_part,
                utilisation_part=utilisation_part,
                carbon_gco2_per_kwh=carbon[k] if has_zone else None,
                price_eur_per_gpu_hour=price[k] if has_zone else None,
                utilisation_pct=view.util_pct,
                mig_profile=profile,
                compute_fraction=round(fraction, 6),
            )
        )
    return tuple(out)


def route(
    workload: WorkloadSpec,
    nodes: Fleet | Iterable[NodeView],
    zones: Mapping[str, ZoneView],
    now_ms: int,
    scoring: ScoringSettings,
    pricing: PricingSettings,
    demand: float = 1.0,
    migration: MigrationSettings | None = None,
    *,
    keep: int | None = None,
    gpu_model: str | None = None,
    exclude_node_id: str | None = None,
) -> Decision:
    """Choose a node for ``workload``: strict tier priority, composite score inside a tier, node id on ties. A
    whole idle GPU first; when none fits and ``migration`` settings are given, a MIG slice by the same rules. With
    ``spare_compliant_nodes``, work that is not green-only takes a non-compliant node no dirtier than the cleanest
    compliant one before the tiers' compliant ones (kept for the green-only work only they may take).

    ``keep`` bounds the alternatives reported: the ``keep`` best eligible nodes (ranked) and the first ``keep``
    excluded ones (by node id), with every exclusion counted by reason; None reports every node, in node-id order.
    ``gpu_model`` and ``exclude_node_id`` narrow the nodes considered (a move keeps its GPU model).
    """
    fleet = Fleet.of(nodes)
    rows = np.arange(len(fleet))
    if gpu_model is not None and len(rows):
        code = fleet.gpu_models.get(gpu_model, -1)
        rows = rows[fleet.column("gpu_model")[rows] == code]
    if exclude_node_id is not None and (row := fleet.rows.get(exclude_node_id)) is not None:
        rows = rows[rows != row]
    zone_arrays = _Zones(fleet, zones, scoring)
    judged = _judge(workload, fleet, rows, zone_arrays, now_ms, scoring, pricing, demand, migration)

    id_rank = fleet.id_rank()[rows]
    eligible = np.flatnonzero(judged.why == 0)
    ranked = eligible[np.lexsort((id_rank[eligible], judged.score[eligible], judged.rank[eligible]))]
    excluded = np.flatnonzero(judged.why != 0)
    excluded = excluded[np.argsort(id_rank[excluded], kind="stable")]
    shown = np.argsort(id_rank, kind="stable") if keep is None else np.concatenate([ranked[:keep], excluded[:keep]])
    alternatives = _candidates(shown, judged, fleet, zone_arrays, workload, now_ms)
    counts = np.bincount(judged.why, minlength=len(REASONS) + 1).tolist()
    exclusions = tuple(sorted(((REASONS[c], n) for c, n in enumerate(counts) if c and n), key=lambda x: (-x[1], x[0])))
    in_use = np.bincount(fleet.column("zone")[rows], minlength=len(zone_arrays.views)).tolist()
    used = (z for z, n in zip(zone_arrays.views, in_use, strict=True) if n and z is not None)
    zones_used = tuple(sorted(used, key=lambda z: z.zone))
    if not len(ranked):
        reasons = sorted({c.excluded_reason or "" for c in alternatives})
        why = "; ".join(reasons[:4]) if reasons else "no nodes registered"
        return Decision(None, alternatives, f"no node fits: {why}", zones_used, len(rows), len(eligible), exclusions)
    best = _candidates(ranked[:1], judged, fleet, zone_arrays, workload, now_ms)[0]
    where = f"MIG slice {best.mig_profile} of " if best.mig_profile else ""
    # ranked ahead of its tier: a non-compliant node taken before a compliant one
    spared = "compliant nodes spared for green-only work; " if judged.rank[ranked[0]] != judged.tier[ranked[0]] else ""
    reason = (
        f"{spared}{where}tier {best.tier} ({best.node_type}) in {best.zone}: score {best.score:.3f}, "
        f"{best.carbon_gco2_per_kwh:.0f} gCO2/kWh, {best.price_eur_per_gpu_hour:.2f} EUR/GPU-h; "
        f"{len(eligible)} of {len(rows)} nodes eligible"
    )
    return Decision(best, alternatives, reason, zones_used, len(rows), len(eligible), exclusions)
