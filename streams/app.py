"""The Faust application: its broker settings, the topics it reads and writes, and its tables.

Topic values travel as raw bytes (tables keep JSON) and are decoded with the project's Avro codec inside each
agent, so that a record that fails to decode goes to the dead-letter topic instead of crashing the stream.
"""

from __future__ import annotations

import faust

from streams.transport import SCHEME
from toogreen.domain.windows import specs_from
from toogreen.settings import get_settings
from toogreen.topics import GRID_READINGS, NODE_REGISTRY, NODE_TELEMETRY, WORKLOAD_EVENTS

settings = get_settings()

app = faust.App(
    settings.worker.app_id,
    broker=f"{SCHEME}://{settings.bootstrap}",
    store="memory://",
    key_serializer="json",
    value_serializer="json",
    topic_partitions=settings.broker.topic_partitions,
    topic_replication_factor=settings.broker.replication_factor,
    broker_rebalance_timeout=settings.worker.rebalance_timeout_s,
    broker_session_timeout=settings.worker.session_timeout_s,
    broker_heartbeat_interval=settings.worker.heartbeat_interval_s,
    table_cleanup_interval=settings.worker.table_cleanup_interval_s,
    processing_guarantee="at_least_once",
    web_enabled=False,
    autodiscover=False,
)


def raw_topic(name: str) -> faust.TopicT:
    """A topic whose keys and values the agents see as the bytes on the wire."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


grid_topic = raw_topic(GRID_READINGS.name)
telemetry_topic = raw_topic(NODE_TELEMETRY.name)
registry_topic = raw_topic(NODE_REGISTRY.name)
workload_topic = raw_topic(WORKLOAD_EVENTS.name)

WINDOW_SPECS = specs_from(settings.windows)


def _table(name: str, *, global_: bool = False) -> faust.Table:
    factory = app.GlobalTable if global_ else app.Table
    return factory(name, default=None)


# Partitioned by zone: tumbling-window aggregates ("zone|tumbling|start") and each zone's bookkeeping.
zone_window_table = _table("zone-window-aggregates")
zone_meta_table = _table("zone-meta")
# Read by the router on every worker: the routing view of each zone and of each node.
zone_view_table = _table("zone-views", global_=True)
node_state_table = _table("node-state", global_=True)
# VRAM the router has reserved per node: {workload_id: vram_mb}.
node_reservation_table = _table("node-reservations", global_=True)
# Which workloads draw energy on each node now ({workload_id: share}), and what each has drawn (its intervals).
node_running_table = _table("node-running", global_=True)
workload_accrual_table = _table("workload-accruals", global_=True)
# Running workloads by id ({node_id, zone, carbon_gco2_per_kwh, last_rescore_ms}) for re-scoring, and the queue.
running_workload_table = _table("running-workloads", global_=True)
queued_workload_table = _table("queued-workloads", global_=True)
# Partitioned by workload id: each workload's lifecycle state.
workload_state_table = _table("workload-state")
