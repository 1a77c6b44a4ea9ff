"""The workload lifecycle as an explicit state machine: which event is legal in which state."""

from __future__ import annotations

from enum import StrEnum


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
TRANSITIONS: dict[str, tuple[tuple[WorkloadState | None, ...], WorkloadState]] = {
    "submitted": ((None,), WorkloadState.SUBMITTED),
    "queued": ((WorkloadState.SUBMITTED,), WorkloadState.QUEUED),
    "retry": ((WorkloadState.QUEUED,), WorkloadState.QUEUED),
    "routed": ((WorkloadState.SUBMITTED, WorkloadState.QUEUED), WorkloadState.ROUTED),
    "rejected": ((WorkloadState.SUBMITTED, WorkloadState.QUEUED), WorkloadState.REJECTED),
    "rescore": ((WorkloadState.RUNNING,), WorkloadState.RUNNING),
    "started": ((WorkloadState.ROUTED,), WorkloadState.RUNNING),
    "progress": ((WorkloadState.RUNNING,), WorkloadState.RUNNING),
    "checkpointed": ((WorkloadState.RUNNING,), WorkloadState.CHECKPOINTED),
    "migrating": ((WorkloadState.CHECKPOINTED,), WorkloadState.MIGRATING),
    "resumed": ((WorkloadState.MIGRATING,), WorkloadState.RUNNING),
    "completed": ((WorkloadState.RUNNING,), WorkloadState.COMPLETED),
    "failed": (_ACTIVE, WorkloadState.FAILED),
    "cancelled": ((WorkloadState.SUBMITTED, WorkloadState.QUEUED, *_ACTIVE), WorkloadState.CANCELLED),
}


class IllegalTransition(ValueError):
    """An event that is not legal in the workload's current state."""


def next_state(current: WorkloadState | None, event_type: str) -> WorkloadState:
    """The state after ``event_type``, or :class:`IllegalTransition` saying why not."""
    try:
        allowed, target = TRANSITIONS[event_type]
    except KeyError:
        raise IllegalTransition(f"unknown workload event type {event_type!r}") from None
    if current not in allowed:
        shown = "no state" if current is None else f"state {current.value!r}"
        legal = ", ".join("none" if s is None else s.value for s in allowed)
        raise IllegalTransition(f"event {event_type!r} is illegal in {shown} (legal in: {legal})")
    return target
