"""Benchmarks that need the embedded broker: pipeline throughput (ours vs the naive per-event pattern vs a bare
aiokafka consume loop), routing latency, API latency under load, and the worker's peak memory."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.common import Table, percentile
from connectors.fleet_sim import SimulatedFleet
from connectors.synthetic_grid import SyntheticGrid
from toogreen.kafka.broker import EmbeddedBroker, ensure_topics
from toogreen.kafka.producer import RecordProducer
from toogreen.submission import submission_event

PROJECT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(bootstrap: str, grid_n: int, telemetry_n: int, nodes: int) -> int:
    """Pre-produce grid readings (11 zones) and telemetry of ``nodes`` nodes; returns how many were sent."""
    producer = RecordProducer(bootstrap, **{"linger.ms": 50, "batch.num.messages": 10000})
    grid = SyntheticGrid(seed=1)
    t0 = int(time.time() * 1000) - 3_600_000
    sent = 0
    tick = 0
    while sent < grid_n:
        for r in grid.readings(t0 + tick * 300, t0 + tick * 300):
            producer.send("grid.readings", r["zone"], r)
            sent += 1
        tick += 1
    sample = SimulatedFleet(seed=1, hours_per_second=1.0).tick(t0, 1.0)[0][0]
    for i in range(telemetry_n):
        node = f"bench-{i % nodes:05d}"
        producer.send("node.telemetry", node, {**sample, "node_id": node, "ts_ms": t0 + i})
    producer.flush(120)
    return sent + telemetry_n


def _ends(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-ends"})
    meta = c.list_topics(timeout=10)
    ends = {}
    for t in topics:
        for p in meta.topics[t].partitions:
            ends[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
    c.close()
    return ends


def _committed(bootstrap: str, group: str, ends: dict[tuple[str, int], int]) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    got = c.committed([TopicPartition(t, p) for t, p in ends], timeout=10)
    c.close()
    return sum(max(tp.offset, 0) for tp in got)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _run_consumer_process(
    argv: list[str], env: dict[str, str], bootstrap: str, group: str, ends: dict, log: Path
) -> float:
    """Start a worker, wait for its group to have committed every offset; events per second after it is ready."""
    total = sum(ends.values())
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=PROJECT)
    try:
        deadline = time.monotonic() + 300
        ready = None
        while time.monotonic() < deadline:
            if ready is None and "Worker]: Ready" in log.read_text(errors="replace"):
                ready = time.monotonic()
            if ready is not None and _committed(bootstrap, group, ends) >= total:
                return total / (time.monotonic() - ready)
            if proc.poll() is not None:
                raise RuntimeError(f"{argv} exited: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"{argv} did not finish within 300 s")
    finally:
        _stop(proc)


async def _bare_loop(bootstrap: str, ends: dict[tuple[str, int], int]) -> float:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as ATP

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([ATP(t, p) for t, p in ends])
    await consumer.seek_to_beginning()
    total, seen = sum(ends.values()), 0
    t0 = time.monotonic()
    while seen < total:
        batch = await consumer.getmany(timeout_ms=500, max_records=10000)
        seen += sum(len(v) for v in batch.values())
    rate = total / (time.monotonic() - t0)
    await consumer.stop()
    return rate


def throughput(events: int = 60_000) -> Table:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker("127.0.0.1", port, Path(tmp) / "broker.log") as broker:
        ensure_topics(broker.bootstrap, 4)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("naive.out", 4, 1)])["naive.out"].result()
        n = fill(broker.bootstrap, events // 6, events - events // 6, nodes=1000)
        ends = _ends(broker.bootstrap, ["grid.readings", "node.telemetry"])
        env = {**os.environ, "TOOGREEN_BROKER__BOOTSTRAP": broker.bootstrap, "PYTHONPATH": str(PROJECT)}
        baseline_app = [sys.executable, "-m", "faust", "-A", "bench.baseline_app", "worker", "-l", "info"]
        consumers = {  # consumer group -> (command, its environment)
            "bench-ours": ([sys.executable, "-m", "toogreen.app.cli", "worker", "--loglevel", "info"],
                           {"TOOGREEN_WORKER__APP_ID": "bench-ours"}),
            "bench-naive": (baseline_app, {"BASELINE": "naive", "BASELINE_APP_ID": "bench-naive"}),
            "bench-ceiling": (baseline_app, {"BASELINE": "nothing", "BASELINE_APP_ID": "bench-ceiling"}),
        }  # fmt: skip
        ours, naive, ceiling = (
            _run_consumer_process(argv, {**env, **extra}, broker.bootstrap, group, ends, Path(tmp) / f"{group}.log")
            for group, (argv, extra) in consumers.items()
        )
        bare = asyncio.run(_bare_loop(broker.bootstrap, ends))
    table = Table(
        "Pipeline throughput: grid + telemetry events through one worker process",
        f"{n:,} events pre-produced (1/6 grid readings, 5/6 telemetry of 1,000 nodes) on the embedded broker, "
        "4 partitions; measured from the worker's 'Ready' to its last committed offset (commit interval 2.8 s)",
        ["consumer", "events/s", "vs naive"],
    )
    table.rows += [
        [
            "toogreen worker (zone windows: 1 tumbling stored + 12 hopping assembled per reading, node state, energy "
            "accrual; changes sent once per key per run of events)",
            f"{ours:,.0f}",
            f"{ours / naive:.2f}x",
        ],
        ["naive per-event pattern (one table write, one awaited send)", f"{naive:,.0f}", "1x"],
        [
            "Faust agent that does nothing with each event (Faust's own ceiling)",
            f"{ceiling:,.0f}",
            f"{ceiling / naive:.1f}x",
        ],
        ["bare aiokafka consume loop (the ceiling)", f"{bare:,.0f}", f"{bare / naive:.1f}x"],
    ]
    table.notes.append(
        f"Ours runs at {ours / ceiling:.0%} of what Faust delivers to an agent that does nothing with each event; "
        "the rest of Faust's cost per event (consumer thread, stream, acks) is beyond the worker's reach."
    )
    table.notes.append(
        "Target ≥ 30 k events/s and ≥ 10x the naive pattern: "
        + (
            "met."
            if ours >= 30_000 and ours >= 10 * naive
            else f"not met; on this machine it is above Faust's own ceiling ({ceiling:,.0f}/s)."
            if ceiling < 30_000
            else "not met."
        )
    )
    return table


def _start(env_extra: dict[str, str], tmp: Path, with_api: bool = True, workers: int = 1):
    from toogreen.app.demo import Stack, start_core
    from toogreen.settings import Settings

    env = {
        "TOOGREEN_BROKER__EMBEDDED_PORT": str(free_port()),
        "TOOGREEN_API__PORT": str(free_port()),
        "TOOGREEN_STORAGE__DUCKDB_PATH": str(tmp / "b.duckdb"),
        "TOOGREEN_STORAGE__SNAPSHOT_PATH": str(tmp / "s.duckdb"),
        "TOOGREEN_SETTLEMENT__SIGNING_KEY_PATH": str(tmp / "k.pem"),
        **env_extra,
    }
    old = dict(os.environ)
    os.environ.update(env)
    try:
        settings = Settings()
    finally:
        os.environ.clear()
        os.environ.update(old)
    stack = Stack(settings, tmp, env=env)
    if with_api:
        start_core(stack)
    else:  # the broker and the worker alone
        stack.start_broker()
        stack.create_topics()
        stack.spawn("worker", "worker", "--loglevel", "info")
        stack.wait_for("worker", stack.worker_ready, 90)
    for n in range(2, workers + 1):  # more workers in the group: one of them owns the placement log
        stack.spawn(f"worker-{n}", "worker", "--loglevel", "info")
        stack.wait_for(f"worker-{n}", lambda n=n: "Worker]: Ready" in stack.log_text(f"worker-{n}"), 120)
    return stack


def routing_latency_on_kafka(
    nodes: int = 1000, rates: tuple[int, ...] = (20, 500), seconds: float = 8.0, workers: int = 2, brokers: int = 1
) -> Table:
    """The same measurement on an Apache Kafka cluster with ``workers`` workers in the group (issue 11's setup):
    the owner of the placement log decides; the others run ingest and stand by."""
    from toogreen.kafka.cluster import KafkaCluster
    from toogreen.settings import Settings

    table = Table(
        f"Routing latency on Apache Kafka, {workers} workers",
        f"as the table above, on {brokers} Kafka broker(s) with {workers} toogreen workers in one group (no API)",
        ["running beside the workers", "submissions/s", "decisions", "p50 ms", "p99 ms", "max ms"],
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        cluster = KafkaCluster(Settings().kafka, Path(tmp_name) / "kafka", brokers, 4)
        with cluster:
            _latency_run(table, False, nodes, rates, seconds, 10, env=cluster.client_env(), workers=workers,
                         setup=f"Kafka x{brokers}, {workers} workers, load generator")  # fmt: skip
    table.notes.append(f"Target p99 ≤ 50 ms at 500 submissions/s with {nodes:,} nodes and 2 workers.")
    return table


def routing_latency(
    nodes: int = 1000, rates: tuple[int, ...] = (20, 500), seconds: float = 8.0, warmup_rate: int = 10
) -> Table:
    table = Table(
        "Routing latency: submission event to routing decision",
        f"{nodes:,} registered nodes with fresh telemetry, 11 zones; submissions produced at a steady rate for "
        f"{seconds:.0f} s each, after {seconds:.0f} s at {warmup_rate}/s not counted (first sends to each topic, "
        "first calls); latency = the decision's Kafka timestamp - submission sent (same clock); each setup on a "
        "fresh stack",
        ["running beside the worker", "submissions/s", "decisions", "p50 ms", "p99 ms", "max ms"],
    )
    for with_api in (True, False):
        _latency_run(table, with_api, nodes, rates, seconds, warmup_rate)
    table.notes.append(
        "A submission's own work is 0.4-0.6 ms (route() over the 1,000 nodes, the record, its encoding); the p99 "
        "at 500/s comes from stalls between events, the longest (about 100 ms of lag before events reach the "
        "agent) when the fleet fills up and workloads start to queue."
    )
    table.notes.append("Target p99 ≤ 50 ms at 500 submissions/s with 1,000 nodes.")
    return table


def _latency_run(
    table: Table,
    with_api: bool,
    nodes: int,
    rates: tuple[int, ...],
    seconds: float,
    warmup_rate: int,
    env: dict[str, str] | None = None,
    workers: int = 1,
    setup: str | None = None,
) -> None:
    setup = setup or ("broker, API + DuckDB sink, load generator" if with_api else "broker, load generator")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stack = _start(env or {}, tmp, with_api, workers)
        try:
            bootstrap = stack.settings.bootstrap
            producer = RecordProducer(bootstrap)
            now = int(time.time() * 1000)
            base = SimulatedFleet(seed=1, hours_per_second=1.0)
            reg, sample = base.registrations(now)[0], base.tick(now, 1.0)[0][0]
            for i in range(nodes):
                nid = f"lat-{i:05d}"
                producer.send(
                    "node.registry", nid, {**reg, "node_id": nid, "zone": list(SyntheticGrid(1).zones)[i % 11].code}
                )
            for i in range(nodes):
                nid = f"lat-{i:05d}"
                producer.send("node.telemetry", nid, {**sample, "node_id": nid, "ts_ms": int(time.time() * 1000)})
            for r in SyntheticGrid(seed=1).readings(now, now):
                producer.send("grid.readings", r["zone"], r)
            producer.flush()
            time.sleep(5)  # the worker takes in the fleet
            consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "lat", "enable.auto.commit": False})
            meta = consumer.list_topics("routing.decisions", timeout=10)
            consumer.assign(
                [
                    TopicPartition(
                        "routing.decisions",
                        p,
                        consumer.get_watermark_offsets(TopicPartition("routing.decisions", p), timeout=10)[1],
                    )
                    for p in meta.topics["routing.decisions"].partitions
                ]
            )
            from toogreen.codec import decode

            for rate in (warmup_rate, *rates):
                sent: dict[str, float] = {}
                t0 = time.monotonic()
                i = 0
                while time.monotonic() - t0 < seconds:
                    due = t0 + i / rate
                    if due > time.monotonic():
                        time.sleep(due - time.monotonic())
                    event = submission_event(
                        {
                            "name": "b",
                            "workload_type": "inference",
                            "image": "i",
                            "vram_mb": 1000,
                            "expected_hours": 1.0,
                        },
                        f"lat-{rate}-{i}",
                    )
                    producer.send("workload.events", event["workload_id"], event)
                    producer._producer.poll(0)
                    sent[event["workload_id"]] = time.time()
                    i += 1
                producer.flush()
                latencies = []
                deadline = time.monotonic() + 120
                while sent and time.monotonic() < deadline:
                    msg = consumer.poll(0.5)
                    if msg is None or msg.error():
                        continue
                    d = decode("routing.decisions", msg.value())
                    if d["workload_id"] in sent:
                        # the decision's own timestamp (set as the worker produced it), not the time we read it
                        latencies.append(msg.timestamp()[1] - 1000 * sent.pop(d["workload_id"]))
                if rate == warmup_rate and rate not in rates:
                    continue
                table.notes.append(f"{setup}, {rate}/s: {len(sent)} submissions without a decision within 120 s.")
                table.rows.append(
                    [
                        setup,
                        str(rate),
                        f"{len(latencies):,}",
                        f"{percentile(latencies, 50):,.0f}",
                        f"{percentile(latencies, 99):,.0f}",
                        f"{max(latencies):,.0f}",
                    ]
                )
            consumer.close()
            pid = next(p.pid for n, p in stack.children if n == "worker")
            hwm = next(
                line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM")
            )
            table.notes.append(
                f"{setup}: worker peak RSS after the run ({nodes:,} nodes, {len(rates) + 1} bursts of "
                f"workloads in its tables): {hwm.split(':')[1].strip()}."
            )
        finally:
            stack.stop()


def worker_memory(nodes: int = 10_000, workloads: int = 100_000) -> Table:
    """Peak RSS of a worker whose tables hold ``nodes`` nodes and ``workloads`` workloads: the tables' changelogs
    are written first, and the worker restores them on start as it would after a restart."""
    import json

    from confluent_kafka import Producer

    from toogreen.domain.node_state import apply_registration, apply_telemetry
    from toogreen.domain.records import NodeRegistration, TelemetrySample, WorkloadEvent
    from toogreen.domain.router import handle_workload_event
    from toogreen.settings import Settings

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker("127.0.0.1", port, Path(tmp) / "broker.log") as broker:
        ensure_topics(broker.bootstrap, 4)
        app_id = "bench-memory"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        tables = ("node-state", "workload-state")
        for f in admin.create_topics([NewTopic(f"{app_id}-{t}-changelog", 4, 1) for t in tables]).values():
            f.result()
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50, "partitioner": "murmur2_random"})
        now = int(time.time() * 1000)
        fleet = SimulatedFleet(seed=1, hours_per_second=1.0)
        reg, sample = fleet.registrations(now)[0], fleet.tick(now, 1.0)[0][0]
        for i in range(nodes):
            nid = f"mem-{i:06d}"
            node = apply_telemetry(
                apply_registration(None, NodeRegistration.from_wire({**reg, "node_id": nid})),
                TelemetrySample.from_wire({**sample, "node_id": nid}),
            )
            producer.produce(
                f"{app_id}-node-state-changelog",
                key=json.dumps(nid).encode(),
                value=json.dumps(node.to_wire()).encode(),
            )
            producer.poll(0)
        settings = Settings()
        request = {"name": "m", "workload_type": "training", "image": "i", "vram_mb": 1000, "expected_hours": 1.0}
        for i in range(workloads):
            wid = f"mem-w{i:07d}"
            submitted = WorkloadEvent.from_wire(submission_event(request, wid, now))
            state = handle_workload_event(submitted, None, [], {}, settings).state
            assert state is not None
            producer.produce(
                f"{app_id}-workload-state-changelog",
                key=json.dumps(wid).encode(),
                value=json.dumps(state.to_wire()).encode(),
            )
            if i % 1000 == 0:
                producer.poll(0)
        producer.flush(120)
        env = {**os.environ, "TOOGREEN_BROKER__BOOTSTRAP": broker.bootstrap, "TOOGREEN_WORKER__APP_ID": app_id}
        log = Path(tmp) / "worker.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "toogreen.app.cli", "worker", "--loglevel", "info"],
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=PROJECT,
            )
        try:
            deadline = time.monotonic() + 300
            while "Worker]: Ready" not in log.read_text(errors="replace") and time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(log.read_text()[-2000:])
                time.sleep(0.5)
            time.sleep(3)
            status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            hwm = next(line for line in status if line.startswith("VmHWM")).split(":")[1].strip()
            rss = next(line for line in status if line.startswith("VmRSS")).split(":")[1].strip()
        finally:
            _stop(proc)
    table = Table(
        "Worker memory with its tables full",
        f"{nodes:,} nodes (registration + telemetry) and {workloads:,} workloads restored from the tables' changelogs "
        "on start (memory store), then measured once the worker is ready",
        ["nodes", "workloads", "peak RSS (VmHWM)", "RSS when ready"],
    )
    table.rows.append([f"{nodes:,}", f"{workloads:,}", hwm, rss])
    return table
