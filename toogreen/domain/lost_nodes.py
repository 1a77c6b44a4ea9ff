"""Lost nodes: a node whose telemetry stopped for longer than ``node_lost_after_s`` is presumed lost by the
placement owner. What ran there is re-queued to resume from its last checkpoint (the one its last periodic
``progress`` event named; from scratch when it reported none) on another node through the router's normal
placement, and should the node come back it is told to ``stop`` those workloads, so none runs in two places."""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping

from msgspec.structs import replace

from toogreen.domain.lifecycle import WorkloadState
from toogreen.domain.records import (
    DecisionKind,
    EventKind,
    NodeAction,
    NodeCommand,
    NodeState,
    RunningEntry,
    Workload,
)
from toogreen.domain.router import (
    APPLIED_IDS_KEPT,
    Emit,
    RouterResult,
    decision_id_for,
    decision_record,
    workload_event,
)
from toogreen.domain.views import Decision
from toogreen.settings import LostNodeSettings
from toogreen.topics import ROUTING_DECISIONS, WORKLOAD_EVENTS

# a workload on a lost node is re-queued only from these states (a move under way has its own rollback)
_ON_THE_NODE = (WorkloadState.ROUTED, WorkloadState.RUNNING)


def silent_nodes(
    nodes: Mapping[str, NodeState],
    running: Mapping[str, RunningEntry],
    now_ms: int,
    settings: LostNodeSettings,
    presumed_lost: Container[str] = (),
) -> list[str]:
    """Nodes something runs on whose newest telemetry is older than ``node_lost_after_s`` (those already presumed
    lost left out), by id."""
    floor_ms = now_ms - settings.node_lost_after_s * 1000
    out = set()
    for entry in running.values():
        node_id = entry.node_id
        state = nodes.get(node_id)
        last_seen = state.telemetry.last_seen_ms if state is not None and state.telemetry is not None else None
        if node_id not in presumed_lost and (last_seen is None or last_seen < floor_ms):
            out.add(node_id)
    return sorted(out)


def requeue_off_lost_node(state: Workload, node_id: str, silent_s: float, now_ms: int) -> RouterResult:
    """Re-queue a workload that ran on the lost ``node_id``: off the node (its hold released), waiting in the queue
    to be placed again by a resume from its last checkpoint (from scratch when there is none, which the decision's
    reason says). Nothing changes for a workload elsewhere or in another state."""
    if state.node_id != node_id or state.state not in _ON_THE_NODE or state.pending_move is not None:
        return RouterResult(state=None)
    uri = state.last_checkpoint_uri
    whence = f"to resume from its last checkpoint {uri}" if uri else "from scratch: it reported no checkpoint"
    why = f"node {node_id} sent no telemetry for {silent_s:.0f} s and is presumed lost: re-queued {whence}"
    workload_id = state.workload_id
    state = replace(state, decisions=state.decisions + 1)
    decision_id = decision_id_for(workload_id, state.decisions, DecisionKind.QUEUED)
    record = decision_record(Decision(None, (), why), decision_id, workload_id, DecisionKind.QUEUED, now_ms,
                             reason=why, from_node_id=node_id)  # fmt: skip
    event_id = f"{decision_id}:lost"
    event = workload_event(workload_id, now_ms, EventKind.QUEUED, event_id, node_id=node_id, checkpoint_uri=uri,
                           decision_id=decision_id, reason=why)  # fmt: skip
    new = replace(
        state, state=WorkloadState.QUEUED, node_id=None, mig_profile=None, compute_fraction=1.0,
        price_eur_per_gpu_hour=None, resume_from=uri, lost_node=node_id,
        progress_pct=state.progress_pct if uri else 0.0,
        applied_event_ids=(*state.applied_event_ids, event_id)[-APPLIED_IDS_KEPT:],
    )  # fmt: skip
    return RouterResult(
        state=new,
        emits=[Emit(ROUTING_DECISIONS.name, workload_id, record), Emit(WORKLOAD_EVENTS.name, workload_id, event)],
        release=[node_id],
        stopped_on=node_id,
        queued=True,
    )


def stop_on_return(
    node_id: str, workloads: Iterable[Workload], now_ms: int
) -> tuple[list[NodeCommand], list[Workload]]:
    """A node presumed lost reports again: a ``stop`` for every workload re-queued off it that does not run there
    now, and those workloads with the lost node forgotten (each is told once)."""
    commands, forgotten = [], []
    for state in workloads:
        if state.lost_node != node_id:
            continue
        forgotten.append(replace(state, lost_node=None))
        if state.node_id == node_id:
            continue  # placed back on the same node meanwhile: it runs there by the router's own command
        commands.append(NodeCommand(command_id=f"lost:{node_id}:{state.workload_id}:{state.decisions}:stop",
                                    node_id=node_id, ts_ms=now_ms, action=NodeAction.STOP,
                                    workload_id=state.workload_id))  # fmt: skip
    return commands, forgotten


__all__ = ["requeue_off_lost_node", "silent_nodes", "stop_on_return"]
