"""The evaluation's policies over a historical grid, a fleet and a workload trace.

``toogreen`` and ``toogreen_no_reroute`` drive the router's own event handler (``toogreen.domain.router``: the
code the Faust agent runs) with the events a fleet would send back, and the forecasts the forecaster would have
issued (when deferral is on); ``carbon_agnostic`` and ``price_only`` are the baselines; ``oracle`` is the
hindsight lower bound, a min-cost flow over time slots (free preemption and migration).
Time advances in slots of the grid's resolution; a node runs one workload at a time.

Every policy does the same work: what misses its deadline still runs (the router's rejected workloads are
submitted again without a deadline or the green-only rule, as their owners would; the oracle runs its unmet work
late), so gCO2 compares like for like; what a policy fails counts in its deadline misses.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from toogreen.domain.fleet import Fleet
from toogreen.domain.forecast import Forecast
from toogreen.domain.kinds import NodeKind
from toogreen.domain.lifecycle import WorkloadState
from toogreen.domain.migration import checkpoint_gb, move_cost
from toogreen.domain.node_state import expected_free_ms
from toogreen.domain.placement import Placement
from toogreen.domain.pricing import base_price
from toogreen.domain.records import EventKind, NodeAction, NodeCommand, NodeHealth, WorkloadEvent
from toogreen.domain.router import NEEDS_VIEWS, handle_workload_event, retry_order, workload_event
from toogreen.domain.scoring import NON_COMPLIANT_TIER, tier_of
from toogreen.domain.views import NodeView, ZoneView
from toogreen.evaluation.forecasts import ScenarioForecasts
from toogreen.evaluation.inputs import HOUR_MS, FleetNode, GridSeries, TraceWorkload
from toogreen.settings import Settings
from toogreen.submission import submission_event

BUSY_UTIL_PCT = 90.0


@dataclass
class PolicyResult:
    gco2: float = 0.0
    eur: float = 0.0
    gpu_hours: float = 0.0
    kwh: float = 0.0
    deadline_misses: int = 0
    moves: int = 0
    # (zone, slot start ms, GPU-hours) of what ran where, for the plot
    usage: list[tuple[str, int, float]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "gco2": round(self.gco2, 3),
            "eur": round(self.eur, 2),
            "gpu_hours": round(self.gpu_hours, 3),
            "kwh": round(self.kwh, 3),
            "deadline_misses": self.deadline_misses,
            "moves": self.moves,
        }


@dataclass
class Scenario:
    grid: dict[str, GridSeries]
    fleet: list[FleetNode]
    workloads: list[TraceWorkload]
    start_ms: int
    end_ms: int
    settings: Settings
    seed: int

    @cached_property
    def slot_ms(self) -> int:
        return min(g.step_ms for g in self.grid.values())

    def zone_views(self, t: int) -> dict[str, ZoneView]:
        views = {}
        for zone, series in self.grid.items():
            p = series.at(t)
            views[zone] = ZoneView(zone, p.carbon_gco2_per_kwh, p.renewable_pct, p.price, False, 0.0, t, t)
        return views

    @cached_property
    def forecasts(self) -> ScenarioForecasts:
        """Each zone's forecasts from its own series, issued as the forecaster would (made once, shared)."""
        # from the first slot to the last deadline: a workload without a deadline (or past it) is never deferred
        last = max([w.deadline_ms for w in self.workloads if w.deadline_ms is not None], default=self.end_ms)
        return ScenarioForecasts(self.grid, self.settings.forecast, self.start_ms, max(last, self.end_ms) + 1)

    def energy_price_eur_per_hour(self, node: FleetNode, t: int) -> float:
        price = self.grid[node.zone].at(t).price
        return 0.0 if price is None else price * node.power_w * node.pue / 1e6


