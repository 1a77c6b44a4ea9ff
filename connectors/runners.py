"""The producer processes: the synthetic grid, the simulated fleet's node agents, the demo workload trickle.

Each loop sends through :class:`toogreen.kafka.producer.RecordProducer` (validated, batched, delivery checked) and
returns its delivery summary when stopped.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from connectors.fleet_sim import SimulatedFleet
from connectors.synthetic_grid import SyntheticGrid
from connectors.workload_gen import WorkloadGenerator
from toogreen.codec import DecodeError, decode
from toogreen.kafka.producer import DeliveryStats, RecordProducer
from toogreen.settings import Settings
from toogreen.submission import submission_event
from toogreen.topics import GRID_READINGS, NODE_COMMANDS, NODE_REGISTRY, NODE_TELEMETRY, WORKLOAD_EVENTS

REGISTRY_REFRESH_S = 60.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def run_synthetic_grid(
    settings: Settings, stop: threading.Event, count: int | None = None, on_tick: Callable[[int], None] | None = None
) -> DeliveryStats:
    """Every ``grid_interval_s``: one reading per zone, stamped with the wall clock; the weather model's own clock
    advances ``grid_minutes_per_tick`` per tick so a demo sees days pass in minutes."""
    producer = RecordProducer(settings.bootstrap)
    grid = SyntheticGrid(settings.demo.seed)
    weather_ms = _now_ms()
    ticks = 0
    while not stop.is_set() and (count is None or ticks < count):
        stamp = _now_ms()
        for reading in grid.readings(weather_ms, stamp):
            producer.send(GRID_READINGS.name, reading["zone"], reading)
        producer.flush()
        ticks += 1
        if on_tick:
            on_tick(ticks)
        weather_ms += int(settings.demo.grid_minutes_per_tick * 60_000)
        if count is None or ticks < count:
            stop.wait(settings.demo.grid_interval_s)
    return producer.flush()


def _command_consumer(settings: Settings, positions: dict[int, int]) -> Consumer:
    """``node.commands`` from ``positions`` (partition -> next offset, as saved with the fleet's state), else from
    the group's committed offsets, else from the end."""
    consumer = Consumer(
        {"bootstrap.servers": settings.bootstrap, "group.id": "toogreen-simulated-fleet", "enable.auto.commit": True}
    )
    meta = consumer.list_topics(NODE_COMMANDS.name, timeout=10)
    partitions = [TopicPartition(NODE_COMMANDS.name, p) for p in meta.topics[NODE_COMMANDS.name].partitions]
    committed = consumer.committed(partitions, timeout=10)
    start = {tp.partition: tp.offset if tp.offset >= 0 else OFFSET_END for tp in committed} | positions
    consumer.assign([TopicPartition(NODE_COMMANDS.name, p, offset) for p, offset in start.items()])
    return consumer


class FleetStateFile:
    """The simulated fleet's state and its ``node.commands`` positions, saved together atomically, for one log
    lifetime: a state saved under another broker's log is stale (its commands and workloads are gone)."""

    def __init__(self, path: Path | None, lifetime_id: str) -> None:
        self.path, self.lifetime_id = path, lifetime_id

    def load(self) -> tuple[dict[str, Any] | None, dict[int, int]]:
        if self.path is None or not self.path.exists():
            return None, {}
        try:
            saved = json.loads(self.path.read_text())
        except ValueError:
            return None, {}
        if saved.get("lifetime_id") != self.lifetime_id:
            return None, {}
        return saved["fleet"], {int(p): int(o) for p, o in saved["positions"].items()}

    def save(self, fleet: SimulatedFleet, positions: dict[int, int]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"lifetime_id": self.lifetime_id, "positions": positions, "fleet": fleet.to_state()}))
        os.replace(tmp, self.path)


