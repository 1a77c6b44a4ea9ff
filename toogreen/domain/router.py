"""What the router does with one workload event: apply it to the workload's state machine and decide.

- a submission is placed (a whole GPU, else a MIG slice), queued until capacity or the grid allows, or rejected
  (its deadline cannot be met, or no node could ever hold it);
- a workload with slack may instead wait for a cleaner window the forecasts show (``deferred``: it waits in the
  queue, and every ``retry`` revisits the plan with the latest forecasts and fleet, ``toogreen.domain.deferral``);
- a queued workload is tried again on ``retry``;
- a running workload on a node the placement owner presumed lost (a ``rescore`` naming the node) is re-queued, to
  resume elsewhere from its last checkpoint; what that node reports for it afterwards is answered by a ``stop``;
- a running workload is re-scored on ``rescore`` and moved when worth it: checkpoint → checkpointed → stop the
  old node, resume on the new one from the checkpoint → resumed; a failed resume rolls back to the origin;
- every decision (initial, queued, deferred, rejected, reroute, no_move) is a ``routing.decisions`` record.

Returns the new :class:`~toogreen.domain.records.Workload` and what to emit and reserve; applying that to the
tables is :class:`toogreen.domain.placement.Placement`'s job, the agent only decodes and sends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from dataclasses import replace as replace_spec
from typing import Any

from msgspec.structs import replace

from toogreen.domain.deferral import DeferralDecision, decide_deferral
from toogreen.domain.fleet import Fleet
from toogreen.domain.forecast import Forecast
from toogreen.domain.kinds import NodeHealth
from toogreen.domain.lifecycle import TERMINAL, IllegalTransition, WorkloadState, next_state
from toogreen.domain.migration import MoveOption, checkpoint_gb, judge_move, move_cost
from toogreen.domain.records import (
    Alternative,
    DecisionKind,
    Deferral,
    EventKind,
    Exclusion,
    ForecastPointUsed,
    ForecastUsed,
    GridWindowUsed,
    Hold,
    NodeAction,
    NodeCommand,
    PendingMove,
    QueueEntry,
    Record,
    RoutingDecision,
    Workload,
    WorkloadEvent,
    WorkloadRequest,
)
from toogreen.domain.scoring import MS_PER_HOUR, NON_COMPLIANT_TIER, node_carbon, preference, route, tier_of
from toogreen.domain.views import Candidate, Decision, NodeView, WorkloadSpec, ZoneView
from toogreen.settings import Settings
from toogreen.topics import NODE_COMMANDS, ROUTING_DECISIONS, WORKLOAD_EVENTS

APPLIED_IDS_KEPT = 16
TYPICAL_LOAD = 0.8  # share of a GPU's power limit a running workload draws, for remaining-energy estimates
NEEDS_VIEWS = frozenset({EventKind.SUBMITTED, EventKind.RETRY, EventKind.RESCORE, EventKind.MOVE_REQUESTED})
# what a node agent reports about a workload it runs
NODE_REPORTED = frozenset({EventKind.STARTED, EventKind.PROGRESS, EventKind.CHECKPOINTED, EventKind.RESUMED,
                           EventKind.COMPLETED, EventKind.FAILED})  # fmt: skip


@dataclass(frozen=True)
class Emit:
    topic: str
    key: str
    record: Record


@dataclass
class RouterResult:
    state: Workload | None  # new workload state (None: unchanged)
    emits: list[Emit] = field(default_factory=list)
    reserve: list[tuple[str, Hold]] = field(default_factory=list)  # (node_id, what it now holds there)
    release: list[str] = field(default_factory=list)  # node ids this workload no longer holds
    rejected_reason: str | None = None  # the event is illegal: dead-letter it with this reason
    running_on: tuple[str, float] | None = None  # (node, compute fraction): it now draws energy there
    stopped_on: str | None = None  # ... and no longer here
    settle: bool = False  # the workload has ended: settle what it ran
    queued: bool | None = None  # True: now waits in the queue; False: left it


def decision_id_for(workload_id: str, sequence: int, kind: str) -> str:
    """Deterministic: a replay of the same events yields the same decision ids (and so no duplicate rows)."""
    return hashlib.sha256(f"{workload_id}|{sequence}|{kind}".encode()).hexdigest()[:20]


def workload_spec(workload_id: str, request: WorkloadRequest) -> WorkloadSpec:
    return WorkloadSpec(
        workload_id=workload_id,
        vram_mb=int(request.vram_mb),
        expected_hours=float(request.expected_hours),
        green_only=bool(request.green_only),
        max_carbon_gco2_kwh=request.max_carbon_gco2_kwh,
        budget_eur=request.budget_eur,
        deadline_ms=request.deadline_ms,
    )


def _alternative(c: Candidate) -> Alternative:
    return Alternative(
        node_id=c.node_id, zone=c.zone, node_type=c.node_type, tier=c.tier, eligible=c.eligible,
        excluded_reason=c.excluded_reason, score=c.score, carbon_part=c.carbon_part, price_part=c.price_part,
        utilisation_part=c.utilisation_part, carbon_gco2_per_kwh=c.carbon_gco2_per_kwh,
        price_eur_per_gpu_hour=c.price_eur_per_gpu_hour, utilisation_pct=c.utilisation_pct, mig_profile=c.mig_profile,
    )  # fmt: skip


def _window_used(z: ZoneView) -> GridWindowUsed:
    return GridWindowUsed(
        zone=z.zone, window_start_ms=z.window_start_ms, carbon_mean_gco2_per_kwh=z.carbon_gco2_per_kwh,
        renewable_mean_pct=z.renewable_pct, price_mean=z.price_eur_per_mwh, surplus=z.surplus,
    )  # fmt: skip


def _deferral_record(d: DeferralDecision | None) -> Deferral | None:
    if d is None:
        return None
    return Deferral(
        until_ms=d.until_ms, zone=d.zone, slack_h=d.slack_h, latest_start_ms=d.latest_start_ms,
        now_gco2_per_kwh=d.now.mean_gco2_per_kwh if d.now else None,
        window_gco2_per_kwh=d.window.mean_gco2_per_kwh if d.window else None,
        window_half_band_gco2_per_kwh=d.window.half_band_gco2_per_kwh if d.window else None,
        saving_gco2_per_kwh=d.saving_gco2_per_kwh, margin_gco2_per_kwh=d.margin_gco2_per_kwh,
        forecasts_used=tuple(ForecastUsed(zone=z, issued_ms=at, model=m) for z, at, m in d.forecasts_used),
        points=tuple(ForecastPointUsed(ts_ms=p.ts_ms, mean_gco2_per_kwh=p.mean_gco2_per_kwh,
                                       low_gco2_per_kwh=p.low_gco2_per_kwh, high_gco2_per_kwh=p.high_gco2_per_kwh)
                     for p in d.points_used),
    )  # fmt: skip


def decision_record(
    decision: Decision,
    decision_id: str,
    workload_id: str,
    kind: DecisionKind,
    ts_ms: int,
    *,
    reason: str | None = None,
    from_node_id: str | None = None,
    from_zone: str | None = None,
    score_gain: float | None = None,
    saved_gco2: float | None = None,
    move_cost_s: float | None = None,
    deferral: DeferralDecision | None = None,
) -> RoutingDecision:
    """The ``routing.decisions`` record of a decision, with its alternatives, exclusions and the windows used
    (and, where waiting was weighed, the wait and the forecast values used)."""
    chosen = decision.chosen if kind in (DecisionKind.INITIAL, DecisionKind.REROUTE) else None
    return RoutingDecision(
        decision_id=decision_id,
        workload_id=workload_id,
        ts_ms=ts_ms,
        type=kind,
        chosen_node_id=chosen.node_id if chosen else None,
        chosen_zone=chosen.zone if chosen else None,
        tier=chosen.tier if chosen else None,
        score=chosen.score if chosen else None,
        carbon_part=chosen.carbon_part if chosen else None,
        price_part=chosen.price_part if chosen else None,
        utilisation_part=chosen.utilisation_part if chosen else None,
        reason=decision.reason if reason is None else reason,
        mig_profile=chosen.mig_profile if chosen else None,
        from_node_id=from_node_id,
        from_zone=from_zone,
        score_gain=score_gain,
        saved_gco2=saved_gco2,
        move_cost_s=move_cost_s,
        alternatives=tuple(_alternative(c) for c in decision.alternatives),
        grid_windows=tuple(_window_used(z) for z in decision.zones_used),
        nodes_considered=decision.considered,
        nodes_eligible=decision.eligible,
        exclusions=tuple(Exclusion(reason=why, count=count) for why, count in decision.exclusions),
        deferral=_deferral_record(deferral),
    )


def queue_entry(state: Workload, queued_ms: int) -> QueueEntry:
    """What the queue keeps of a waiting workload: when it queued and by when it must be done."""
    request = state.request
    return QueueEntry(queued_ms=queued_ms, deadline_ms=request.deadline_ms if request else None,
                      green_only=bool(request and request.green_only))  # fmt: skip


def retry_order(queue: Mapping[str, QueueEntry]) -> list[str]:
    """Queued workloads, green-only ones first (only compliant nodes may take them: when one frees, what may go
    anywhere should not take it first), then the most urgent: earliest deadline, the longest waiting, by id."""
    return sorted(
        queue,
        key=lambda w: (not queue[w].green_only, queue[w].deadline_ms or float("inf"), queue[w].queued_ms, w),
    )


def _remember(state: Workload, *event_ids: str) -> Workload:
    return replace(state, applied_event_ids=(*state.applied_event_ids, *event_ids)[-APPLIED_IDS_KEPT:])


def workload_event(
    workload_id: str,
    ts: int,
    kind: EventKind,
    event_id: str,
    *,
    node_id: str | None = None,
    progress_pct: float | None = None,
    checkpoint_uri: str | None = None,
    decision_id: str | None = None,
    reason: str | None = None,
) -> WorkloadEvent:
    """A ``workload.events`` record (fields not given are null)."""
    return WorkloadEvent(
        event_id=event_id, workload_id=workload_id, ts_ms=ts, type=kind, node_id=node_id, progress_pct=progress_pct,
        checkpoint_uri=checkpoint_uri, decision_id=decision_id, reason=reason,
    )  # fmt: skip


def _hours_left(state: Workload) -> float:
    """The workload's expected hours still to run, from its request and its reported progress."""
    return float(state.need_request().expected_hours) * (1 - (state.progress_pct or 0.0) / 100)