class _Ledger:
    """Accounting of one policy: energy and carbon per slot, charges, deadlines."""

    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario
        self.result = PolicyResult()

    def run_slot(self, node: FleetNode, t: int, hours: float, eur_per_hour: float) -> None:
        kwh = node.power_w * node.pue * hours / 1000
        self.result.kwh += kwh
        self.result.gco2 += kwh * self.s.grid[node.zone].at(t).carbon_gco2_per_kwh
        self.result.gpu_hours += hours
        self.result.eur += eur_per_hour * hours
        self.result.usage.append((node.zone, t, hours))

    def finished(self, w: TraceWorkload, at_ms: int) -> None:
        if w.deadline_ms is not None and at_ms > w.deadline_ms:
            self.result.deadline_misses += 1


def _request(w: TraceWorkload) -> dict[str, Any]:
    return {
        "name": w.workload_id,
        "workload_type": "training",
        "image": "eval",
        "vram_mb": w.vram_mb,
        "expected_hours": w.duration_h,
        "priority": w.priority,
        "green_only": w.green_only,
        "deadline_ms": w.deadline_ms,
    }


def run_router_policy(s: Scenario, reroute: bool, skip_idle_retries: bool = True) -> PolicyResult:
    """Our router, event by event, as the agent runs it: the same event handler, and the same bookkeeping
    (:class:`~toogreen.domain.placement.Placement`) over plain dicts instead of tables. ``skip_idle_retries``:
    leave out the queue retries that cannot change anything (:meth:`_RouterReplay.retry_is_idle`; the results
    are the same either way, a test checks it)."""
    return _RouterReplay(s, skip_idle_retries).run(reroute)


