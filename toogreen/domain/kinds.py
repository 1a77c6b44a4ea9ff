"""The closed vocabularies of the event log, as enums: what a workload event says happened, what a node command
orders, who runs a node and how it is, what kind of routing decision was made. Each is the Avro enum of its schema
(a test holds them equal); they import nothing, so every other module of the domain can use them."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """What a ``workload.events`` record says happened (the Avro enum ``WorkloadEventType``)."""

    SUBMITTED = "submitted"
    ROUTED = "routed"
    STARTED = "started"
    PROGRESS = "progress"
    CHECKPOINTED = "checkpointed"
    MIGRATING = "migrating"
    RESUMED = "resumed"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    QUEUED = "queued"
    RETRY = "retry"
    RESCORE = "rescore"


class NodeAction(StrEnum):
    """What a ``node.commands`` record orders (the Avro enum ``NodeAction``)."""

    START = "start"
    CHECKPOINT = "checkpoint"
    STOP = "stop"
    RESUME = "resume"


class NodeKind(StrEnum):
    """Who runs a node (the Avro enum ``NodeType``)."""

    DATACENTER = "datacenter"
    RECYCLER = "recycler"
    GAMER = "gamer"


class NodeHealth(StrEnum):
    """How a node reports itself (the Avro enum ``NodeHealth``)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


class DecisionKind(StrEnum):
    """What a ``routing.decisions`` record decided (the Avro enum ``DecisionType``)."""

    INITIAL = "initial"
    REROUTE = "reroute"
    REJECTED = "rejected"
    QUEUED = "queued"
    NO_MOVE = "no_move"