def _command(node_id: str, action: NodeAction, workload_id: str, ts: int, decision_id: str, state: Workload,
             checkpoint_uri: str | None = None, mig_profile: str | None = None) -> NodeCommand:  # fmt: skip
    request = state.need_request()
    remaining = _hours_left(state)
    return NodeCommand(
        command_id=f"{decision_id}:{action}:{node_id}", node_id=node_id, ts_ms=ts, action=action,
        workload_id=workload_id, checkpoint_uri=checkpoint_uri, vram_mb=int(request.vram_mb),
        expected_hours=round(remaining, 6), image=request.image, command=request.command, mig_profile=mig_profile,
        decision_id=decision_id,
    )  # fmt: skip


def _expected_end_ms(state: Workload, now_ms: int) -> int:
    """When the workload is expected to be done if it runs from ``now_ms``: its expected hours left."""
    return now_ms + int(max(_hours_left(state), 0.0) * MS_PER_HOUR)


def _next_decision_id(state: Workload, kind: DecisionKind) -> tuple[Workload, str]:
    state = replace(state, decisions=state.decisions + 1)
    return state, decision_id_for(state.workload_id, state.decisions, kind)


def handle_workload_event(
    event: WorkloadEvent,
    state: Workload | None,
    nodes: Fleet | Iterable[NodeView],
    zones: Mapping[str, ZoneView],
    settings: Settings,
    forecasts: Mapping[str, Forecast] | None = None,
) -> RouterResult:
    """Apply ``event`` to the workload ``state``; place, queue, defer, reject, re-score or move as it requires
    (``forecasts``: the latest per zone, for deferral; none means it is never considered)."""
    if state is not None and event.event_id in state.applied_event_ids:
        return RouterResult(state=None)  # a redelivery, or an event this router emitted and already applied
    current = state.state if state is not None else None
    kind = event.type
    if state is not None and state.lost_node is not None and event.node_id == state.lost_node \
            and kind in NODE_REPORTED and state.node_id != event.node_id:  # fmt: skip
        return _told_to_stop(event, state, state.lost_node)
    if kind in (EventKind.RESCORE, EventKind.MOVE_REQUESTED) and (
        current is not WorkloadState.RUNNING or state is None or state.pending_move is not None
    ):
        return RouterResult(state=None)  # only a running workload that is not already moving is re-scored
    if kind is EventKind.RETRY and current is not WorkloadState.QUEUED:
        return RouterResult(state=None)  # placed meanwhile
    if (
        kind is EventKind.FAILED
        and state is not None
        and current is WorkloadState.MIGRATING
        and state.pending_move is not None
        and event.node_id == state.pending_move.target_node
    ):
        return _roll_back(event, state, state.pending_move)
    try:
        target = next_state(current, kind)
    except IllegalTransition as exc:
        return RouterResult(state=None, rejected_reason=f"workload {event.workload_id}: {exc}")

    new = _remember(replace(state, state=target) if state else Workload(workload_id=event.workload_id, state=target),
                    event.event_id)  # fmt: skip
    if kind is EventKind.SUBMITTED:
        new = replace(new, request=event.request, submitted_ms=event.ts_ms)
        return _place(event, new, Fleet.of(nodes), zones, settings, first=True, forecasts=forecasts)
    if kind is EventKind.RETRY:
        return _place(event, new, Fleet.of(nodes), zones, settings, first=False, forecasts=forecasts)
    if kind is EventKind.RESCORE and event.node_id is not None:
        return _requeue_off_lost_node(event, new)  # the placement owner presumed the node it names lost
    if kind is EventKind.RESCORE:
        return _rescore(event, new, Fleet.of(nodes), zones, settings)
    if kind is EventKind.MOVE_REQUESTED:
        return _operator_move(event, new, Fleet.of(nodes), zones, settings)
    if kind is EventKind.CHECKPOINTED and new.pending_move is not None:
        return _migrate(event, new, new.pending_move)
    return _follow(event, new, target)