class _RouterReplay:
    """The router fed the events a fleet would send back, slot by slot; a node obeys each command at once."""

    def __init__(self, s: Scenario, skip_idle_retries: bool = True) -> None:
        self.s = s
        self.ledger = _Ledger(s)
        self.by_id = {n.node_id: n for n in s.fleet}
        self.trace = {w.workload_id: w for w in s.workloads}
        self.books = Placement(workloads={}, holds={n.node_id: {} for n in s.fleet}, shares={}, running={}, queue={})
        self.remaining: dict[str, float] = {}  # hours of work left, for running workloads
        self.seq = 0
        self.resubmitted: list[TraceWorkload] = []  # rejected work, submitted again to run late
        self.forecasts = s.forecasts if s.settings.forecast.deferral.enabled else None
        self.forecasts_now: dict[str, Forecast] | None = None  # the latest per zone at the slot under way
        # the fleet as routing sees it, kept up to date (every node once per slot, a node again when its holds
        # change), instead of a new set of views for every event
        self.fleet = Fleet.of(self.view(n, s.start_ms) for n in s.fleet)
        # per VRAM request: the nodes big enough for it (the fleet is fixed)
        self.big_enough: dict[int, list[str]] = {}
        self.skip_idle_retries = skip_idle_retries
        self.retries_skipped = 0

    def run(self, reroute: bool) -> PolicyResult:
        s, remaining, ledger = self.s, self.remaining, self.ledger
        arrivals = deque(sorted(s.workloads, key=lambda w: (w.submitted_ms, w.workload_id)))
        t = s.start_ms
        horizon = s.end_ms + 7 * 24 * HOUR_MS  # let late work finish; what is still running then missed its deadline
        while t < horizon and (
            arrivals or self.resubmitted or self.books.queue or any(r > 0 for r in remaining.values())
        ):
            zones = s.zone_views(t)
            for n in s.fleet:
                self.fleet.upsert(self.view(n, t))
            if self.forecasts is not None:
                self.forecasts_now = self.forecasts.latest_at(t)
            for wid in retry_order(self.books.queue):  # what waits goes before what arrives, the most urgent first
                if self.skip_idle_retries and self.retry_is_idle(wid, t):
                    self.retries_skipped += 1
                    continue
                self.handle(self.event(wid, EventKind.RETRY, t), t, zones)
            while arrivals and arrivals[0].submitted_ms <= t:
                w = arrivals.popleft()
                self.handle(WorkloadEvent.from_wire(submission_event(_request(w), w.workload_id, t)), t, zones)
            while self.resubmitted:
                w = self.resubmitted.pop(0)
                self.handle(WorkloadEvent.from_wire(submission_event(_request(w), w.workload_id, t)), t, zones)
            if reroute:
                for wid in self.running_now():
                    progress = 100 * (1 - remaining[wid] / self.trace[wid].duration_h)
                    self.handle(self.event(wid, EventKind.PROGRESS, t, progress_pct=max(progress, 0.0)), t, zones)
                    self.handle(self.event(wid, EventKind.RESCORE, t), t, zones)
            self.run_slot(t, zones)
            t += s.slot_ms
        ledger.result.deadline_misses += sum(1 for r in remaining.values() if r > 0)  # never finished
        ledger.result.deadline_misses += sum(1 for w in s.workloads if w.workload_id not in remaining)  # never placed
        return ledger.result

    def run_slot(self, t: int, zones: dict[str, ZoneView]) -> None:
        """One slot of work for every running workload; the ones that finish in it complete."""
        states, remaining = self.books.workloads, self.remaining
        for wid in self.running_now():
            node = self.by_id[states[wid].node_id or ""]
            hours = min(self.s.slot_ms / HOUR_MS, remaining[wid])
            self.ledger.run_slot(node, t, hours, float(states[wid].price_eur_per_gpu_hour or 0.0))
            remaining[wid] -= hours
            if remaining[wid] <= 1e-9:
                remaining[wid] = 0.0
                done_at = t + int(hours * HOUR_MS)
                done = self.event(wid, EventKind.COMPLETED, done_at, node_id=node.node_id, progress_pct=100.0)
                self.handle(done, t, zones)
                self.ledger.finished(self.trace[wid], done_at)

    def running_now(self) -> list[str]:
        states = self.books.workloads
        return sorted(w for w, r in self.remaining.items() if r > 0 and states[w].state is WorkloadState.RUNNING)

    def view(self, n: FleetNode, t: int) -> NodeView:
        """The node as its telemetry would show it at ``t``: one workload at a time, busy while it holds one."""
        held = self.books.holds[n.node_id]
        return NodeView(
            n.node_id,
            n.node_type,
            n.gpu_model,
            n.zone,
            n.pue,
            n.vram_mb,
            n.vram_mb - sum(h.vram_mb for h in held.values()),
            BUSY_UTIL_PCT if held else 0.0,
            NodeHealth.HEALTHY,
            t,
            None,
            False,
            n.power_w,
            len(held),
            (),
            expected_free_ms=expected_free_ms(held.values()),
        )

    def retry_is_idle(self, wid: str, t: int) -> bool:
        """Whether a retry now can only leave the workload waiting, so the replay may skip it: every node big enough
        for it holds a workload (these nodes report no MIG slices, so the router finds no whole GPU and no slice
        either: BUSY or NO_VRAM on every node), and its deadline can still be met (else the router rejects it).
        A skipped retry would change nothing but the workload's list of applied event ids."""
        request = self.books.workloads[wid].need_request()
        if request.deadline_ms is not None and t + request.expected_hours * HOUR_MS > request.deadline_ms:
            return False
        vram = int(request.vram_mb)
        if vram not in self.big_enough:
            self.big_enough[vram] = [n.node_id for n in self.s.fleet if n.vram_mb >= vram]
        big = self.big_enough[vram]
        holds = self.books.holds
        return bool(big) and all(holds[node_id] for node_id in big)

    def event(self, wid: str, kind: EventKind, t: int, **fields: Any) -> WorkloadEvent:
        self.seq += 1
        return workload_event(wid, t, kind, f"eval:{self.seq}", **fields)

    def handle(self, ev: WorkloadEvent, t: int, zones: dict[str, ZoneView]) -> None:
        wid = ev.workload_id
        state = self.books.workloads.get(wid)
        forecasts = self.forecasts_now if ev.type in NEEDS_VIEWS else None
        result = handle_workload_event(ev, state, self.fleet, zones, self.s.settings, forecasts)
        for node_id in self.books.apply(wid, ev.ts_ms, result, lambda: (self.fleet, zones), t):
            self.fleet.upsert(self.view(self.by_id[node_id], t))
        state = self.books.workloads.get(wid)
        if state is not None and state.state is WorkloadState.REJECTED and wid not in self.remaining:
            self.ledger.result.deadline_misses += 1
            self.remaining[wid] = -1.0  # counted
            # the work is still done: submitted again without the deadline or the green-only rule it missed
            again = replace(self.trace[wid], workload_id=f"{wid}~late", deadline_ms=None, green_only=False)
            self.trace[again.workload_id] = again
            self.resubmitted.append(again)
        for out in result.emits:
            if isinstance(out.record, NodeCommand):  # the router applied its own events already
                self.obey(wid, out.record, t, zones)

    def obey(self, wid: str, cmd: NodeCommand, t: int, zones: dict[str, ZoneView]) -> None:
        """What the node does with the command, reported back as the node agent would."""
        remaining, duration_h = self.remaining, self.trace[wid].duration_h
        if cmd.action is NodeAction.START:
            remaining[wid] = duration_h
            self.handle(self.event(wid, EventKind.STARTED, t, node_id=cmd.node_id), t, zones)
        elif cmd.action is NodeAction.CHECKPOINT:
            progress = 100 * (1 - remaining[wid] / duration_h)
            checkpointed = self.event(wid, EventKind.CHECKPOINTED, t, node_id=cmd.node_id,
                                      checkpoint_uri=cmd.checkpoint_uri, progress_pct=progress)  # fmt: skip
            self.handle(checkpointed, t, zones)
        elif cmd.action is NodeAction.RESUME:
            move = self.books.workloads[wid].pending_move
            assert move is not None  # a resume is half of a move
            seconds = self.charge_move(self.by_id[move.origin_node], self.by_id[cmd.node_id], cmd, t)
            remaining[wid] += seconds / 3600  # the time the move costs
            if not move.rollback:
                self.ledger.result.moves += 1
            self.handle(self.event(wid, EventKind.RESUMED, t, node_id=cmd.node_id), t, zones)

    def charge_move(self, origin: FleetNode, target: FleetNode, cmd: NodeCommand, t: int) -> float:
        """Account the energy and carbon a move costs; the seconds it takes."""
        s = self.s
        cost = move_cost(
            checkpoint_gb(cmd.vram_mb, None, s.settings.migration),
            s.grid[origin.zone].at(t).carbon_gco2_per_kwh * origin.pue,
            s.grid[target.zone].at(t).carbon_gco2_per_kwh * target.pue,
            0.0,
            s.settings.migration,
        )
        self.ledger.result.gco2 += cost.gco2
        self.ledger.result.kwh += cost.kwh
        return cost.seconds


