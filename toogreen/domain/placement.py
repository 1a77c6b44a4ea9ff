"""Where workloads are: the router's bookkeeping of holds, running shares, running entries and the queue, and the
one place a :class:`~toogreen.domain.router.RouterResult` is applied to them.

:class:`Placement` works over mutable mappings (table name → {key: record}): the Faust agent hands it its tables as
written through its checkpoint, the evaluation plain dicts, so both keep the same books the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass

from msgspec.structs import replace

from toogreen.domain.fleet import Fleet
from toogreen.domain.records import Hold, Holds, QueueEntry, RunningEntry, RunningShare, RunningShares, Workload
from toogreen.domain.router import RouterResult, queue_entry
from toogreen.domain.scoring import node_carbon
from toogreen.domain.views import NodeView, ZoneView

RoutingViews = Callable[[], tuple[Fleet | Iterable[NodeView], Mapping[str, ZoneView]]]


@dataclass
class Placement:
    workloads: MutableMapping[str, Workload]  # each workload's state, by id
    holds: MutableMapping[str, Holds]  # by node: what the router reserved there, by workload
    shares: MutableMapping[str, RunningShares]  # by node: who draws energy there now, by workload
    running: MutableMapping[str, RunningEntry]  # running workloads by id: where, and how clean that is
    queue: MutableMapping[str, QueueEntry]  # waiting workloads by id

    def reserve(self, node_id: str, workload_id: str, hold: Hold) -> None:
        self.holds[node_id] = {**(self.holds.get(node_id) or {}), workload_id: hold}

    def release(self, node_id: str, workload_id: str) -> bool:
        """Drop the workload's hold on the node; whether it had one."""
        held = dict(self.holds.get(node_id) or {})
        if held.pop(workload_id, None) is None:
            return False
        self.holds[node_id] = held
        return True

    def enqueue(self, workload_id: str, entry: QueueEntry) -> None:
        if self.queue.get(workload_id) is None:  # a retry keeps its place
            self.queue[workload_id] = entry

    def dequeue(self, workload_id: str) -> None:
        self.queue.pop(workload_id, None)

    def start(self, workload_id: str, node_id: str, share: RunningShare, entry: RunningEntry | None) -> None:
        """The workload draws energy on the node from now (``entry``: where it runs, None when the node or its
        zone is not known yet)."""
        self.shares[node_id] = {**(self.shares.get(node_id) or {}), workload_id: share}
        if entry is not None:
            self.running[workload_id] = entry

    def stop(self, workload_id: str, node_id: str, at_ms: int) -> None:
        """The workload no longer runs on the node from ``at_ms``: its share stays, marked stopped, until the node's
        partition handed over what it drew there up to then (:meth:`handed_over`)."""
        shares = dict(self.shares.get(node_id) or {})
        share = shares.get(workload_id)
        if share is not None and share.until_ms is None:
            shares[workload_id] = replace(share, until_ms=max(at_ms, share.since_ms))
            self.shares[node_id] = shares
        self.running.pop(workload_id, None)

    def handed_over(self, workload_id: str, node_id: str) -> None:
        """The node's partition handed over what the workload drew there: a stopped share is gone (one running
        there again is kept)."""
        shares = dict(self.shares.get(node_id) or {})
        share = shares.get(workload_id)
        if share is not None and share.until_ms is not None:
            del shares[workload_id]
            self.shares[node_id] = shares

    def is_repeat_hand_over(self, workload_id: str, node_id: str, held_from_node: bool, settled: bool) -> bool:
        """Whether a hand-over of what the workload drew on the node is one taken already: its share there is gone
        (handed over before) and the owner holds what it drew there (``held_from_node``), or the workload was
        settled. A node's partition can hand the same share over twice while the owner's word that it was taken
        travels back to it; taking the second (built from the samples the partition still had) would replace
        the first, or keep accruals of a workload settled already."""
        if (self.shares.get(node_id) or {}).get(workload_id) is not None:
            return False
        return held_from_node or settled

    def apply(
        self, workload_id: str, event_ts_ms: int, result: RouterResult, views: RoutingViews, now_ms: int
    ) -> set[str]:
        """Apply what the router decided for one event; the nodes whose holds changed. ``views`` gives the fleet
        and zones as routing sees them (asked only when a workload starts, to record how clean its node is)."""
        changed: set[str] = set()
        if result.state is not None:
            self.workloads[workload_id] = result.state
        for node_id, hold in result.reserve:
            self.reserve(node_id, workload_id, hold)
            changed.add(node_id)
        for node_id in result.release:
            if self.release(node_id, workload_id):
                changed.add(node_id)
        if result.stopped_on:
            self.stop(workload_id, result.stopped_on, event_ts_ms)
        if result.running_on:
            node_id, fraction = result.running_on
            state = self.workloads.get(workload_id)
            share = RunningShare(fraction=fraction if fraction < 1.0 else 0.0, since_ms=event_ts_ms,
                                 price_eur_per_gpu_hour=state.price_eur_per_gpu_hour if state else None)  # fmt: skip
            self.start(workload_id, node_id, share, self._entry(node_id, views, now_ms))
        if result.queued is True:
            state = self.workloads.get(workload_id)
            if state is not None:
                self.enqueue(workload_id, queue_entry(state, event_ts_ms))
        elif result.queued is False:
            self.dequeue(workload_id)
        return changed

    @staticmethod
    def _entry(node_id: str, views: RoutingViews, now_ms: int) -> RunningEntry | None:
        nodes, zones = views()
        node = Fleet.of(nodes).get(node_id)
        zone = zones.get(node.zone) if node else None
        if node is None or zone is None:
            return None
        return RunningEntry(
            node_id=node_id, zone=node.zone, carbon_gco2_per_kwh=node_carbon(node, zone), last_rescore_ms=now_ms
        )