def _follow(event: WorkloadEvent, new: Workload, target: WorkloadState) -> RouterResult:
    """An event a node reported (started, progress, checkpointed, resumed, completed, failed, cancelled)."""
    result = RouterResult(state=None)
    if event.progress_pct is not None:
        new = replace(new, progress_pct=event.progress_pct)
    if event.checkpoint_uri is not None:
        new = replace(new, last_checkpoint_uri=event.checkpoint_uri)
    if event.type in (EventKind.STARTED, EventKind.RESUMED):
        new = replace(new, resume_from=None)
    if event.type is EventKind.STARTED:
        new = replace(new, node_id=event.node_id or new.node_id)
        result.running_on = (new.node_id or "", new.compute_fraction)
    elif event.type is EventKind.RESUMED:
        move = new.pending_move
        new = replace(new, pending_move=None)
        if move is None:
            new = replace(new, node_id=event.node_id or new.node_id)
        else:
            new = replace(new, node_id=event.node_id or move.target_node or new.node_id,
                          mig_profile=move.target_profile, compute_fraction=move.target_fraction)  # fmt: skip
            if not move.rollback:
                new = replace(new, moves=new.moves + 1, last_move_ms=event.ts_ms,
                              price_eur_per_gpu_hour=move.target_price)  # fmt: skip
        result.running_on = (new.node_id or "", new.compute_fraction)
    elif event.type is EventKind.CHECKPOINTED:
        result.stopped_on = new.node_id
    if target in TERMINAL:
        if new.node_id:
            result.release.append(new.node_id)
            result.stopped_on = new.node_id
        result.settle = True
        result.queued = False
    result.state = new
    return result