def run_simulated_fleet(settings: Settings, stop: threading.Event) -> DeliveryStats:
    """The simulated fleet's node agents: obey ``node.commands``, report telemetry and workload events. With
    ``supervision.fleet_state_path`` set, a restarted agent carries on with the work its GPUs were running."""
    from toogreen.kafka.broker import log_lifetime
    from toogreen.lifespan import exit_on_new_lifetime, watch_lifetime

    producer = RecordProducer(settings.bootstrap)
    fleet = SimulatedFleet(settings.demo.seed, settings.demo.workload_hours_per_second)
    lifetime = log_lifetime(settings.bootstrap)
    state_file = FleetStateFile(settings.supervision.fleet_state_path, lifetime)
    saved, positions = state_file.load()
    if saved is not None:
        fleet.restore(saved)
    consumer = _command_consumer(settings, positions)
    # the commands it obeys and the work it runs belong to this log: under a new one the agent starts afresh
    watch_lifetime(
        lambda: log_lifetime(settings.bootstrap, 2.0), lifetime, settings.supervision.lifetime_check_s,
        exit_on_new_lifetime("simulated fleet"),
    )  # fmt: skip
    interval = settings.demo.telemetry_interval_s
    last_registry = 0.0
    last_tick = time.monotonic()
    try:
        while not stop.is_set():
            if time.monotonic() - last_registry >= REGISTRY_REFRESH_S:
                for reg in fleet.registrations(_now_ms()):
                    producer.send(NODE_REGISTRY.name, reg["node_id"], reg)
                last_registry = time.monotonic()
            deadline = last_tick + interval
            while (left := deadline - time.monotonic()) > 0 and not stop.is_set():
                msg = consumer.poll(min(left, 0.25))
                if msg is None or msg.error():
                    continue
                try:
                    command = decode(NODE_COMMANDS.name, msg.value())
                except DecodeError:
                    continue  # the worker produced it; a bad one is the worker's bug, not the node's to guess at
                for event in fleet.apply_command(command, _now_ms()):
                    producer.send(WORKLOAD_EVENTS.name, event["workload_id"], event)
                partition, offset = msg.partition(), msg.offset()
                if partition is not None and offset is not None:
                    positions[partition] = offset + 1
                # saved at once: an agent killed now must neither obey this command again nor forget it
                producer.flush()
                state_file.save(fleet, positions)
            now = time.monotonic()
            telemetry, events = fleet.tick(_now_ms(), now - last_tick)
            last_tick = now
            for sample in telemetry:
                producer.send(NODE_TELEMETRY.name, sample["node_id"], sample)
            for event in events:
                producer.send(WORKLOAD_EVENTS.name, event["workload_id"], event)
            producer.flush()
            state_file.save(fleet, positions)  # after what it caused was delivered
    finally:
        consumer.close()
    return producer.flush()


def run_nvml(
    settings: Settings, stop: threading.Event, node_id: str, interval_s: float, count: int | None
) -> DeliveryStats:
    """Real GPUs through NVML: one sample per GPU every ``interval_s``."""
    from connectors.nvml import NvmlReader, to_telemetry

    reader = NvmlReader()
    producer = RecordProducer(settings.bootstrap)
    taken = 0
    try:
        while not stop.is_set() and (count is None or taken < count):
            for index in range(len(reader.handles)):
                node = f"{node_id}-{index}"
                producer.send(NODE_TELEMETRY.name, node, to_telemetry(node, reader.sample(index), "nvml"))
            producer.flush()
            taken += 1
            stop.wait(interval_s)
    finally:
        reader.close()
    return producer.flush()


def run_trace_replay(
    settings: Settings, stop: threading.Event, path: Path, node_id: str, speed: float, loops: int
) -> DeliveryStats:
    """The real H100 trace as a node's telemetry, paced ``speed`` times faster than recorded."""
    from connectors.nvml import read_trace, replay

    producer = RecordProducer(settings.bootstrap)
    started, t0 = _now_ms(), time.monotonic()
    for record in replay(read_trace(path), node_id, speed, started, loops):
        if stop.is_set():
            break
        if (wait := (record["ts_ms"] - started) / 1000 - (time.monotonic() - t0)) > 0:
            producer.flush()
            stop.wait(wait)
        producer.send(NODE_TELEMETRY.name, node_id, record)
    return producer.flush()


def run_workload_trickle(
    settings: Settings, stop: threading.Event, count: int | None = None, submitters: tuple[str, ...] = ()
) -> DeliveryStats:
    """Submit a demo workload every ``workload_interval_s``, as each of ``submitters`` in turn (when given)."""
    producer = RecordProducer(settings.bootstrap)
    generator = WorkloadGenerator(settings.demo.seed, settings.demo.workload_hours_per_second,
                                  settings.node_agent.demo_reference_step_ms)  # fmt: skip
    sent = 0
    while not stop.is_set() and (count is None or sent < count):
        request = generator.next_request()
        if submitters:
            request["submitter"] = submitters[sent % len(submitters)]
        event = submission_event(request)
        producer.send(WORKLOAD_EVENTS.name, event["workload_id"], event)
        producer.flush()
        sent += 1
        stop.wait(settings.demo.workload_interval_s)
    return producer.flush()