def run_fcfs_policy(s: Scenario, choose: str) -> PolicyResult:
    """First come, first served onto a free fitting node: drawn at random (``carbon_agnostic``), or the cheapest
    by the price table plus the energy price where the grid data has one (``price_only``)."""
    rng = random.Random(s.seed)
    ledger = _Ledger(s)
    arrivals = deque(sorted(s.workloads, key=lambda w: (w.submitted_ms, w.workload_id)))
    waiting: list[TraceWorkload] = []
    busy: dict[str, tuple[TraceWorkload, float]] = {}  # node -> (workload, hours left)
    slot_h = s.slot_ms / HOUR_MS
    t = s.start_ms
    horizon = s.end_ms + 7 * 24 * HOUR_MS
    while t < horizon and (arrivals or waiting or busy):
        while arrivals and arrivals[0].submitted_ms <= t:
            waiting.append(arrivals.popleft())
        still = []
        for w in waiting:
            free = [n for n in s.fleet if n.node_id not in busy and n.vram_mb >= w.vram_mb]
            if not free:
                still.append(w)
                continue
            if choose == "random":
                node = rng.choice(free)
            else:
                node = min(
                    free,
                    key=lambda n: (
                        base_price(n.gpu_model, s.settings.pricing) + s.energy_price_eur_per_hour(n, t),
                        n.node_id,
                    ),
                )
            busy[node.node_id] = (w, w.duration_h)
        waiting = still
        for node in s.fleet:
            if node.node_id not in busy:
                continue
            w, left = busy[node.node_id]
            hours = min(slot_h, left)
            ledger.run_slot(node, t, hours, base_price(node.gpu_model, s.settings.pricing))
            if left - hours <= 1e-9:
                del busy[node.node_id]
                ledger.finished(w, t + int(hours * HOUR_MS))
            else:
                busy[node.node_id] = (w, left - hours)
        t += s.slot_ms
    ledger.result.deadline_misses += len(busy) + len(waiting) + len(arrivals)
    return ledger.result