def _requeue_off_lost_node(event: WorkloadEvent, state: Workload) -> RouterResult:
    """A ``rescore`` naming a node: the placement owner presumed that node lost (``toogreen.domain.lost_nodes``;
    the event's reason says why). A workload running there (not moving) cannot stay: back to the queue, its hold
    released, to be placed again by the router's normal placement elsewhere, by a resume from its last checkpoint
    (from scratch when it reported none, which the decision's reason says). Elsewhere by now: nothing changes."""
    node_id, now = event.node_id or "", event.ts_ms
    if state.node_id != node_id:
        return RouterResult(state=state)  # moved or re-placed since the owner looked
    uri = state.last_checkpoint_uri
    whence = f"to resume from its last checkpoint {uri}" if uri else "from scratch: it reported no checkpoint"
    why = f"{event.reason or f'node {node_id} is presumed lost'}: re-queued {whence}"
    workload_id = state.workload_id
    state, decision_id = _next_decision_id(state, DecisionKind.QUEUED)
    record = decision_record(Decision(None, (), why), decision_id, workload_id, DecisionKind.QUEUED, now,
                             reason=why, from_node_id=node_id)  # fmt: skip
    event_id = f"{decision_id}:lost"
    queued = workload_event(workload_id, now, EventKind.QUEUED, event_id, node_id=node_id, checkpoint_uri=uri,
                            decision_id=decision_id, reason=why)  # fmt: skip
    new = replace(
        _remember(state, event_id), state=WorkloadState.QUEUED, node_id=None, mig_profile=None, compute_fraction=1.0,
        price_eur_per_gpu_hour=None, resume_from=uri, lost_node=node_id,
        progress_pct=state.progress_pct if uri else 0.0,
    )  # fmt: skip
    return RouterResult(
        state=new,
        emits=[Emit(ROUTING_DECISIONS.name, workload_id, record), Emit(WORKLOAD_EVENTS.name, workload_id, queued)],
        release=[node_id],
        stopped_on=node_id,
        queued=True,
    )


def _told_to_stop(event: WorkloadEvent, state: Workload, node_id: str) -> RouterResult:
    """The node the workload was re-queued off reports it again (it was not dead after all): it is told to stop it,
    so the workload never runs in two places, and what it reported is not applied."""
    command = NodeCommand(command_id=f"lost:{state.workload_id}:{node_id}:{state.decisions}:stop", node_id=node_id,
                          ts_ms=event.ts_ms, action=NodeAction.STOP, workload_id=state.workload_id)  # fmt: skip
    return RouterResult(state=_remember(state, event.event_id), emits=[Emit(NODE_COMMANDS.name, node_id, command)])


