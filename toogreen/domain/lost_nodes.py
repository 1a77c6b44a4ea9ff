"""Lost nodes: a node whose telemetry stopped for longer than ``node_lost_after_s`` is presumed lost by the
placement owner, on a timer (:func:`check_lost_nodes`).

- Each workload running there gets a ``rescore`` naming the node (:func:`lost_node_rescores`); the router
  (``toogreen.domain.router``) re-queues it off the node, to be placed elsewhere by its normal placement, by a
  resume from its last checkpoint (the one its last periodic ``progress`` event named; from scratch when it
  reported none, which the ``queued`` decision's reason says).
- Should the node report again (its telemetry is newer than when it was presumed lost), it is told to ``stop``
  each of those workloads (:func:`stop_on_return`), so none runs in two places. Independently, the router answers
  any event the lost node reports for such a workload with a ``stop`` and does not apply it.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field

from toogreen.domain.records import EventKind, NodeAction, NodeCommand, NodeState, RunningEntry, Workload, WorkloadEvent
from toogreen.domain.router import workload_event
from toogreen.settings import LostNodeSettings


@dataclass(frozen=True)
class PresumedLost:
    """A node the owner presumed lost: its newest telemetry then, and the workloads re-queued off it."""

    last_seen_ms: int | None
    workload_ids: tuple[str, ...]


@dataclass
class LostNodeCheck:
    """One tick of the check: what to send, and the nodes presumed lost after it."""

    rescores: list[WorkloadEvent] = field(default_factory=list)  # on ``workload.events``
    stops: list[NodeCommand] = field(default_factory=list)  # on ``node.commands``
    presumed: dict[str, PresumedLost] = field(default_factory=dict)
    returned: list[str] = field(default_factory=list)  # nodes that report again


def last_seen_ms(state: NodeState | None) -> int | None:
    return state.telemetry.last_seen_ms if state is not None and state.telemetry is not None else None


def heard_ms(state: NodeState | None, settings: LostNodeSettings) -> int | None:
    """The newest evidence that the node is alive: its newest sample, or, when the worker applied that sample more
    than ``replay_lag_s`` after it was taken, when it was applied. Such a sample came from a telemetry partition
    replaying a backlog (its owner changed in a rebalance and read again from the last commit): what the node sent
    since is in the log, not read yet. Without this, every node of one replaying partition looked silent against
    the others (the verifier: six nodes presumed lost at once, their workloads re-queued from scratch)."""
    tel = state.telemetry if state is not None else None
    if tel is None:
        return None
    if tel.ingested_ms is not None and tel.ingested_ms - tel.last_seen_ms > settings.replay_lag_s * 1000:
        return tel.ingested_ms
    return tel.last_seen_ms


def silent_nodes(
    nodes: Mapping[str, NodeState],
    running: Mapping[str, RunningEntry],
    now_ms: int,
    settings: LostNodeSettings,
    presumed_lost: Container[str] = (),
) -> list[str]:
    """Nodes something runs on last heard of (:func:`heard_ms`) more than ``node_lost_after_s`` before the newest
    sample any node sent (and before now), those already presumed lost left out, by id. Measured against the fleet,
    not only the clock: when the pipeline itself stalls (a broker down, the worker catching up) every node looks
    silent, and none is presumed lost for it; nor for one telemetry partition replaying a backlog."""
    heard = [seen for state in nodes.values() if (seen := last_seen_ms(state)) is not None]
    floor_ms = min(now_ms, max(heard, default=now_ms)) - settings.node_lost_after_s * 1000
    out = set()
    for entry in running.values():
        node_id = entry.node_id
        seen = heard_ms(nodes.get(node_id), settings)
        if node_id not in presumed_lost and (seen is None or seen < floor_ms):
            out.add(node_id)
    return sorted(out)


def lost_node_rescores(
    node_id: str, seen_ms: int | None, workload_ids: Iterable[str], now_ms: int
) -> list[WorkloadEvent]:
    """A ``rescore`` naming the lost node for each workload running there. Its id is deterministic (the node's
    last telemetry), so the same presumption sent again by a new owner is applied once."""
    silent = "never sent telemetry" if seen_ms is None else f"sent no telemetry for {(now_ms - seen_ms) / 1000:.0f} s"
    why = f"node {node_id} {silent} and is presumed lost"
    return [
        workload_event(wid, now_ms, EventKind.RESCORE, f"lost:{node_id}:{wid}:{seen_ms}", node_id=node_id, reason=why)
        for wid in sorted(workload_ids)
    ]


def stop_on_return(node_id: str, workloads: Iterable[Workload | None], now_ms: int) -> list[NodeCommand]:
    """A node presumed lost reports again: a ``stop`` for every workload re-queued off it that does not run there
    now (ids deterministic, so an agent that hears one twice obeys it once)."""
    stopped = [s.workload_id for s in workloads if s is not None and s.lost_node == node_id and s.node_id != node_id]
    return [_stop(node_id, wid, now_ms) for wid in stopped]


def _stop(node_id: str, workload_id: str, now_ms: int) -> NodeCommand:
    return NodeCommand(command_id=f"lost:{workload_id}:{node_id}:returned:stop", node_id=node_id, ts_ms=now_ms,
                       action=NodeAction.STOP, workload_id=workload_id)  # fmt: skip


def check_lost_nodes(
    nodes: Mapping[str, NodeState],
    running: Mapping[str, RunningEntry],
    workloads: Mapping[str, Workload],
    presumed: Mapping[str, PresumedLost],
    now_ms: int,
    settings: LostNodeSettings,
) -> LostNodeCheck:
    """One tick on the placement owner: nodes newly silent past the setting have their workloads re-queued (by
    ``rescore`` events the router applies); nodes presumed lost that report again are told to stop what was
    re-queued off them, and are no longer presumed lost."""
    out = LostNodeCheck(presumed=dict(presumed))
    for node_id, lost in presumed.items():
        seen = last_seen_ms(nodes.get(node_id))
        if seen is not None and (lost.last_seen_ms is None or seen > lost.last_seen_ms):
            out.stops += stop_on_return(node_id, (workloads.get(w) for w in lost.workload_ids), now_ms)
            out.returned.append(node_id)
            del out.presumed[node_id]
    for node_id in silent_nodes(nodes, running, now_ms, settings, presumed_lost=presumed):
        seen = last_seen_ms(nodes.get(node_id))
        on_it = [wid for wid, entry in running.items() if entry.node_id == node_id]
        out.rescores += lost_node_rescores(node_id, seen, on_it, now_ms)
        out.presumed[node_id] = PresumedLost(last_seen_ms=seen, workload_ids=tuple(sorted(on_it)))
    return out


__all__ = [
    "LostNodeCheck",
    "PresumedLost",
    "check_lost_nodes",
    "heard_ms",
    "lost_node_rescores",
    "silent_nodes",
    "stop_on_return",
]
