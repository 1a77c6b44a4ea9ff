"""The workload lifecycle as an explicit state machine: which event is legal in which state."""

from __future__ import annotations

from enum import StrEnum

from toogreen.domain.kinds import EventKind


class WorkloadState(StrEnum):
    SUBMITTED = "submitted"
    QUEUED = "queued"
    ROUTED = "routed"
    RUNNING = "running"
    CHECKPOINTED = "checkpointed"
    MIGRATING = "migrating"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    # Active when the broker's log it lived in was lost (a new log lifetime began): no event leads here, the sink
    # records it when it first reads the new log.
    LOST = "lost"


TERMINAL = frozenset(
    {WorkloadState.COMPLETED, WorkloadState.FAILED, WorkloadState.CANCELLED, WorkloadState.REJECTED, WorkloadState.LOST}
)
_ACTIVE = (WorkloadState.ROUTED, WorkloadState.RUNNING, WorkloadState.CHECKPOINTED, WorkloadState.MIGRATING)

# event type -> (states it may arrive in, state it leads to); None stands for "no state yet".
TRANSITIONS: dict[EventKind, tuple[tuple[WorkloadState | None, ...], WorkloadState]] = {
    EventKind.SUBMITTED: ((None,), WorkloadState.SUBMITTED),
    # from routed or running: re-queued off a node presumed lost (toogreen/domain/lost_nodes.py)
    EventKind.QUEUED: ((WorkloadState.SUBMITTED, WorkloadState.ROUTED, WorkloadState.RUNNING), WorkloadState.QUEUED),
    EventKind.RETRY: ((WorkloadState.QUEUED,), WorkloadState.QUEUED),
    EventKind.ROUTED: ((WorkloadState.SUBMITTED, WorkloadState.QUEUED), WorkloadState.ROUTED),
    EventKind.REJECTED: ((WorkloadState.SUBMITTED, WorkloadState.QUEUED), WorkloadState.REJECTED),
    EventKind.RESCORE: ((WorkloadState.RUNNING,), WorkloadState.RUNNING),
    EventKind.MOVE_REQUESTED: ((WorkloadState.RUNNING,), WorkloadState.RUNNING),
    EventKind.STARTED: ((WorkloadState.ROUTED,), WorkloadState.RUNNING),
    EventKind.PROGRESS: ((WorkloadState.RUNNING,), WorkloadState.RUNNING),
    EventKind.CHECKPOINTED: ((WorkloadState.RUNNING,), WorkloadState.CHECKPOINTED),
    EventKind.MIGRATING: ((WorkloadState.CHECKPOINTED,), WorkloadState.MIGRATING),
    # from routed: a workload re-queued off a lost node is placed by a resume from its last checkpoint
    EventKind.RESUMED: ((WorkloadState.MIGRATING, WorkloadState.ROUTED), WorkloadState.RUNNING),
    EventKind.COMPLETED: ((WorkloadState.RUNNING,), WorkloadState.COMPLETED),
    EventKind.FAILED: (_ACTIVE, WorkloadState.FAILED),
    EventKind.CANCELLED: ((WorkloadState.SUBMITTED, WorkloadState.QUEUED, *_ACTIVE), WorkloadState.CANCELLED),
}


class IllegalTransition(ValueError):
    """An event that is not legal in the workload's current state."""


def next_state(current: WorkloadState | None, event_type: EventKind | str) -> WorkloadState:
    """The state after ``event_type``, or :class:`IllegalTransition` saying why not."""
    try:
        kind = EventKind(event_type)
        allowed, target = TRANSITIONS[kind]
    except (ValueError, KeyError):
        raise IllegalTransition(f"unknown workload event type {str(event_type)!r}") from None
    if current not in allowed:
        shown = "no state" if current is None else f"state {current.value!r}"
        legal = ", ".join("none" if s is None else s.value for s in allowed)
        raise IllegalTransition(f"event {kind.value!r} is illegal in {shown} (legal in: {legal})")
    return target