def _place(
    event: WorkloadEvent,
    state: Workload,
    fleet: Fleet,
    zones: Mapping[str, ZoneView],
    settings: Settings,
    first: bool,
    forecasts: Mapping[str, Forecast] | None = None,
) -> RouterResult:
    workload_id, now = event.workload_id, event.ts_ms
    request = state.need_request()
    spec = workload_spec(workload_id, request)
    # never back onto the node it was re-queued off while that node is presumed lost
    decision = route(spec, fleet, zones, now, settings.scoring, settings.pricing, migration=settings.migration,
                     keep=settings.scoring.decision_alternatives, exclude_node_id=state.lost_node)  # fmt: skip
    result = RouterResult(state=state)
    if decision.chosen is None:
        never_fits = len(fleet) > 0 and fleet.max_vram_mb() < spec.vram_mb
        too_late = spec.deadline_ms is not None and now + spec.expected_hours * MS_PER_HOUR > spec.deadline_ms
        if never_fits or too_late:
            why = (
                f"no node has {spec.vram_mb} MiB of VRAM" if never_fits else "its deadline can no longer be met"
            ) + f" ({decision.reason})"
            result.state = _not_placed(result, state, decision, WorkloadState.REJECTED, now, why)
            result.queued = False
            return result
        if first:  # the first time only: the queue's retries are not decisions worth a record each
            why = f"waiting for capacity or a better grid: {decision.reason}"
            result.state = _not_placed(result, state, decision, WorkloadState.QUEUED, now, why)
        result.queued = True
        return result

    chosen = decision.chosen
    wait = None
    if forecasts and settings.forecast.deferral.enabled:
        wait = _deferral(spec, state, chosen, fleet, zones, forecasts, now, settings)
        if wait.defer:
            return _defer(result, state, decision, wait, now)
    if state.deferred_until_ms is not None:
        state = replace(state, deferred_since_ms=None, deferred_until_ms=None, deferred_zone=None)
    if state.resume_from is not None:  # re-placed off a lost node, from its last checkpoint: a move, not a new start
        state, decision_id = _next_decision_id(state, DecisionKind.REROUTE)
        why = f"resumed off {state.lost_node}, presumed lost, from its last checkpoint: {decision.reason}"
        result.emits.append(_decision_emit(decision, decision_id, workload_id, DecisionKind.REROUTE, now, reason=why,
                                           from_node_id=state.lost_node))  # fmt: skip
    else:
        state, decision_id = _next_decision_id(state, DecisionKind.INITIAL)
        result.emits.append(
            _decision_emit(decision, decision_id, workload_id, DecisionKind.INITIAL, now, deferral=wait)
        )
    event_id = f"{decision_id}:routed"
    result.emits.append(Emit(WORKLOAD_EVENTS.name, workload_id, workload_event(
        workload_id, now, EventKind.ROUTED, event_id, node_id=chosen.node_id, decision_id=decision_id,
        reason=decision.reason)))  # fmt: skip
    state = replace(
        state, state=WorkloadState.ROUTED, node_id=chosen.node_id, mig_profile=chosen.mig_profile,
        compute_fraction=chosen.compute_fraction, price_eur_per_gpu_hour=chosen.price_eur_per_gpu_hour,
    )  # fmt: skip
    # a workload re-queued off a lost node resumes from its last checkpoint
    action = NodeAction.START if state.resume_from is None else NodeAction.RESUME
    result.emits.append(Emit(NODE_COMMANDS.name, chosen.node_id, _command(
        chosen.node_id, action, workload_id, now, decision_id, state, checkpoint_uri=state.resume_from,
        mig_profile=chosen.mig_profile)))  # fmt: skip
    result.state = _remember(state, event_id)
    result.reserve.append((chosen.node_id, Hold(vram_mb=int(request.vram_mb), mig_profile=chosen.mig_profile,
                                                expected_end_ms=_expected_end_ms(state, now))))  # fmt: skip
    result.queued = False
    return result


def _deferral(
    spec: WorkloadSpec,
    state: Workload,
    chosen: Candidate,
    fleet: Fleet,
    zones: Mapping[str, ZoneView],
    forecasts: Mapping[str, Forecast],
    now: int,
    settings: Settings,
) -> DeferralDecision:
    """Whether to wait instead of taking ``chosen``: windows are looked for in the zones with a node the workload
    fits at ``chosen``'s tier or better now (a zone the tiers would never pick it for is no window for it), each from
    the time such a node there is free (now, or the expected end of what it holds: :func:`available_from_ms`)."""
    here = zones[chosen.zone]
    available = available_from_ms(spec, chosen, fleet, zones, now, settings)
    return decide_deferral(now, spec.expected_hours, spec.deadline_ms, chosen.zone, here.carbon_gco2_per_kwh,
                           forecasts, sorted(available), settings.forecast.deferral, spec.green_only,
                           state.deferred_since_ms, state.deferred_until_ms, available,
                           state.deferred_zone)  # fmt: skip


