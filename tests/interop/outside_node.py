"""A GPU node run by someone outside the project: plain confluent-kafka, its own Avro encoder built from the
``.avsc`` files, and nothing imported from the project.

It registers the node and streams its telemetry every second (a producer on librdkafka's default settings), obeys
the ``start`` commands the router sends it on ``node.commands`` (it runs each workload for ``--work-seconds``,
reporting ``started`` then ``completed`` on ``workload.events``), may submit workloads itself (``--submit``), and
says it goes away (health ``unhealthy``) when it stops. What it does goes to stdout as JSON lines.
``docs/producers.md`` quotes this file, and ``tests/integration/test_outside_producer.py`` runs it.

Every topic takes the client's default partitioner: ``workload.events`` has one partition (the placement log),
so a workload's events lie on it in order whichever client wrote them. ``--workload-events-partitioner`` sets
another librdkafka partitioner for ``workload.events`` (the test runs it with murmur2 too, to show nothing
changes).

    python tests/interop/outside_node.py --bootstrap 127.0.0.1:9092 --schemas schemas --node-id my-h100 --zone FR"""

from __future__ import annotations

import argparse
import io
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
from fastavro.schema import fingerprint, to_parsing_canonical_form


class SingleObjectCodec:
    """Avro single-object encoding of one schema: C3 01, the schema's 8-byte fingerprint (CRC-64-AVRO of its
    parsing canonical form, little endian: the bytes of fastavro's hex fingerprint), then the binary body."""

    def __init__(self, avsc: Path) -> None:
        self.schema = fastavro.parse_schema(json.loads(avsc.read_text()))
        canonical = to_parsing_canonical_form(self.schema)
        self.header = b"\xc3\x01" + bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))

    def encode(self, record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(self.header)
        fastavro.schemaless_writer(out, self.schema, record)
        return out.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        if data[:10] != self.header:
            raise ValueError(f"not written with this schema (header {data[:10].hex()})")
        return fastavro.schemaless_reader(io.BytesIO(data[10:]), self.schema)


def now_ms() -> int:
    return int(time.time() * 1000)


def registration(node_id: str, zone: str) -> dict[str, Any]:
    # fields with a default (wallet, declared_energy_source, ...) may be left out
    return {
        "node_id": node_id, "ts_ms": now_ms(), "provider": "Outside GmbH", "node_type": "datacenter",
        "gpu_model": "H100", "vram_mb": 81_559, "zone": zone, "lat": 48.86, "lng": 2.35, "pue": 1.2,
        "mig_capable": False, "billing_account": "acct_outside", "max_power_w": 700.0,
    }  # fmt: skip


def telemetry(node_id: str, busy: bool, energy_j: float, health: str = "healthy") -> dict[str, Any]:
    return {
        "node_id": node_id, "ts_ms": now_ms(), "sm_util_pct": 95.0 if busy else 2.0,
        "mem_used_mb": 30_000 if busy else 600, "mem_total_mb": 81_559, "power_w": 650.0 if busy else 70.0,
        "energy_j": energy_j, "health": health, "source": "outside",
    }  # fmt: skip


def workload_event(workload_id: str, kind: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "workload_id": workload_id, "ts_ms": now_ms(), "type": kind, **fields}


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--schemas", type=Path, required=True, help="the directory of the .avsc files")
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--zone", default="FR")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the node runs")
    parser.add_argument("--work-seconds", type=float, default=3.0, help="how long each workload runs")
    parser.add_argument("--submit", metavar="WORKLOAD_ID", action="append", default=[],
                        help="submit a workload with this id on workload.events once the node is up")  # fmt: skip
    parser.add_argument("--producer-config", metavar="KEY=VALUE", action="append", default=[],
                        help="extra settings of the node topics' producer (none by default)")  # fmt: skip
    parser.add_argument("--workload-events-partitioner", default="default",
                        help="librdkafka partitioner for workload.events ('default': the client's own)")  # fmt: skip
    args = parser.parse_args(argv)

    codecs = {
        topic: SingleObjectCodec(args.schemas / avsc)
        for topic, avsc in {
            "node.registry": "node_registry.avsc",
            "node.telemetry": "node_telemetry.avsc",
            "workload.events": "workload_event.avsc",
            "node.commands": "node_command.avsc",
        }.items()
    }
    extra = dict(item.split("=", 1) for item in args.producer_config)
    # node.registry and node.telemetry: the client's default settings (any partitioner will do)
    producer = Producer({"bootstrap.servers": args.bootstrap, **extra})
    # workload.events: the client's default too, unless told otherwise (one partition: any partitioner lands there)
    partitioner = args.workload_events_partitioner
    workload_producer = Producer(
        {"bootstrap.servers": args.bootstrap, **({} if partitioner == "default" else {"partitioner": partitioner})}
    )

    def send(topic: str, key: str, record: dict[str, Any]) -> None:
        out = workload_producer if topic == "workload.events" else producer
        out.produce(topic, key=key.encode(), value=codecs[topic].encode(record))
        out.poll(0)

    # node.commands is keyed by node id: read every partition from its end, keep the records for this node
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"outside-{args.node_id}"})
    partitions = consumer.list_topics("node.commands", timeout=10).topics["node.commands"].partitions
    consumer.assign([TopicPartition("node.commands", p, OFFSET_END) for p in partitions])

    node_id = args.node_id
    send("node.registry", node_id, registration(node_id, args.zone))
    say("registered", node_id=node_id, zone=args.zone)
    energy_j, samples = 0.0, 0
    running: dict[str, float] = {}  # workload id -> when it finishes (monotonic s)
    to_submit = list(args.submit)
    stop_at = time.monotonic() + args.seconds
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    next_sample = time.monotonic()
    while time.monotonic() < stop_at and not stopping:
        if time.monotonic() >= next_sample:
            energy_j += (650.0 if running else 70.0) * 1.0
            send("node.telemetry", node_id, telemetry(node_id, bool(running), energy_j))
            samples += 1
            next_sample += 1.0
        if samples == 3 and to_submit:  # up for a few samples: submit the workloads asked for
            for workload_id in to_submit:
                request = {"name": f"outside {workload_id}", "workload_type": "fine_tune",
                           "image": "ghcr.io/outside/job:1", "vram_mb": 20_000, "expected_hours": 0.05}  # fmt: skip
                send("workload.events", workload_id, workload_event(
                    workload_id, "submitted", f"{workload_id}:submitted", request=request))  # fmt: skip
                say("submitted", workload_id=workload_id)
            to_submit = []
        for workload_id, done_at in list(running.items()):
            if time.monotonic() >= done_at:
                del running[workload_id]
                send("workload.events", workload_id, workload_event(
                    workload_id, "completed", f"{workload_id}:{node_id}:completed", node_id=node_id,
                    progress_pct=100.0))  # fmt: skip
                say("completed", workload_id=workload_id)
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        try:
            command = codecs["node.commands"].decode(msg.value())
        except ValueError as exc:  # another version of the schema: this node would need its .avsc
            say("skipped", reason=str(exc))
            continue
        if command["node_id"] != node_id:
            continue
        say("command", action=command["action"], workload_id=command["workload_id"])
        if command["action"] == "start":
            running[command["workload_id"]] = time.monotonic() + args.work_seconds
            send("workload.events", command["workload_id"], workload_event(
                command["workload_id"], "started", f"{command['command_id']}:started", node_id=node_id))  # fmt: skip

    # going away: the router stops choosing this node at once instead of after its telemetry goes stale
    send("node.telemetry", node_id, telemetry(node_id, False, energy_j, health="unhealthy"))
    left = producer.flush(10) + workload_producer.flush(10)
    consumer.close()
    say("offline", node_id=node_id, telemetry_samples=samples, undelivered=left)
    return 0 if left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
