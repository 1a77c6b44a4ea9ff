"""The evaluation's policies over a historical grid, a fleet and a workload trace.

``toogreen`` and ``toogreen_no_reroute`` drive the router's own event handler (``toogreen.domain.router``: the
code the Faust agent runs) with the events a fleet would send back; ``carbon_agnostic`` and ``price_only`` are
the baselines; ``oracle`` is the hindsight lower bound, an LP over time slots (free preemption and migration).
Time advances in slots of the grid's resolution; a node runs one workload at a time.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from toogreen.domain.lifecycle import WorkloadState
from toogreen.domain.migration import checkpoint_gb, move_cost
from toogreen.domain.placement import Placement
from toogreen.domain.pricing import base_price
from toogreen.domain.records import EventKind, NodeAction, NodeCommand, NodeHealth, WorkloadEvent
from toogreen.domain.router import NEEDS_VIEWS, handle_workload_event, retry_order, workload_event
from toogreen.domain.scoring import tier_of
from toogreen.domain.views import NodeView, ZoneView
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

    @property
    def slot_ms(self) -> int:
        return min(g.step_ms for g in self.grid.values())

    def zone_views(self, t: int) -> dict[str, ZoneView]:
        views = {}
        for zone, series in self.grid.items():
            p = series.at(t)
            views[zone] = ZoneView(zone, p.carbon_gco2_per_kwh, p.renewable_pct, p.price, False, 0.0, t, t)
        return views

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
        if at_ms > w.deadline_ms:
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


def run_router_policy(s: Scenario, reroute: bool) -> PolicyResult:
    """Our router, event by event, as the agent runs it: the same event handler, and the same bookkeeping
    (:class:`~toogreen.domain.placement.Placement`) over plain dicts instead of tables."""
    return _RouterReplay(s).run(reroute)


class _RouterReplay:
    """The router fed the events a fleet would send back, slot by slot; a node obeys each command at once."""

    def __init__(self, s: Scenario) -> None:
        self.s = s
        self.ledger = _Ledger(s)
        self.by_id = {n.node_id: n for n in s.fleet}
        self.trace = {w.workload_id: w for w in s.workloads}
        self.books = Placement(workloads={}, holds={n.node_id: {} for n in s.fleet}, shares={}, running={}, queue={})
        self.remaining: dict[str, float] = {}  # hours of work left, for running workloads
        self.seq = 0

    def run(self, reroute: bool) -> PolicyResult:
        s, remaining, ledger = self.s, self.remaining, self.ledger
        arrivals = deque(sorted(s.workloads, key=lambda w: (w.submitted_ms, w.workload_id)))
        t = s.start_ms
        horizon = s.end_ms + 7 * 24 * HOUR_MS  # let late work finish; what is still running then missed its deadline
        while t < horizon and (arrivals or self.books.queue or any(r > 0 for r in remaining.values())):
            zones = s.zone_views(t)
            for wid in retry_order(self.books.queue):  # what waits goes before what arrives, the most urgent first
                self.handle(self.event(wid, EventKind.RETRY, t), t, zones)
            while arrivals and arrivals[0].submitted_ms <= t:
                w = arrivals.popleft()
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

    def views(self, t: int) -> list[NodeView]:
        holds = self.books.holds
        return [
            NodeView(
                n.node_id,
                n.node_type,
                n.gpu_model,
                n.zone,
                n.pue,
                n.vram_mb,
                n.vram_mb - sum(h.vram_mb for h in holds[n.node_id].values()),
                BUSY_UTIL_PCT if holds[n.node_id] else 0.0,
                NodeHealth.HEALTHY,
                t,
                None,
                False,
                n.power_w,
                len(holds[n.node_id]),
                (),
            )
            for n in self.s.fleet
        ]

    def event(self, wid: str, kind: EventKind, t: int, **fields: Any) -> WorkloadEvent:
        self.seq += 1
        return workload_event(wid, t, kind, f"eval:{self.seq}", **fields)

    def handle(self, ev: WorkloadEvent, t: int, zones: dict[str, ZoneView]) -> None:
        wid = ev.workload_id
        state = self.books.workloads.get(wid)
        nodes = self.views(t) if ev.type in NEEDS_VIEWS else []
        result = handle_workload_event(ev, state, nodes, zones, self.s.settings)
        self.books.apply(wid, ev.ts_ms, result, lambda: (self.views(t), zones), t)
        state = self.books.workloads.get(wid)
        if state is not None and state.state is WorkloadState.REJECTED and wid not in self.remaining:
            self.ledger.result.deadline_misses += 1
            self.remaining[wid] = -1.0  # counted
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


def run_oracle(s: Scenario) -> PolicyResult:
    """Hindsight lower bound: the LP over (workload, node, slot) that minimises gCO2 under the same node
    capacities (one workload per node per slot), windows (submission to deadline), VRAM and green-only rules,
    with preemption and migration free. Unmet work is a deadline miss at a prohibitive cost."""
    import numpy as np
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    slot_ms, slot_h = s.slot_ms, s.slot_ms / HOUR_MS
    first = s.start_ms
    n_slots = math.ceil((max(w.deadline_ms for w in s.workloads) - first) / slot_ms) + 1
    zone_ci = {z: [g.at(first + k * slot_ms).carbon_gco2_per_kwh for k in range(n_slots)] for z, g in s.grid.items()}
    zones_at = [s.zone_views(first + k * slot_ms) for k in range(n_slots)]
    cols_w, cols_n, cols_k, cost = [], [], [], []
    for wi, w in enumerate(s.workloads):
        k0 = max(0, math.ceil((w.submitted_ms - first) / slot_ms))
        k1 = min(n_slots, int((w.deadline_ms - first) // slot_ms))
        for ni, n in enumerate(s.fleet):
            if n.vram_mb < w.vram_mb:
                continue
            for k in range(k0, k1):
                if w.green_only:
                    view = NodeView(
                        n.node_id,
                        n.node_type,
                        n.gpu_model,
                        n.zone,
                        n.pue,
                        n.vram_mb,
                        n.vram_mb,
                        0.0,
                        NodeHealth.HEALTHY,
                        0,
                    )
                    if tier_of(view, zones_at[k][n.zone], s.settings.scoring) == 4:
                        continue
                cols_w.append(wi)
                cols_n.append(ni)
                cols_k.append(k)
                cost.append(n.power_w * n.pue * slot_h / 1000 * zone_ci[n.zone][k])
    n_x, n_w = len(cost), len(s.workloads)
    demand = np.array([math.ceil(w.duration_h / slot_h - 1e-9) for w in s.workloads], dtype=float)
    big = 10 * (max(cost) if cost else 1.0) * max(demand.max(), 1)
    c = np.concatenate([np.array(cost), np.full(n_w, big)])
    x_idx = np.arange(n_x)
    # each workload: its slots of work, or a miss
    a_eq = coo_matrix(
        (np.ones(n_x + n_w), (np.concatenate([cols_w, np.arange(n_w)]), np.concatenate([x_idx, n_x + np.arange(n_w)]))),
        shape=(n_w, n_x + n_w),
    )
    # each node and slot: at most one workload; each workload and slot: at most one node
    node_slot = np.array(cols_n) * n_slots + np.array(cols_k)
    work_slot = np.array(cols_w) * n_slots + np.array(cols_k)
    rows = np.concatenate([node_slot, len(s.fleet) * n_slots + work_slot])
    a_ub = coo_matrix(
        (np.ones(2 * n_x), (rows, np.concatenate([x_idx, x_idx]))), shape=((len(s.fleet) + n_w) * n_slots, n_x + n_w)
    )
    bounds = [(0, 1)] * n_x + [(0, None)] * n_w
    res = linprog(
        c, A_ub=a_ub.tocsr(), b_ub=np.ones(a_ub.shape[0]), A_eq=a_eq.tocsr(), b_eq=demand, bounds=bounds, method="highs"
    )
    if not res.success:
        raise RuntimeError(f"oracle LP failed: {res.message}")
    x, miss = res.x[:n_x], res.x[n_x:]
    out = PolicyResult()
    for i in np.nonzero(x > 1e-9)[0]:
        node = s.fleet[cols_n[i]]
        share = float(x[i])
        kwh = node.power_w * node.pue * slot_h / 1000 * share
        out.kwh += kwh
        out.gco2 += kwh * zone_ci[node.zone][cols_k[i]]
        out.gpu_hours += slot_h * share
        out.eur += base_price(node.gpu_model, s.settings.pricing) * slot_h * share
        out.usage.append((node.zone, first + cols_k[i] * slot_ms, slot_h * share))
    out.deadline_misses = int(np.sum(miss > 1e-6))
    # node changes between consecutive slots of a workload (fractional schedules count their heaviest node)
    per_w: dict[int, dict[int, tuple[float, int]]] = {}
    for i in np.nonzero(x > 1e-9)[0]:
        slots = per_w.setdefault(cols_w[i], {})
        if cols_k[i] not in slots or x[i] > slots[cols_k[i]][0]:
            slots[cols_k[i]] = (float(x[i]), cols_n[i])
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
