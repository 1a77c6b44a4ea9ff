"""The node agent's loop: register, publish telemetry, read this node's commands, report its workloads.

Commands: ``node.commands`` is keyed by node id and written by the Faust worker alone, whose aiokafka producer
puts a key on the partition the Java client's murmur2 hash gives. So the agent reads only that partition (no
consumer-group join, no rebalance when agents come and go) and skips the other nodes' commands that share it.
Its position is committed under its own group id
(``toogreen-node-agent-<node id>``) after each command is obeyed and its events are delivered: an agent that
restarts picks up where it left off, so a ``stop`` sent while it was away still reaches it. A first start begins
at the partition's end, fixed before the node registers, so no command for it can be missed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from connectors.node_agent.store import open_store
from connectors.node_agent.supervisor import Supervisor
from connectors.node_agent.telemetry import TelemetrySource
from toogreen.codec import DecodeError, dead_letter, decode
from toogreen.domain.zones import ZONES
from toogreen.kafka.producer import DeliveryStats, RecordProducer
from toogreen.settings import Settings
from toogreen.topics import DEAD_LETTERS, NODE_COMMANDS, NODE_REGISTRY, NODE_TELEMETRY, WORKLOAD_EVENTS

log = logging.getLogger(__name__)
# a workload's process is gone: the node's energy up to then is measured by a sample at once
EXITS = frozenset({"completed", "failed", "checkpointed"})


@dataclass(frozen=True)
class NodeIdentity:
    """What the node registers on ``node.registry``."""

    node_id: str
    provider: str
    node_type: str
    gpu_model: str
    vram_mb: int
    zone: str
    pue: float
    max_power_w: float
    mig_capable: bool = False
    lat: float | None = None
    lng: float | None = None
    wallet: str | None = None
    billing_account: str | None = None
    declared_energy_source: str | None = None
    declared_carbon_gco2_per_kwh: float | None = None

    def registration(self, ts_ms: int) -> dict[str, Any]:
        zone = ZONES[self.zone]
        return {
            "node_id": self.node_id, "ts_ms": ts_ms, "provider": self.provider, "node_type": self.node_type,
            "gpu_model": self.gpu_model, "vram_mb": self.vram_mb, "zone": self.zone,
            "lat": zone.lat if self.lat is None else self.lat, "lng": zone.lng if self.lng is None else self.lng,
            "pue": self.pue, "mig_capable": self.mig_capable, "wallet": self.wallet,
            "billing_account": self.billing_account, "declared_energy_source": self.declared_energy_source,
            "declared_carbon_gco2_per_kwh": self.declared_carbon_gco2_per_kwh, "max_power_w": self.max_power_w,
        }  # fmt: skip


def commands_partition(node_id: str, partitions: int) -> int:
    """The ``node.commands`` partition a node's key lands on (the Java client's and aiokafka's murmur2)."""
    return int(DefaultPartitioner()(node_id.encode(), list(range(partitions)), []))


class CommandReader:
    """This node's commands: one partition, read from the committed position (or from its end on a first start)."""

    def __init__(self, bootstrap: str, node_id: str) -> None:
        self.node_id = node_id
        self.key = node_id.encode()
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"toogreen-node-agent-{node_id}",
            "enable.auto.commit": False, "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
        })  # fmt: skip
        meta = self.consumer.list_topics(NODE_COMMANDS.name, timeout=10)
        topic = meta.topics.get(NODE_COMMANDS.name)
        if topic is None or topic.error is not None or not topic.partitions:
            raise KafkaException(f"topic {NODE_COMMANDS.name} does not exist at {bootstrap}: create the topics first")
        self.partition = commands_partition(node_id, len(topic.partitions))
        tp = TopicPartition(NODE_COMMANDS.name, self.partition)
        committed = self.consumer.committed([tp], timeout=10)[0].offset
        if committed < 0:
            _low, committed = self.consumer.get_watermark_offsets(tp, timeout=10)
        self.consumer.assign([TopicPartition(NODE_COMMANDS.name, self.partition, committed)])
        self.position = committed

    def poll(self, timeout_s: float) -> tuple[Message | None, bool]:
        """(a message, whether it is addressed to this node)."""
        msg = self.consumer.poll(timeout_s)
        if msg is None:
            return None, False
        if msg.error():
            log.warning("%s: node.commands: %s", self.node_id, msg.error())
            return None, False
        self.position = (msg.offset() or 0) + 1
        return msg, msg.key() == self.key

    def commit(self) -> None:
        self.consumer.commit(
            offsets=[TopicPartition(NODE_COMMANDS.name, self.partition, self.position)], asynchronous=False
        )

    def close(self) -> None:
        self.consumer.close()


