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
from streams.checkpoint import Outbox, Stamped
from streams.faust_private import SCHEME
from toogreen.domain.forecast import Forecast
from toogreen.domain.records import (
    Accruals,
    Holds,
    NodeAccruals,
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
from toogreen.topics import GRID_FORECASTS, GRID_READINGS, NODE_REGISTRY, NODE_TELEMETRY, WORKLOAD_EVENTS

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
forecast_topic = raw_topic(GRID_FORECASTS.name)

WINDOW_SPECS = specs_from(settings.windows)


def _table(
    name: str, value_type: Any, *, global_: bool = False, partitions: int | None = None, stamped: bool = False
) -> TableT:
    """A table whose values are ``value_type`` records; its changelog carries their JSON wire form. ``stamped``:
    each value carries the input offsets it applied (``streams.checkpoint.Stamped``)."""
    table = (app.GlobalTable if global_ else app.Table)(name, default=None, partitions=partitions)
    encoder, decoder = msgspec.json.Encoder(), msgspec.json.Decoder(Stamped[value_type] if stamped else value_type)
    faust_private.use_value_codec(table, f"toogreen.{name}", faust_private.TableCodec(encoder.encode, decoder.decode))
    return table


def _window_table(name: str) -> TableT:
    """Window aggregates keep their own wire form (an empty measure's minimum is ``Infinity``, which stdlib JSON
    carries and msgspec does not), stamped with the input offsets each applied."""
    table = app.Table(name, default=None)

    def dumps(stamped: Stamped[WindowAggregate]) -> bytes:
        return json.dumps({"value": stamped.value.to_dict(), "applied": stamped.applied}).encode()

    def loads(data: bytes) -> Stamped[WindowAggregate]:
        wire = json.loads(data)
        return Stamped(WindowAggregate.from_dict(wire["value"]), wire["applied"])

    codec = faust_private.TableCodec(dumps, loads)
    faust_private.use_value_codec(table, f"toogreen.{name}", codec)
    return table


def _internal_topic(name: str, partitions: int = 1) -> faust.TopicT:
    """A topic of the worker's own (named after the app, values in their JSON wire form): with one partition, how a
    change on an ingest partition reaches the placement owner; with as many as the ingest topics (co-partitioned
    with them, keyed alike), how the owner's word reaches each key's ingest partition."""
    return app.topic(
        f"{settings.worker.app_id}-{name}", partitions=partitions, internal=True, key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw",
    )  # fmt: skip


# Ownership (issue 11). Ingest scales over every partition: grid readings by zone, registrations and telemetry by
# node, each table written only from its own key's partition. Placement has one owner: workload.events has one
# partition, and every table the router reads or writes has one partition too, written only by the agents that
# consume the single-partition topics; Faust's assignor gives partition 0 of all of them to the same worker (they are
# co-partitioned), and its standby replica (table_standby_replicas) keeps another worker ready to take over. Node and
# zone view changes flow from ingest to the owner on single-partition topics; the energy a workload drew on a node is
# handed to the owner the same way once it stops there.
NODE_VIEWS_TOPIC = _internal_topic("node-views")
ZONE_VIEWS_TOPIC = _internal_topic("zone-views")
ACCRUALS_CLOSED_TOPIC = _internal_topic("accruals-closed")
# The owner's word on who runs on each node (the node's whole ``RunningShares``, latest wins), keyed by node like
# node.telemetry and with as many partitions, so each reaches the worker that holds the node's telemetry partition.
# (It was a global table: Faust applied what other workers read of its changelog only at their next rebalance, so
# the node partitions off the owner's worker accrued no energy for workloads that started since: in a verifier run
# 85 of 150 workloads got no receipt and no bill.)
NODE_SHARES_TOPIC = _internal_topic("node-shares", partitions=settings.broker.topic_partitions)
# Each zone's newest view, to every ingest partition (one copy per partition): the intensity a node's energy is
# accrued at. (Also a global table before, and as stale on the other workers.)
INGEST_ZONE_VIEWS_TOPIC = _internal_topic("ingest-zone-views", partitions=settings.broker.topic_partitions)
# Created before the worker starts (``toogreen worker``): a topic Faust creates as it starts can be missing from the
# metadata when the group is first assigned on a multi-broker cluster, and is then left without a consumer.
INTERNAL_TOPICS = {
    t.get_topic_name(): t.partitions or 1 for t in (NODE_VIEWS_TOPIC, ZONE_VIEWS_TOPIC, ACCRUALS_CLOSED_TOPIC,
                                                     NODE_SHARES_TOPIC, INGEST_ZONE_VIEWS_TOPIC)
}  # fmt: skip

# Ingest, partitioned by zone: tumbling-window aggregates ("zone|tumbling|start") and each zone's bookkeeping. Both
# stamped with the last reading each applied: a redelivered reading is folded in once (streams/checkpoint.py).
zone_window_table = _window_table("zone-window-aggregates")
zone_meta_table = _table("zone-meta", ZoneMeta, stamped=True)
# Ingest, partitioned by node: its registration and telemetry (stamped: a redelivered sample is applied once), and the
# energy each workload drew there (by workload).
node_state_table = _table("node-state", NodeState, stamped=True)
node_accrual_table = _table("node-accruals", NodeAccruals)
# Who runs on the node, as the owner last said (from NODE_SHARES_TOPIC): whom its energy is accrued for.
node_share_table = _table("node-shares", RunningShares)
# Every zone's newest view, on every ingest partition (from INGEST_ZONE_VIEWS_TOPIC): the carbon of what is accrued.
ingest_zone_view_table = _table("ingest-zone-views", ZoneView)

# Placement, one partition, written by the owner only.
# The routing view of each zone (ingest has its own copy, ingest_zone_view_table).
zone_view_table = _table("zone-views", ZoneView, partitions=1)
# Each node as the router sees it (from the node-views topic).
routing_node_table = _table("routing-nodes", NodeState, partitions=1)
# Read by the router on every worker: the latest intensity forecast of each zone (for deferral).
zone_forecast_table = _table("zone-forecasts", Forecast, global_=True)
# What the router has reserved on each node, by workload.
node_reservation_table = _table("node-reservations", Holds, partitions=1)
# Which workloads draw energy on each node now (the owner's books; each change goes to the node's ingest partition
# on NODE_SHARES_TOPIC).
node_running_table = _table("node-running", RunningShares, partitions=1)
# The intervals handed over by ingest for each workload, and ended workloads waiting for their last node's.
workload_accrual_table = _table("workload-accruals", Accruals, partitions=1)
pending_settlement_table = _table("pending-settlements", Workload, partitions=1)
# Running workloads by id (where, how clean) for re-scoring, and the queue.
running_workload_table = _table("running-workloads", RunningEntry, partitions=1)
queued_workload_table = _table("queued-workloads", QueueEntry, partitions=1)
# Each workload's lifecycle state.
workload_state_table = _table("workload-state", Workload, partitions=1)
# What the router's last events for each workload sent (its checkpoint's outbox): sent again when such an event is
# redelivered after its state went out but its effects may not have (streams/checkpoint.py).
workload_outbox_table = _table("workload-outbox", Outbox, partitions=1, stamped=True)
# What settling a workload sent (its receipt and billing record), kept the same way: a hand-over delivered again
# after the worker that settled it was killed finds the workload settled and changes nothing, and sends them again.
settlement_outbox_table = _table("settlement-outbox", Outbox, partitions=1, stamped=True)


def changelog_topics() -> dict[str, int]:
    """Every table's changelog topic and its partitions (all compacted, none deleting): created before the worker
    starts, like ``INTERNAL_TOPICS``. One Faust created itself as it started was missing from the metadata when the
    group was first assigned on a 3-broker cluster ("Ignoring missing topic"): the state records sent to it were
    never acked, and every run's effects waited behind them (8 workloads never routed, in a fresh-clone run)."""
    assert all(t.changelog_topic.compacting and not t.changelog_topic.deleting for t in app.tables.values())
    return {t.changelog_topic.get_topic_name(): t.partitions or settings.broker.topic_partitions
            for t in app.tables.values()}  # fmt: skip