def available_from_ms(
    spec: WorkloadSpec, chosen: Candidate, fleet: Fleet, zones: Mapping[str, ZoneView], now: int, settings: Settings
) -> dict[str, int]:
    """Per zone, the earliest a node there could take the workload at ``chosen``'s tier or better: now where one
    holds nothing (``chosen``'s zone always), else the expected end of what a big enough node holds (zones whose
    nodes' ends are not known are left out). Unhealthy and drained nodes never count."""
    tier_now = chosen.tier or NON_COMPLIANT_TIER
    out = {chosen.zone: now}
    for n in fleet:
        zone = zones.get(n.zone)
        if zone is None or n.vram_mb < spec.vram_mb or n.health == NodeHealth.UNHEALTHY or n.drained:
            continue
        if tier_of(n, zone, settings.scoring) > tier_now:
            continue
        if n.whole_tenants == 0 and not n.mig_used and n.vram_free_mb >= spec.vram_mb:
            free = now
        elif n.expected_free_ms is not None:
            free = max(now, n.expected_free_ms)
        else:
            continue
        if free < out.get(n.zone, free + 1):
            out[n.zone] = free
    return out


def _defer(result: RouterResult, state: Workload, decision: Decision, wait: DeferralDecision, now: int) -> RouterResult:
    """Wait in the queue for the window: a ``deferred`` decision when the plan is new or changed (a revisit that
    keeps it records nothing), and the ``queued`` event when it was not waiting yet."""
    workload_id = state.workload_id
    result.queued = True
    if state.deferred_until_ms == wait.until_ms and state.deferred_zone == wait.zone:
        result.state = state
        return result
    state, decision_id = _next_decision_id(state, DecisionKind.DEFERRED)
    result.emits.append(_decision_emit(decision, decision_id, workload_id, DecisionKind.DEFERRED, now,
                                       reason=wait.reason, deferral=wait))  # fmt: skip
    if state.state is not WorkloadState.QUEUED:
        event_id = f"{decision_id}:queued"
        result.emits.append(Emit(WORKLOAD_EVENTS.name, workload_id, workload_event(
            workload_id, now, EventKind.QUEUED, event_id, decision_id=decision_id, reason=wait.reason)))  # fmt: skip
        state = _remember(state, event_id)
    result.state = replace(state, state=WorkloadState.QUEUED, deferred_since_ms=state.deferred_since_ms or now,
                           deferred_until_ms=wait.until_ms, deferred_zone=wait.zone)  # fmt: skip
    return result


def _not_placed(
    result: RouterResult, state: Workload, decision: Decision, outcome: WorkloadState, now: int, why: str
) -> Workload:
    """Record a submission that was not placed (queued or rejected): the decision, its event; the new state."""
    workload_id, kind = state.workload_id, DecisionKind(outcome.value)
    state, decision_id = _next_decision_id(state, kind)
    result.emits.append(_decision_emit(decision, decision_id, workload_id, kind, now, reason=why))
    event_id = f"{decision_id}:{kind}"
    result.emits.append(Emit(WORKLOAD_EVENTS.name, workload_id, workload_event(
        workload_id, now, EventKind(kind), event_id, decision_id=decision_id, reason=why)))  # fmt: skip
    return _remember(replace(state, state=outcome), event_id)


def _decision_emit(
    decision: Decision, decision_id: str, workload_id: str, kind: DecisionKind, ts: int, **extra: Any
) -> Emit:
    return Emit(
        ROUTING_DECISIONS.name, workload_id, decision_record(decision, decision_id, workload_id, kind, ts, **extra)
    )


