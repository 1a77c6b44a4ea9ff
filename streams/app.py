"""The Faust application: its broker settings, the topics it reads and writes, and its tables.

Topic values travel as raw bytes and are decoded with the project's Avro codec inside each agent, so that a record
that fails to decode goes to the dead-letter topic instead of crashing the stream. Tables hold typed records
(``toogreen.domain.records``); their changelogs carry each record's JSON wire form, through one codec per table.
"""

from __future__ import annotations

import json
from typing import Any

import faust
import msgspec
from faust.types import TableT

from streams import faust_private
from streams.faust_private import SCHEME
from toogreen.domain.records import (
    Accruals,
    Holds,
    NodeState,
    QueueEntry,
    RunningEntry,
    RunningShares,
    Workload,
    ZoneMeta,
)
from toogreen.domain.views import ZoneView
from toogreen.domain.windows import WindowAggregate, specs_from
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


def _table(name: str, value_type: Any, *, global_: bool = False) -> TableT:
    """A table whose values are ``value_type`` records; its changelog carries their JSON wire form."""
    table = (app.GlobalTable if global_ else app.Table)(name, default=None)
    encoder, decoder = msgspec.json.Encoder(), msgspec.json.Decoder(value_type)
    faust_private.use_value_codec(table, f"toogreen.{name}", faust_private.TableCodec(encoder.encode, decoder.decode))
    return table


def _window_table(name: str) -> TableT:
    """Window aggregates keep their own wire form (an empty measure's minimum is ``Infinity``, which stdlib JSON
    carries and msgspec does not)."""
    table = app.Table(name, default=None)
    codec = faust_private.TableCodec(
        lambda w: json.dumps(w.to_dict()).encode(), lambda s: WindowAggregate.from_dict(json.loads(s))
    )
    faust_private.use_value_codec(table, f"toogreen.{name}", codec)
    return table


# Partitioned by zone: tumbling-window aggregates ("zone|tumbling|start") and each zone's bookkeeping.
zone_window_table = _window_table("zone-window-aggregates")
zone_meta_table = _table("zone-meta", ZoneMeta)
# Read by the router on every worker: the routing view of each zone and of each node.
zone_view_table = _table("zone-views", ZoneView, global_=True)
node_state_table = _table("node-state", NodeState, global_=True)
# What the router has reserved on each node, by workload.
node_reservation_table = _table("node-reservations", Holds, global_=True)
# Which workloads draw energy on each node now, and what each has drawn (its intervals).
node_running_table = _table("node-running", RunningShares, global_=True)
workload_accrual_table = _table("workload-accruals", Accruals, global_=True)
# Running workloads by id (where, how clean) for re-scoring, and the queue.
running_workload_table = _table("running-workloads", RunningEntry, global_=True)
queued_workload_table = _table("queued-workloads", QueueEntry, global_=True)
# Partitioned by workload id: each workload's lifecycle state.
workload_state_table = _table("workload-state", Workload)
