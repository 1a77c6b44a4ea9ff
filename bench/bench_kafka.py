"""Ingest throughput on Apache Kafka (KRaft, from the Maven Central jars): grid + telemetry through 1 and 2
``toogreen worker`` processes in one consumer group, beside Faust's own ceiling (an agent that does nothing), in
the same run on the same pre-produced events.

Run alone: ``python -m bench.bench_kafka [--events N] [--brokers 1|3]``; ``make bench`` includes it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import bench_peers
from bench.bench_pipeline import PROJECT, _committed, _ends, _stop, fill
from bench.common import Table, machine
from toogreen.kafka.broker import ensure_topics
from toogreen.kafka.cluster import KafkaCluster
from toogreen.settings import Settings


def _group_rate(
    argvs: list[list[str]], env: dict[str, str], bootstrap: str, group: str, ends: dict, logs: list[Path]
) -> float:
    """Start the processes of one group; events per second from the moment the last one is ready (the group has
    its final assignment) to the last committed offset, counting only what was committed after that moment."""
    total = sum(ends.values())
    procs = []
    for argv, log in zip(argvs, logs, strict=True):
        with log.open("wb") as fh:
            procs.append(subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=PROJECT))
    try:
        deadline = time.monotonic() + 300
        ready_at: float | None = None
        done_before = 0
        while time.monotonic() < deadline:
            if ready_at is None and all("Worker]: Ready" in log.read_text(errors="replace") for log in logs):
                ready_at, done_before = time.monotonic(), _committed(bootstrap, group, ends)
            if ready_at is not None and _committed(bootstrap, group, ends) >= total:
                return (total - done_before) / (time.monotonic() - ready_at)
            for proc, log in zip(procs, logs, strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker of {group} exited: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"{group} did not finish within 300 s")
    finally:
        for proc in procs:
            _stop(proc)


def ingest_throughput(events: int = 150_000, brokers: int = 1, partitions: int = 4, keep: Path | None = None) -> Table:
    """``keep``: run in that directory and leave the logs there (default: a temporary one)."""
    settings = Settings()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(keep or scratch)
        cluster = KafkaCluster(settings.kafka, Path(tmp) / "kafka", brokers, partitions)
        with cluster:
            ensure_topics(cluster.bootstrap, partitions, cluster.replication_factor, config=cluster.topic_config())
            n = fill(cluster.bootstrap, events // 6, events - events // 6, nodes=1000)
            ends = _ends(cluster.bootstrap, ["grid.readings", "node.telemetry"])
            env = {**os.environ, **cluster.client_env(), "PYTHONPATH": str(PROJECT)}
            worker = [sys.executable, "-m", "toogreen.app.cli", "worker", "--loglevel", "info"]
            ceiling = [sys.executable, "-m", "faust", "-A", "bench.baseline_app", "worker", "-l", "info"]
            rates = {}
            for group, argvs, extra in (
                ("kafka-ours-1", [worker], {"TOOGREEN_WORKER__APP_ID": "kafka-ours-1"}),
                ("kafka-ours-2", [worker, worker], {"TOOGREEN_WORKER__APP_ID": "kafka-ours-2"}),
                ("kafka-ceiling-1", [ceiling], {"BASELINE": "nothing", "BASELINE_APP_ID": "kafka-ceiling-1"}),
            ):
                logs = [Path(tmp) / f"{group}-{i}.log" for i in range(len(argvs))]
                rates[group] = _group_rate(argvs, {**env, **extra}, cluster.bootstrap, group, ends, logs)
            peers = (
                {name: bench_peers.run_peer(name, cluster.bootstrap, n) for name in bench_peers.JOBS}
                if bench_peers.available()
                else {}
            )
    one, two, ceiling_rate = rates["kafka-ours-1"], rates["kafka-ours-2"], rates["kafka-ceiling-1"]
    table = Table(
        f"Ingest throughput on Apache Kafka {settings.kafka.version}: 1 and 2 workers",
        f"{n:,} events pre-produced (1/6 grid readings, 5/6 telemetry of 1,000 nodes), {brokers} broker(s) (KRaft, "
        f"replication {cluster.replication_factor}), {partitions} partitions; from the moment every worker of the "
        "group is ready to its last committed offset, counting what was committed after that moment",
        ["consumer group", "events/s", "vs 1 worker", "vs Faust's ceiling (1 process)"],
    )
    table.rows += [
        ["1 toogreen worker", f"{one:,.0f}", "1x", f"{one / ceiling_rate:.0%}"],
        ["2 toogreen workers", f"{two:,.0f}", f"{two / one:.2f}x", f"{two / ceiling_rate:.0%}"],
        ["1 Faust agent that does nothing (the ceiling)", f"{ceiling_rate:,.0f}", "", "100%"],
    ]
    for name, peer in peers.items():
        table.rows.append([f"{name}, the same windows and node state (1 process)", f"{peer.events_per_s:,.0f}",
                           f"{peer.events_per_s / one:.2f}x", f"{peer.events_per_s / ceiling_rate:.0%}"])  # fmt: skip
    if peers:
        table.notes.append(
            "The peers (bench/peers/): quix-streams (RocksDB state with changelog topics, its defaults) and bytewax "
            "(one worker, its recovery store on) run the same job: per zone a 5-minute tumbling and a 1-hour hopping "
            "window (5-minute step) of count and mean carbon, renewable share and price, per node the latest sample "
            "and the energy since the one before, decoded with the project's codec. quix-streams writes a window at "
            "every update (its current()), bytewax when it closes; the toogreen worker writes each changed window once "
            "per run of events, and also the node views and zone views the router reads. Their rate runs from their "
            "first to their last event; ours from the moment the group is ready to its last committed offset. "
            + "; ".join(f"{name}: {p.zones} zones, {p.nodes} nodes, {p.windows_written:,} windows written"
                        for name, p in peers.items())
        )  # fmt: skip
    else:
        table.notes.append("The peers were not run: `make peers-venv` builds their environment.")
    table.notes.append(
        f"{os.cpu_count()} CPUs here, shared with the broker JVM(s) and the producer-less consumers: two workers "
        "can only scale where cores are free."
    )
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--brokers", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="run in this directory and keep the logs")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(ingest_throughput(args.events, args.brokers, keep=args.keep).markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