def _rescore(
    event: WorkloadEvent,
    state: Workload,
    fleet: Fleet,
    zones: Mapping[str, ZoneView],
    settings: Settings,
) -> RouterResult:
    """Re-score a running workload; move it if the best alternative is worth the move."""
    workload_id, now = event.workload_id, event.ts_ms
    result = RouterResult(state=state)
    here = fleet.get(state.node_id or "")
    here_zone = zones.get(here.zone) if here else None
    if here is None or here_zone is None:
        return result
    request = state.need_request()
    spec = workload_spec(workload_id, request)
    remaining_h = _hours_left(state)
    # the deadline held at placement
    spec = replace_spec(spec, expected_hours=max(remaining_h, 1e-6), deadline_ms=None)
    # a move never drops a tier; it keeps its GPU model only where ``keep_gpu_model`` says so (placement takes the
    # expected hours to hold on any GPU the workload fits, and so does a move by default)
    here_tier = tier_of(here, here_zone, settings.scoring)
    model = here.gpu_model if settings.migration.keep_gpu_model else None
    decision = route(spec, fleet, zones, now, settings.scoring, settings.pricing, migration=settings.migration,
                     keep=settings.scoring.decision_alternatives, gpu_model=model,
                     exclude_node_id=here.node_id)  # fmt: skip
    current_carbon = node_carbon(here, here_zone)
    # a move never goes to a less preferred tier (work that is not green-only may leave a compliant node, sparing it)
    if decision.chosen is None or preference(
        decision.chosen.tier or 99, spec.green_only, settings.scoring
    ) > preference(here_tier, spec.green_only, settings.scoring):
        return result  # nowhere as good to go: nothing to record
    alt = decision.chosen
    fraction = state.compute_fraction
    power_kw = (here.max_power_w or 400.0) * TYPICAL_LOAD * fraction / 1000
    remaining_kwh = power_kw * remaining_h  # at the GPU; node_carbon already carries the PUE
    ckpt = checkpoint_gb(spec.vram_mb, request.checkpoint_gb, settings.migration)
    cost = move_cost(ckpt, current_carbon, alt.carbon_gco2_per_kwh or 0.0, alt.price_eur_per_gpu_hour or 0.0,
                     settings.migration)  # fmt: skip
    since = None if state.last_move_ms is None else (now - state.last_move_ms) / 1000
    option = MoveOption(
        current_carbon=current_carbon, alternative_carbon=alt.carbon_gco2_per_kwh or 0.0, remaining_kwh=remaining_kwh,
        current_price=float(state.price_eur_per_gpu_hour or 0.0),
        alternative_price=alt.price_eur_per_gpu_hour or 0.0, remaining_hours=remaining_h,
    )  # fmt: skip
    verdict = judge_move(option, cost, state.moves, since, settings.migration)
    extra: dict[str, Any] = {"from_node_id": here.node_id, "from_zone": here.zone, "score_gain": round(verdict.gain, 6),
             "saved_gco2": round(verdict.saved_gco2, 6), "move_cost_s": round(cost.seconds, 3)}  # fmt: skip
    if not verdict.move:
        short = verdict.reason.split(" (")[0][:40]
        if state.last_no_move_reason != short:
            state, decision_id = _next_decision_id(replace(state, last_no_move_reason=short), DecisionKind.NO_MOVE)
            why = f"stays on {here.node_id}: {verdict.reason}"
            result.emits.append(
                _decision_emit(decision, decision_id, workload_id, DecisionKind.NO_MOVE, now, reason=why, **extra)
            )
            result.state = state
        return result
    why = f"move {here.node_id} ({here.zone}) → {alt.node_id} ({alt.zone}): {verdict.reason}"
    return _begin_move(result, state, decision, here, alt, why, extra, now)


def _begin_move(
    result: RouterResult,
    state: Workload,
    decision: Decision,
    here: NodeView,
    alt: Candidate,
    why: str,
    extra: dict[str, Any],
    now: int,
) -> RouterResult:
    """Record the reroute decision, ask the origin for a checkpoint, hold the target: the first half of a move."""
    workload_id, fraction = state.workload_id, state.compute_fraction
    spec = workload_spec(workload_id, state.need_request())
    state, decision_id = _next_decision_id(replace(state, last_no_move_reason=None), DecisionKind.REROUTE)
    result.emits.append(
        _decision_emit(decision, decision_id, workload_id, DecisionKind.REROUTE, now, reason=why, **extra)
    )
    uri = f"ckpt://{here.node_id}/{workload_id}/{decision_id}"
    result.emits.append(Emit(NODE_COMMANDS.name, here.node_id, _command(
        here.node_id, NodeAction.CHECKPOINT, workload_id, now, decision_id, state, checkpoint_uri=uri)))  # fmt: skip
    result.state = replace(state, pending_move=PendingMove(
        decision_id=decision_id, origin_node=here.node_id, origin_profile=state.mig_profile,
        origin_fraction=fraction, target_node=alt.node_id, target_profile=alt.mig_profile,
        target_fraction=alt.compute_fraction, target_price=alt.price_eur_per_gpu_hour, checkpoint_uri=uri,
    ))  # fmt: skip
    # the target is held from now, so no one else is placed there while the checkpoint is written
    result.reserve.append((alt.node_id, Hold(vram_mb=spec.vram_mb, mig_profile=alt.mig_profile,
                                             expected_end_ms=_expected_end_ms(state, now))))  # fmt: skip
    return result