class NodeAgent:
    """One node: its identity, telemetry, workloads, and the Kafka plumbing around them."""

    def __init__(self, settings: Settings, identity: NodeIdentity, telemetry: TelemetrySource) -> None:
        cfg = settings.node_agent
        self.settings = settings
        self.identity = identity
        self.telemetry = telemetry
        self.producer = RecordProducer(settings.bootstrap)
        self.commands = CommandReader(settings.bootstrap, identity.node_id)
        self.supervisor = Supervisor(
            identity.node_id, cfg.workdir / identity.node_id, open_store(cfg.checkpoint_store), cfg, identity.vram_mb
        )

    def _send_events(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            log.info("%s: %s %s", self.identity.node_id, event["type"], event["workload_id"])
            self.producer.send(WORKLOAD_EVENTS.name, event["workload_id"], event)

    def _register(self) -> None:
        reg = self.identity.registration(int(time.time() * 1000))
        self.producer.send(NODE_REGISTRY.name, self.identity.node_id, reg)

    def _sample(self) -> None:
        sample = self.telemetry.sample(self.supervisor.busy(), self.supervisor.used_vram_mb())
        self.producer.send(NODE_TELEMETRY.name, self.identity.node_id, sample)

    def _obey(self, msg: Message) -> None:
        try:
            command = decode(NODE_COMMANDS.name, msg.value())
        except DecodeError as exc:
            record = dead_letter(*_source(msg), msg.key(), msg.value(), "node_agent", str(exc))
            self.producer.send(DEAD_LETTERS.name, record["source_topic"], record)
            return
        if command["node_id"] != self.identity.node_id:
            why = f"command keyed {self.identity.node_id!r} is addressed to node {command['node_id']!r}"
            record = dead_letter(*_source(msg), msg.key(), msg.value(), "node_agent", why)
            self.producer.send(DEAD_LETTERS.name, record["source_topic"], record)
            return
        self._send_events(self.supervisor.handle(command))

    def run(self, stop: threading.Event) -> DeliveryStats:
        cfg = self.settings.node_agent
        self._register()
        self._sample()
        self.producer.flush()
        next_sample = next_register = time.monotonic()
        next_sample += cfg.telemetry_interval_s
        next_register += cfg.registry_refresh_s
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                msg, mine = self.commands.poll(max(0.0, min(cfg.command_poll_s, next_sample - time.monotonic())))
                if mine and msg is not None:
                    self._obey(msg)
                events = self.supervisor.poll()
                now = time.monotonic()
                if any(e["type"] in EXITS for e in events):
                    self._sample()  # the final sample at exit: what it drew up to then is measured, and its own
                    next_sample = now + cfg.telemetry_interval_s
                self._send_events(events)
                if now >= next_sample:
                    self._sample()
                    next_sample = now + cfg.telemetry_interval_s
                if now >= next_register:
                    self._register()
                    next_register = now + cfg.registry_refresh_s
                self.producer.flush()
                if mine or now - last_commit >= 5.0:  # after what the command caused was delivered
                    self.commands.commit()
                    last_commit = now
            self._send_events(self.supervisor.shutdown())
            return self.producer.flush()
        finally:
            self.commands.close()
            self.telemetry.close()


def _source(msg: Message) -> tuple[str, int, int]:
    """Where a consumed message came from (a consumed message always has all three)."""
    return msg.topic() or NODE_COMMANDS.name, msg.partition() or 0, msg.offset() or 0