ORACLE_UNITS_PER_SLOT = 1000  # the flow's integer unit: a thousandth of a slot (a 2-decimal duration is whole units)
ORACLE_COST_PER_G = 1_000_000  # the flow's integer costs: µg of CO2 per unit (a rounding far below any choice)


def run_oracle(s: Scenario) -> PolicyResult:
    """Hindsight lower bound on the same work: a min-cost flow (OR-Tools' network simplex) that places every
    workload's hours over (node, slot) to minimise gCO2 under the same node capacities (one workload per node per
    slot), windows (submission to deadline), VRAM and green-only rules, with preemption and migration free, and no
    workload on two nodes in one slot: workload → (workload, slot) → (node, slot) → sink. It is the LP relaxation of
    that schedule (its constraint matrix is a network's, so the flow's optimum is the LP's), each workload needing
    exactly its hours (a slot may be partly used), so the oracle does the GPU-hours every other policy does.

    Work that cannot fit its window (a deadline miss) still runs, as it does under every other policy: each
    workload may send what cannot fit to the sink at a prohibitive cost (the fewest slots missed first), then a
    second flow places that on the capacity left over, from submission until two days past its deadline (until a
    week after the end where that is not enough), with the green-only rule lifted (a miss either way), minimising
    gCO2."""
    import numpy as np
    from ortools.graph.python import min_cost_flow

    slot_ms, slot_h = s.slot_ms, s.slot_ms / HOUR_MS
    first = s.start_ms
    last = max([w.deadline_ms for w in s.workloads if w.deadline_ms is not None], default=s.end_ms)
    n_slots = math.ceil((max(last, s.end_ms + 7 * 24 * HOUR_MS) - first) / slot_ms)
    units = ORACLE_UNITS_PER_SLOT
    zone_ci = {z: [g.at(first + k * slot_ms).carbon_gco2_per_kwh for k in range(n_slots)] for z, g in s.grid.items()}
    n_nodes, n_w = len(s.fleet), len(s.workloads)
    kwh_per_slot = np.array([n.power_w * n.pue * slot_h / 1000 for n in s.fleet])
    cost = kwh_per_slot[:, None] * np.array([zone_ci[n.zone] for n in s.fleet])  # gCO2 per (node, slot)
    unit_cost = np.rint(cost * ORACLE_COST_PER_G / units).astype(np.int64)
    demand = np.array([round(w.duration_h / slot_h * units) for w in s.workloads], dtype=np.int64)
    vram = np.array([n.vram_mb for n in s.fleet])
    # the green-only rule per (node, slot): the router's own tiers, once per (node type, zone) and slot
    green_ok = np.ones((n_nodes, n_slots), dtype=bool)
    if any(w.green_only for w in s.workloads):
        kinds = {(n.node_type, n.zone): np.ones(n_slots, dtype=bool) for n in s.fleet}
        for k in range(n_slots):
            zones = s.zone_views(first + k * slot_ms)
            for (kind, zone), row in kinds.items():
                view = NodeView("oracle", NodeKind(kind), "", zone, 1.0, 0, 0, 0.0, NodeHealth.HEALTHY, 0)
                row[k] = tier_of(view, zones[zone], s.settings.scoring) != NON_COMPLIANT_TIER
        for ni, node in enumerate(s.fleet):
            green_ok[ni] = kinds[(node.node_type, node.zone)]

    def window(w: TraceWorkload) -> tuple[int, int]:
        end = n_slots if w.deadline_ms is None else (w.deadline_ms - first) // slot_ms
        return max(0, math.ceil((w.submitted_ms - first) / slot_ms)), min(n_slots, end)

    def columns(chosen: list[int], extra_slots: int, green_rule: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(workload, node, slot) of every place a workload may run: its window (``extra_slots`` past it), the
        nodes with its VRAM, and (``green_rule``) only compliant ones for green-only work."""
        parts_w, parts_n, parts_k = [], [], []
        for wi in chosen:
            w = s.workloads[wi]
            lo, hi = window(w)
            hi = min(n_slots, hi + extra_slots)
            nodes = np.flatnonzero(vram >= w.vram_mb)
            if hi <= lo or not len(nodes):
                continue
            ks = np.arange(lo, hi)
            ok = np.ones((len(nodes), len(ks)), dtype=bool)
            if green_rule and w.green_only:
                ok = green_ok[np.ix_(nodes, ks)]
            ni, ki = np.nonzero(ok)
            parts_w.append(np.full(len(ni), wi, dtype=np.int64))
            parts_n.append(nodes[ni])
            parts_k.append(ks[ki])
        if not parts_w:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        return np.concatenate(parts_w), np.concatenate(parts_n), np.concatenate(parts_k)

    def solve(
        cols: tuple[np.ndarray, np.ndarray, np.ndarray], need: np.ndarray, node_free: np.ndarray, with_miss: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The min-cost flow of ``need`` units per workload over ``cols`` within ``node_free`` units per (node,
        slot); with ``with_miss``, what cannot fit goes unmet at a prohibitive cost. Units per column, and unmet
        units per workload."""
        cw, cn, ck = cols
        pair = cw * n_slots + ck  # one (workload, slot) node per pair used
        pairs, pair_of = np.unique(pair, return_inverse=True)
        n_pairs = len(pairs)
        pair_node = n_w + np.arange(n_pairs)
        slot_node = n_w + n_pairs + cn * n_slots + ck
        sink = n_w + n_pairs + n_nodes * n_slots
        used_slots = np.unique(cn * n_slots + ck)
        flow = min_cost_flow.SimpleMinCostFlow()
        # workload → (workload, slot) → (node, slot) → sink
        tails = [pairs // n_slots, pair_node[pair_of], n_w + n_pairs + used_slots]
        heads = [pair_node, slot_node, np.full(len(used_slots), sink)]
        caps = [np.full(n_pairs, units), np.full(len(cw), units), node_free.ravel()[used_slots]]
        costs = [np.zeros(n_pairs, dtype=np.int64), unit_cost[cn, ck], np.zeros(len(used_slots), dtype=np.int64)]
        if with_miss:
            # a unit unmet costs more than any schedule's carbon, so the fewest units are unmet; among workloads,
            # the longest is the cheapest to leave unmet (by a step above any carbon a unit's place can change),
            # so what cannot fit is concentrated on few workloads (each counts as one miss)
            step = 10 * int(unit_cost.max()) + 1
            rank = np.empty(n_w, dtype=np.int64)
            rank[np.lexsort((np.arange(n_w), -need))] = np.arange(n_w)
            tails.append(np.arange(n_w))
            heads.append(np.full(n_w, sink))
            caps.append(need)
            costs.append((n_w + 1) * step + rank * step)
        flow.add_arcs_with_capacity_and_unit_cost(
            np.concatenate(tails), np.concatenate(heads), np.concatenate(caps).astype(np.int64), np.concatenate(costs)
        )
        flow.set_nodes_supplies(np.concatenate([np.arange(n_w), [sink]]), np.concatenate([need, [-int(need.sum())]]))
        status = flow.solve()
        if status != flow.OPTIMAL:
            raise RuntimeError(f"oracle flow not solved: status {status}")
        flows = flow.flows(np.arange(flow.num_arcs()))
        x = flows[n_pairs : n_pairs + len(cw)]
        miss = flows[-n_w:] if with_miss else np.zeros(n_w, dtype=np.int64)
        return x, miss

    on_time = columns(list(range(n_w)), 0, True)
    x, miss = solve(on_time, demand, np.full((n_nodes, n_slots), units, dtype=np.int64), with_miss=True)
    Columns = tuple[np.ndarray, np.ndarray, np.ndarray]

    def shares(cols: Columns, x: np.ndarray) -> list[tuple[tuple[int, int, int], float]]:
        """The slot shares the flow gave each (workload, node, slot)."""
        return [((int(cols[0][i]), int(cols[1][i]), int(cols[2][i])), float(x[i] / units)) for i in np.flatnonzero(x)]

    placed = shares(on_time, x)
    missed = {wi: int(m) for wi, m in enumerate(miss) if m > 0}
    if missed:
        free = np.full((n_nodes, n_slots), units, dtype=np.int64)
        np.subtract.at(free, (on_time[1], on_time[2]), x)
        need = np.array([missed.get(wi, 0) for wi in range(n_w)], dtype=np.int64)
        try:  # up to two days past the deadline first (a small flow), the whole week when that is not enough
            late = columns(sorted(missed), int(48 * HOUR_MS // slot_ms), False)
            x2, _ = solve(late, need, free, False)
        except RuntimeError:
            late = columns(sorted(missed), n_slots, False)
            x2, _ = solve(late, need, free, False)
        placed += shares(late, x2)
    out = PolicyResult()
    per_w: dict[int, dict[int, tuple[float, int]]] = {}
    for (wi, ni, k), share in placed:
        node = s.fleet[ni]
        kwh = node.power_w * node.pue * slot_h / 1000 * share
        out.kwh += kwh
        out.gco2 += kwh * zone_ci[node.zone][k]
        out.gpu_hours += slot_h * share
        out.eur += base_price(node.gpu_model, s.settings.pricing) * slot_h * share
        out.usage.append((node.zone, first + k * slot_ms, slot_h * share))
        # node changes between consecutive slots of a workload (fractional schedules count their heaviest node)
        slots = per_w.setdefault(wi, {})
        if k not in slots or share > slots[k][0]:
            slots[k] = (share, ni)
    out.deadline_misses = len(missed)
    out.moves = sum(
        sum(1 for a, b in itertools.pairwise(seq) if a != b)
        for seq in ([v[1] for _k, v in sorted(slots.items())] for slots in per_w.values())
    )
    return out


POLICIES = ("toogreen", "toogreen_no_reroute", "carbon_agnostic", "price_only", "oracle")


def run_policy(s: Scenario, name: str) -> PolicyResult:
    if name == "toogreen":
        return run_router_policy(s, reroute=True)
    if name == "toogreen_no_reroute":
        return run_router_policy(s, reroute=False)
    if name == "carbon_agnostic":
        return run_fcfs_policy(s, "random")
    if name == "price_only":
        return run_fcfs_policy(s, "cheapest")
    if name == "oracle":
        return run_oracle(s)
    raise ValueError(f"unknown policy {name!r}: {', '.join(POLICIES)}")
