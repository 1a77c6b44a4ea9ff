"""The value types that routing reads and produces: a zone's and a node's view now, a workload's request, and a
decision with its candidates. Plain frozen records at the bottom of the domain: everything else imports them,
they import nothing of the domain but its vocabularies (``kinds``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from toogreen.domain.kinds import NodeHealth, NodeKind


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
    node_type: NodeKind
    gpu_model: str
    zone: str
    pue: float
    vram_mb: int
    vram_free_mb: int
    util_pct: float
    health: NodeHealth
    last_seen_ms: int
    declared_carbon_gco2_per_kwh: float | None = None
    mig_capable: bool = False
    max_power_w: float = 0.0
    whole_tenants: int = 0  # workloads holding the whole GPU
    mig_used: tuple[tuple[str, int], ...] = ()  # MIG slices held: (profile name, count)
    drained: bool = False  # an operator drained it: routing places nothing new there
    # when what it holds is expected to be done (the latest expected end of its holds; None: holds nothing, or an
    # end is not known): the earliest it may take a workload that does not fit now
    expected_free_ms: int | None = None


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
    alternatives: tuple[Candidate, ...]  # the best eligible ones, ranked, then excluded ones in node-id order
    reason: str
    zones_used: tuple[ZoneView, ...] = field(default=())
    considered: int = 0  # nodes judged
    eligible: int = 0  # of which eligible
    exclusions: tuple[tuple[str, int], ...] = ()  # (why a node was excluded, how many were), most frequent first