def _operator_move(
    event: WorkloadEvent,
    state: Workload,
    fleet: Fleet,
    zones: Mapping[str, ZoneView],
    settings: Settings,
) -> RouterResult:
    """An operator's move (the admin API): to the node ``event.node_id`` names if it can take the workload, else
    (no node named) to the best other node of the same GPU model under the usual placement rules. Neither the gain
    threshold, the dwell time nor the move limit apply; the move is the same checkpoint → stop → resume."""
    workload_id, now = event.workload_id, event.ts_ms
    result = RouterResult(state=state)
    here = fleet.get(state.node_id or "")
    spec = workload_spec(workload_id, state.need_request())
    remaining_h = _hours_left(state)
    spec = replace_spec(spec, expected_hours=max(remaining_h, 1e-6), deadline_ms=None)
    wanted = event.node_id
    candidates = fleet if wanted is None else Fleet.of([n] if (n := fleet.get(wanted)) is not None else [])
    decision = route(spec, candidates, zones, now, settings.scoring, settings.pricing, migration=settings.migration,
                     keep=settings.scoring.decision_alternatives,
                     gpu_model=here.gpu_model if here is not None and wanted is None else None,
                     exclude_node_id=state.node_id)  # fmt: skip
    asked = f"operator move of {workload_id} from {state.node_id}" + (f" to {wanted}" if wanted else "")
    if here is None or decision.chosen is None or decision.chosen.node_id == state.node_id:
        if here is None:
            why = f"{asked} refused: its node {state.node_id} is not routable now"
        elif wanted is not None and fleet.get(wanted) is None:
            why = f"{asked} refused: no routable node {wanted!r}"
        else:
            why = f"{asked} refused: {decision.reason}"
        state, decision_id = _next_decision_id(state, DecisionKind.NO_MOVE)
        result.emits.append(_decision_emit(decision, decision_id, workload_id, DecisionKind.NO_MOVE, now, reason=why,
                                           from_node_id=state.node_id))  # fmt: skip
        result.state = state
        return result
    alt = decision.chosen
    why = f"{asked}: {alt.node_id} ({alt.zone}) chosen, {event.reason or 'by an operator'}"
    extra = {"from_node_id": here.node_id, "from_zone": here.zone}
    return _begin_move(result, state, decision, here, alt, why, extra, now)


def _migrate(event: WorkloadEvent, state: Workload, move: PendingMove) -> RouterResult:
    """Checkpointed for a move: stop the old node, resume on the new one from the checkpoint."""
    workload_id, now = event.workload_id, event.ts_ms
    uri = event.checkpoint_uri or move.checkpoint_uri
    move = replace(move, checkpoint_uri=uri)
    state = replace(state, pending_move=move)
    if event.progress_pct is not None:
        state = replace(state, progress_pct=event.progress_pct)
    result = RouterResult(state=None)
    event_id = f"{move.decision_id}:migrating"
    result.emits.append(Emit(WORKLOAD_EVENTS.name, workload_id, workload_event(
        workload_id, now, EventKind.MIGRATING, event_id, node_id=move.target_node, checkpoint_uri=uri,
        decision_id=move.decision_id)))  # fmt: skip
    result.emits.append(Emit(NODE_COMMANDS.name, move.origin_node, _command(
        move.origin_node, NodeAction.STOP, workload_id, now, move.decision_id, state)))  # fmt: skip
    result.emits.append(Emit(NODE_COMMANDS.name, move.target_node, _command(
        move.target_node, NodeAction.RESUME, workload_id, now, move.decision_id, state, checkpoint_uri=uri,
        mig_profile=move.target_profile)))  # fmt: skip
    result.state = _remember(replace(state, state=WorkloadState.MIGRATING), event_id)
    result.stopped_on = move.origin_node
    if move.origin_node != move.target_node:
        result.release.append(move.origin_node)
    return result


def _roll_back(event: WorkloadEvent, state: Workload, move: PendingMove) -> RouterResult:
    """The new node could not resume the workload: resume it where it came from, from the same checkpoint."""
    workload_id, now = event.workload_id, event.ts_ms
    state = _remember(state, event.event_id)
    origin = move.origin_node
    why = f"resume on {move.target_node} failed ({event.reason or 'no reason given'}): back to {origin}"
    state, decision_id = _next_decision_id(state, DecisionKind.REROUTE)
    empty = Decision(None, (), why)
    record = replace(decision_record(empty, decision_id, workload_id, DecisionKind.REROUTE, now, reason=why,
                                     from_node_id=move.target_node),
                     chosen_node_id=origin, mig_profile=move.origin_profile)  # fmt: skip
    result = RouterResult(state=None, emits=[Emit(ROUTING_DECISIONS.name, workload_id, record)])
    result.emits.append(Emit(NODE_COMMANDS.name, origin, _command(
        origin, NodeAction.RESUME, workload_id, now, decision_id, state, checkpoint_uri=move.checkpoint_uri,
        mig_profile=move.origin_profile)))  # fmt: skip
    result.state = replace(state, pending_move=replace(
        move, decision_id=decision_id, target_node=origin, target_profile=move.origin_profile,
        target_fraction=move.origin_fraction, rollback=True,
    ))  # fmt: skip
    result.release.append(move.target_node)
    result.reserve.append((origin, Hold(vram_mb=int(state.need_request().vram_mb), mig_profile=move.origin_profile,
                                        expected_end_ms=_expected_end_ms(state, now))))  # fmt: skip
    return result
