"""Per-node state rolled up from registrations and telemetry, and the view routing takes of it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from msgspec.structs import replace

from toogreen.domain.records import Hold, NodeRegistration, NodeState, NodeTelemetry, TelemetrySample
from toogreen.domain.views import NodeView

UTIL_SMOOTHING = 0.3  # weight of the newest sample in the rolling utilisation
_EMPTY = NodeState()


def apply_registration(state: NodeState | None, reg: NodeRegistration) -> NodeState:
    """Node state after a (re-)registration; telemetry already seen is kept, and so is a drain unless the
    registration is an operator's drain or undrain (``reg.drained`` set)."""
    base = state or _EMPTY
    return replace(base, registration=reg, drained=base.drained if reg.drained is None else reg.drained)


def apply_telemetry(state: NodeState | None, sample: TelemetrySample, ingested_ms: int | None = None) -> NodeState:
    """Node state after one telemetry sample, applied at ``ingested_ms`` (the worker's clock); older samples than
    the newest seen are ignored."""
    base = state or _EMPTY
    prev = base.telemetry
    if prev is not None and sample.ts_ms <= prev.last_seen_ms:
        return base
    util = sample.sm_util_pct
    rolling = util if prev is None else UTIL_SMOOTHING * util + (1 - UTIL_SMOOTHING) * prev.util_rolling_pct
    telemetry = NodeTelemetry(
        last_seen_ms=sample.ts_ms,
        util_pct=util,
        util_rolling_pct=round(rolling, 3),
        power_w=sample.power_w,
        energy_j=sample.energy_j,
        mem_used_mb=sample.mem_used_mb,
        mem_total_mb=sample.mem_total_mb,
        health=sample.health,
        mig_slices_free=sample.mig_slices_free,
        ingested_ms=ingested_ms,
    )
    return replace(base, telemetry=telemetry)


def merge_view(held: NodeState | None, incoming: NodeState) -> NodeState:
    """The placement owner's state of a node after a view of it came: the incoming one, but never with older
    telemetry than it holds. A telemetry partition read again from its last commit after a rebalance sends the
    views of its backlog once more, older than the ones the owner already applied."""
    if held is None or held.telemetry is None or incoming.telemetry is None:
        return incoming
    if incoming.telemetry.last_seen_ms < held.telemetry.last_seen_ms:
        return replace(incoming, telemetry=held.telemetry)
    return incoming


def expected_free_ms(holds: Iterable[Hold]) -> int | None:
    """When a node's holds are all expected to be done: the latest expected end (None: no holds, or one's end is
    not known)."""
    ends = [h.expected_end_ms for h in holds]
    if not ends or any(e is None for e in ends):
        return None
    return max(e for e in ends if e is not None)


def to_node_view(
    state: NodeState | Mapping[str, Any], reservations: Mapping[str, Hold] | Mapping[str, Mapping[str, Any]]
) -> NodeView | None:
    """What routing sees; None until the node has both registered and reported telemetry. ``reservations`` are
    the router's holds on the node by workload id. (A state or holds in their wire form are read as such.)"""
    if not isinstance(state, NodeState):
        state = NodeState.from_wire(state)
    reg, tel = state.registration, state.telemetry
    if reg is None or tel is None:
        return None
    holds = [h if isinstance(h, Hold) else Hold.from_wire(h) for h in reservations.values()]
    # The router's own reservations cover workloads the node has not yet reported in its memory figures.
    used = max(tel.mem_used_mb, sum(int(h.vram_mb) for h in holds))
    slices = Counter(h.mig_profile for h in holds if h.mig_profile)
    return NodeView(
        node_id=reg.node_id,
        node_type=reg.node_type,
        gpu_model=reg.gpu_model,
        zone=reg.zone,
        pue=reg.pue,
        vram_mb=reg.vram_mb,
        vram_free_mb=max(0, min(reg.vram_mb, tel.mem_total_mb) - used),
        util_pct=tel.util_rolling_pct,
        health=tel.health,
        last_seen_ms=tel.last_seen_ms,
        declared_carbon_gco2_per_kwh=reg.declared_carbon_gco2_per_kwh,
        mig_capable=bool(reg.mig_capable),
        max_power_w=float(reg.max_power_w or 0.0),
        whole_tenants=sum(1 for h in holds if not h.mig_profile),
        mig_used=tuple(sorted(slices.items())),
        drained=state.drained,
        expected_free_ms=expected_free_ms(holds),
    )
