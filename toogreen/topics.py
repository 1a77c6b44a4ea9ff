"""The topics of the event log (SPEC §3) and which Avro schema each one carries: the one place for both."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    schema_file: str
    key_field: str
    # None: the configured number; 1 for the placement log, so that one worker owns every placement decision
    partitions: int | None = None


GRID_READINGS = TopicSpec("grid.readings", "grid_reading.avsc", "zone")
NODE_TELEMETRY = TopicSpec("node.telemetry", "node_telemetry.avsc", "node_id")
NODE_REGISTRY = TopicSpec("node.registry", "node_registry.avsc", "node_id")
# The placement log: every event that reads or changes shared capacity (submit, route, start, end, move, retry,
# rescore) is on its one partition, so the one worker that owns it makes every placement decision (issue 11).
WORKLOAD_EVENTS = TopicSpec("workload.events", "workload_event.avsc", "workload_id", partitions=1)
NODE_COMMANDS = TopicSpec("node.commands", "node_command.avsc", "node_id")
ROUTING_DECISIONS = TopicSpec("routing.decisions", "routing_decision.avsc", "workload_id")
SETTLEMENT_RECEIPTS = TopicSpec("settlement.receipts", "settlement_receipt.avsc", "workload_id")
BILLING_RECORDS = TopicSpec("billing.records", "billing_record.avsc", "workload_id")
DEAD_LETTERS = TopicSpec("dead.letters", "dead_letter.avsc", "source_topic")
# Derived by the worker: the event-time zone windows the sink stores in DuckDB `zone_windows`.
ZONE_WINDOWS = TopicSpec("zone.windows", "zone_window.avsc", "zone")

ALL_TOPICS: tuple[TopicSpec, ...] = (
    GRID_READINGS,
    NODE_TELEMETRY,
    NODE_REGISTRY,
    WORKLOAD_EVENTS,
    NODE_COMMANDS,
    ROUTING_DECISIONS,
    SETTLEMENT_RECEIPTS,
    BILLING_RECORDS,
    DEAD_LETTERS,
    ZONE_WINDOWS,
)
BY_NAME: dict[str, TopicSpec] = {t.name: t for t in ALL_TOPICS}
