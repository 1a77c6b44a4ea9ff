"""Routing: hard rules (fit, freshness, green compliance, carbon, budget, deadline), tiers, the min-max
normalised composite score, and the decision with every alternative considered (SPEC §4).

The same inputs always give the same decision: candidates are ranked by (tier, score, node id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from toogreen.domain.mig import choose_profile, compute_fraction
from toogreen.domain.pricing import quote
from toogreen.settings import MigrationSettings, PricingSettings, ScoringSettings

MS_PER_HOUR = 3_600_000
NON_COMPLIANT_TIER = 4


@dataclass(frozen=True)
class ZoneView:
    """What routing needs to know of a zone now: its windowed values."""

    zone: str
    carbon_gco2_per_kwh: float
    renewable_pct: float | None
    price_eur_per_mwh: float | None
    surplus: bool
    surplus_strength: float
    window_start_ms: int
    last_ts_ms: int


@dataclass(frozen=True)
class NodeView:
    """What routing needs to know of a node now: registration plus rolled-up telemetry and reservations."""

    node_id: str
    node_type: str  # datacenter / recycler / gamer
    gpu_model: str
    zone: str
    pue: float
    vram_mb: int
    vram_free_mb: int
    util_pct: float
    health: str
    last_seen_ms: int
    declared_carbon_gco2_per_kwh: float | None = None
    mig_capable: bool = False
    max_power_w: float = 0.0
    whole_tenants: int = 0  # workloads holding the whole GPU
    mig_used: tuple[tuple[str, int], ...] = ()  # MIG slices held: (profile name, count)


@dataclass(frozen=True)
class WorkloadSpec:
    workload_id: str
    vram_mb: int
    expected_hours: float
    green_only: bool = False
    max_carbon_gco2_kwh: float | None = None
    budget_eur: float | None = None
    deadline_ms: int | None = None


@dataclass(frozen=True)
class Candidate:
    node_id: str
    zone: str
    node_type: str
    tier: int | None
    eligible: bool
    excluded_reason: str | None = None
    score: float | None = None
    carbon_part: float | None = None
    price_part: float | None = None
    utilisation_part: float | None = None
    carbon_gco2_per_kwh: float | None = None
    price_eur_per_gpu_hour: float | None = None
    utilisation_pct: float | None = None
    mig_profile: str | None = None
    compute_fraction: float = 1.0


@dataclass(frozen=True)
class Decision:
    chosen: Candidate | None
    alternatives: tuple[Candidate, ...]
    reason: str
    zones_used: tuple[ZoneView, ...] = field(default=())


def is_green_zone(zone: ZoneView, settings: ScoringSettings) -> bool:
    return zone.renewable_pct is not None and zone.renewable_pct >= settings.green_renewable_pct


def tier_of(node: NodeView, zone: ZoneView, settings: ScoringSettings) -> int:
    """1 energy recycler; 2 data centre in a surplus or green zone; 3 gamer in a green zone; 4 non-compliant."""
    if node.node_type == "recycler":
        return 1
    if node.node_type == "datacenter" and (zone.surplus or is_green_zone(zone, settings)):
        return 2
    if node.node_type == "gamer" and is_green_zone(zone, settings):
        return 3
    return NON_COMPLIANT_TIER


def node_carbon(node: NodeView, zone: ZoneView) -> float:
    """gCO2eq/kWh at the node: a recycler's declared source where it has one, else the zone's window × PUE."""
    if node.node_type == "recycler" and node.declared_carbon_gco2_per_kwh is not None:
        return node.declared_carbon_gco2_per_kwh * node.pue
    return zone.carbon_gco2_per_kwh * node.pue


def _exclusion(
    workload: WorkloadSpec,
    node: NodeView,
    zone: ZoneView | None,
    tier: int | None,
    carbon: float | None,
    price: float | None,
    now_ms: int,
    settings: ScoringSettings,
) -> str | None:
    if now_ms - node.last_seen_ms > settings.node_stale_after_s * 1000:
        return f"node telemetry stale ({(now_ms - node.last_seen_ms) / 1000:.0f} s old)"
    if node.health == "unhealthy":
        return "node unhealthy"
    if zone is None:
        return f"no grid data for zone {node.zone}"
    if now_ms - zone.last_ts_ms > settings.zone_stale_after_s * 1000:
        return f"zone {node.zone} readings stale ({(now_ms - zone.last_ts_ms) / 1000:.0f} s old)"
    if workload.green_only and tier == NON_COMPLIANT_TIER:
        return "green-only workload, node not compliant"
    if workload.max_carbon_gco2_kwh is not None and carbon is not None and carbon > workload.max_carbon_gco2_kwh:
        return f"carbon {carbon:.0f} g/kWh above max {workload.max_carbon_gco2_kwh:.0f}"
    if workload.budget_eur is not None and price is not None:
        cost = price * workload.expected_hours
        if cost > workload.budget_eur:
            return f"cost {cost:.2f} EUR above budget {workload.budget_eur:.2f}"
    if workload.deadline_ms is not None and now_ms + workload.expected_hours * MS_PER_HOUR > workload.deadline_ms:
        return "cannot finish before the deadline"
    return None


def _whole_gpu_misfit(workload: WorkloadSpec, node: NodeView) -> str | None:
    if node.whole_tenants:
        return "GPU busy with a whole-GPU workload"
    if node.mig_used:
        return f"GPU split into {sum(c for _p, c in node.mig_used)} MIG slice(s)"
    if node.vram_free_mb < workload.vram_mb:
        return f"needs {workload.vram_mb} MiB VRAM, {node.vram_free_mb} free"
    return None


def _slice_misfit(
    workload: WorkloadSpec, node: NodeView, migration: MigrationSettings
) -> tuple[str | None, str | None, float]:
    """(reason it cannot take a slice, profile name, compute fraction)."""
    if not node.mig_capable:
        return "no MIG on this GPU", None, 1.0
    if node.whole_tenants:
        return "GPU busy with a whole-GPU workload", None, 1.0
    if node.util_pct >= migration.mig_max_util_pct:
        return f"utilisation {node.util_pct:.0f}% too high to offer slices", None, 1.0
    profile = choose_profile(node.gpu_model, workload.vram_mb, dict(node.mig_used))
    if profile is None:
        return f"no free MIG slice holds {workload.vram_mb} MiB", None, 1.0
    return None, profile.name, compute_fraction(node.gpu_model, profile)


def _normalise(values: list[float]) -> list[float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        return [0.0 for _ in values]
    return [(v - lo) / (hi - lo) for v in values]


# Reasons a whole GPU did not fit that a slice might not share: no idle GPU big enough, or over budget.
WHOLE_GPU_MISFITS = ("GPU busy", "GPU split", "needs ", "cost ")


def _consider(
    workload: WorkloadSpec,
    node: NodeView,
    zone: ZoneView | None,
    now_ms: int,
    scoring: ScoringSettings,
    pricing: PricingSettings,
    demand: float,
    migration: MigrationSettings | None = None,
    prices: dict[tuple[str, str, float], float] | None = None,
) -> Candidate:
    """One node as a candidate: a whole GPU, or (with ``migration`` settings) a MIG slice of it. ``prices``
    memoises the quote per GPU model, zone and slice within one decision."""
    tier = tier_of(node, zone, scoring) if zone else None
    carbon = node_carbon(node, zone) if zone else None
    profile, fraction = None, 1.0
    if migration is None:
        misfit = _whole_gpu_misfit(workload, node)
    else:
        misfit, profile, fraction = _slice_misfit(workload, node, migration)
    price = None
    if zone:
        memo_key = (node.gpu_model, zone.zone, fraction)
        price = prices.get(memo_key) if prices is not None else None
        if price is None:
            strength = zone.surplus_strength if zone.surplus else 0.0
            price = quote(node.gpu_model, zone.renewable_pct, strength, pricing, demand, fraction).eur_per_gpu_hour
            if prices is not None:
                prices[memo_key] = price
    why_not = _exclusion(workload, node, zone, tier, carbon, price, now_ms, scoring) or misfit
    return Candidate(
        node_id=node.node_id,
        zone=node.zone,
        node_type=node.node_type,
        tier=tier,
        eligible=why_not is None,
        excluded_reason=why_not,
        carbon_gco2_per_kwh=carbon,
        price_eur_per_gpu_hour=price,
        utilisation_pct=node.util_pct,
        mig_profile=profile,
        compute_fraction=round(fraction, 6),
    )


def route(
    workload: WorkloadSpec,
    nodes: Iterable[NodeView],
    zones: Mapping[str, ZoneView],
    now_ms: int,
    scoring: ScoringSettings,
    pricing: PricingSettings,
    demand: float = 1.0,
    migration: MigrationSettings | None = None,
) -> Decision:
    """Choose a node for ``workload``: strict tier priority, composite score inside a tier, node id on ties. A
    whole idle GPU first; when none fits and ``migration`` settings are given, a MIG slice by the same rules."""
    ordered = sorted(nodes, key=lambda n: n.node_id)
    prices: dict[tuple[str, str, float], float] = {}
    considered = [
        _consider(workload, node, zones.get(node.zone), now_ms, scoring, pricing, demand, prices=prices)
        for node in ordered
    ]
    if not any(c.eligible for c in considered) and migration is not None:
        # no whole GPU fits: a MIG slice, under the same rules
        considered = [
            _consider(workload, node, zones.get(node.zone), now_ms, scoring, pricing, demand, migration, prices)
            if c.excluded_reason and c.excluded_reason.startswith(WHOLE_GPU_MISFITS)
            else c
            for node, c in zip(ordered, considered, strict=True)
        ]

    scored = {c.node_id: c for c in considered}
    for tier in sorted({c.tier for c in considered if c.eligible and c.tier is not None}):
        group = [c for c in considered if c.eligible and c.tier == tier]
        carbon_n = _normalise([c.carbon_gco2_per_kwh or 0.0 for c in group])
        price_n = _normalise([c.price_eur_per_gpu_hour or 0.0 for c in group])
        util_n = _normalise([c.utilisation_pct or 0.0 for c in group])
        for c, cp, pp, up in zip(group, carbon_n, price_n, util_n, strict=True):
            score = scoring.carbon_weight * cp + scoring.price_weight * pp + scoring.utilisation_weight * up
            scored[c.node_id] = Candidate(
                **{
                    **c.__dict__,
                    "score": round(score, 6),
                    "carbon_part": round(cp, 6),
                    "price_part": round(pp, 6),
                    "utilisation_part": round(up, 6),
                }
            )
    alternatives = tuple(scored[c.node_id] for c in considered)
    eligible = sorted((c for c in alternatives if c.eligible), key=lambda c: (c.tier, c.score, c.node_id))
    zones_used = tuple(zones[z] for z in sorted({c.zone for c in alternatives if c.zone in zones}))
    if not eligible:
        reasons = sorted({c.excluded_reason or "" for c in alternatives})
        why = "; ".join(reasons[:4]) if reasons else "no nodes registered"
        return Decision(None, alternatives, f"no node fits: {why}", zones_used)
    best = eligible[0]
    where = f"MIG slice {best.mig_profile} of " if best.mig_profile else ""
    reason = (
        f"{where}tier {best.tier} ({best.node_type}) in {best.zone}: score {best.score:.3f}, "
        f"{best.carbon_gco2_per_kwh:.0f} gCO2/kWh, {best.price_eur_per_gpu_hour:.2f} EUR/GPU-h; "
        f"{len(eligible)} of {len(alternatives)} nodes eligible"
    )
    return Decision(best, alternatives, reason, zones_used)
