"""The streams verifier, in the style of Kafka's own streams system tests: a 3-broker Kafka cluster, 3 workers,
the grid, the fleet's telemetry and a few hundred workloads; ``kill -9`` of a worker every 20-30 s (restarted at
once) and of one broker once (restarted later). Then, from the outputs (DuckDB, the input log, the logs), it
checks and prints:

- every submitted workload reached exactly one terminal state (none stuck, none with two different endings);
- at no moment did a node hold more VRAM than it has, more than one whole-GPU tenant, a whole GPU beside slices,
  or more MIG slices than its profile table allows, over the whole command and event history;
- at most one receipt, one bill and one payout per workload, at most one initial placement; a receipt for every
  workload completed 30 s or more before the last ending;
- the zone windows in DuckDB equal an offline recomputation from ``grid.readings`` with the domain's own window
  functions;
- no worker crashed (tracebacks in the logs of workers that were not killed), and how long placement paused.

Run it as ``python -m tests.system.streams_verifier`` (``--help`` for the knobs); ``tests/system`` runs a bounded
version in CI. Exit status 0 only when every check passes.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.integration.kafka_stack import kafka_cluster, routable, stack_on
from toogreen.app.demo import Stack, start_core
from toogreen.codec import DecodeError, decode
from toogreen.domain.lifecycle import TERMINAL
from toogreen.domain.mig import COMPUTE_SLICES, MIG_PROFILES
from toogreen.domain.records import GridReading, ZoneMeta
from toogreen.domain.windows import WindowAggregate, assemble, specs_from
from toogreen.domain.zone_state import apply_reading, keys_needed, window_key
from toogreen.kafka.cluster import KafkaCluster
from toogreen.settings import Settings

TERMINAL_TYPES = {str(s) for s in TERMINAL}


@dataclass
class Plan:
    """What the run does: sizes, pace and faults."""

    brokers: int = 3
    workers: int = 3
    partitions: int = 6
    workloads: int = 300
    submit_per_s: float = 3.0
    worker_kill_every_s: tuple[float, float] = (20.0, 30.0)
    broker_kill_at_s: float = 35.0
    broker_down_s: float = 15.0
    drain_s: float = 90.0
    seed: int = 11


@dataclass
class Faults:
    worker_kills: list[tuple[float, str]] = field(default_factory=list)  # (epoch s, worker name)
    broker_kills: list[tuple[float, int]] = field(default_factory=list)
    broker_restarts: list[tuple[float, int]] = field(default_factory=list)
    killed_logs: set[str] = field(default_factory=set)  # log names of worker incarnations that were killed
    worker_exits: list[tuple[float, str]] = field(default_factory=list)  # workers that died without being killed


@dataclass
class Check:
    name: str
    ok: bool
    figures: dict[str, Any]
    examples: list[Any] = field(default_factory=list)


# ---- running the system under faults --------------------------------------------------------------------------


class WorkerPool:
    """N ``toogreen worker`` processes; a killed one is started again under a new log name."""

    def __init__(self, stack: Stack, n: int) -> None:
        self.stack = stack
        self.incarnation: dict[str, int] = {}
        self.names = [f"worker-{i + 1}" for i in range(n)]

    def log_name(self, name: str) -> str:
        return f"{name}.{self.incarnation[name]}"

    def spawn(self, name: str) -> None:
        self.incarnation[name] = self.incarnation.get(name, 0) + 1
        self.stack.spawn(self.log_name(name), "worker", "--loglevel", "info")

    def kill9(self, name: str) -> str:
        log = self.log_name(name)
        for i, (child, proc) in enumerate(self.stack.children):
            if child == log:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                del self.stack.children[i]
                break
        return log

    def exited(self) -> list[str]:
        """Pool workers whose process ended by itself (a crash: we only ever kill them with SIGKILL)."""
        logs = {self.log_name(n): n for n in self.names}
        return [logs[child] for child, proc in self.stack.children if child in logs and proc.poll() is not None]

    def forget(self, name: str) -> None:
        log = self.log_name(name)
        self.stack.children[:] = [(c, p) for c, p in self.stack.children if c != log]

    def ready(self, name: str) -> bool:
        return "Worker]: Ready" in self.stack.log_text(self.log_name(name))


def _submit_all(stack: Stack, plan: Plan, out: Path, stop: threading.Event) -> None:
    rng = random.Random(plan.seed)
    api = f"{stack.api_url()}/api/v1/workloads"
    sizes = [8_000, 16_000, 20_000, 24_000, 40_000, 60_000, 80_000]
    with httpx.Client(timeout=10, headers=stack.api_headers()) as client, out.open("a") as log:
        for i in range(plan.workloads):
            if stop.is_set():
                return
            body = {
                "name": f"verify-{i}",
                "workload_type": rng.choice(["inference", "fine_tune", "training"]),
                "image": "ghcr.io/toogreen/verify:1",
                "vram_mb": rng.choice(sizes),
                "expected_hours": round(rng.uniform(0.02, 0.12), 3),  # 1-7 s at the fleet's 60x
                "green_only": rng.random() < 0.2,
            }
            for _attempt in range(20):
                try:
                    r = client.post(api, json=body)
                except httpx.HTTPError:
                    time.sleep(0.5)
                    continue
                if r.status_code == 202:
                    log.write(json.dumps({"ts": time.time(), "workload_id": r.json()["workload_id"], **body}) + "\n")
                    log.flush()
                    break
                time.sleep(0.5)
            time.sleep(1.0 / plan.submit_per_s)


def _terminal_count(stack: Stack, ids: list[str]) -> int:
    try:
        con = duckdb.connect(str(stack.settings.storage.snapshot_path), read_only=True)
    except duckdb.Error:
        return 0
    try:
        rows = con.execute(
            "SELECT count(*) FROM workloads WHERE workload_id IN (SELECT unnest(?)) AND status IN (SELECT unnest(?))",
            [ids, sorted(TERMINAL_TYPES)],
        ).fetchone()
        return int(rows[0]) if rows else 0
    except duckdb.Error:
        return 0
    finally:
        con.close()


def run_under_faults(
    cluster: KafkaCluster, run_dir: Path, plan: Plan, say: Any = print
) -> tuple[Faults, list[str], Settings]:
    """Start the system on ``cluster``, feed it, break it; returns the faults and the submitted ids once the
    workloads ended (or the drain time ran out) and every process was stopped."""
    rng = random.Random(plan.seed)
    faults = Faults()
    stack = stack_on(
        cluster,
        run_dir,
        TOOGREEN_BROKER__TOPIC_PARTITIONS=str(plan.partitions),
        TOOGREEN_DEMO__GRID_INTERVAL_S="0.5",
        # readings carry the wall clock: short windows, so a few minutes of run close many of them
        TOOGREEN_WINDOWS__TUMBLING_S="10",
        TOOGREEN_WINDOWS__HOPPING_SIZE_S="60",
        TOOGREEN_WINDOWS__HOPPING_STEP_S="10",
        TOOGREEN_WINDOWS__GRACE_S="20",
        TOOGREEN_WINDOWS__KEEP_S="3600",
    )
    submitted = run_dir / "submitted.jsonl"
    pool = WorkerPool(stack, plan.workers)
    stop = threading.Event()
    try:
        start_core(stack)  # the API with its sink, and a first worker (named "worker")
        for name in pool.names:
            pool.spawn(name)
        stack.spawn("fleet", "produce", "telemetry")
        stack.spawn("grid", "produce", "grid")
        stack.wait_for("routable nodes", lambda: routable(stack) >= 15, 120)
        stack.wait_for("workers", lambda: all(pool.ready(n) for n in pool.names), 120)
        # the first worker leaves cleanly: the pool is what runs from here on
        for i, (child, proc) in enumerate(stack.children):
            if child == "worker":
                proc.terminate()
                proc.wait(timeout=30)
                del stack.children[i]
                break
        say(f"system up: {plan.workers} workers, {plan.brokers} brokers at {cluster.bootstrap}")
        feeder = threading.Thread(target=_submit_all, args=(stack, plan, submitted, stop), daemon=True)
        started = time.monotonic()
        feeder.start()
        next_kill = started + rng.uniform(*plan.worker_kill_every_s)
        broker_victim = rng.choice([n.node_id for n in cluster.nodes if n.is_broker])
        broker_back_at: float | None = None
        while feeder.is_alive():
            now = time.monotonic()
            for name in pool.exited():
                faults.worker_exits.append((time.time(), pool.log_name(name)))
                say(f"t={now - started:5.1f}s {pool.log_name(name)} exited by itself; starting it again")
                pool.forget(name)
                pool.spawn(name)
            if now >= next_kill:
                name = rng.choice(pool.names)
                faults.killed_logs.add(pool.kill9(name))
                faults.worker_kills.append((time.time(), name))
                say(f"t={now - started:5.1f}s kill -9 {name}")
                pool.spawn(name)
                next_kill = now + rng.uniform(*plan.worker_kill_every_s)
            if not faults.broker_kills and now - started >= plan.broker_kill_at_s:
                cluster.kill_node(broker_victim)
                faults.broker_kills.append((time.time(), broker_victim))
                broker_back_at = now + plan.broker_down_s
                say(f"t={now - started:5.1f}s kill -9 broker {broker_victim}")
            if broker_back_at is not None and now >= broker_back_at:
                cluster.restart_node(broker_victim, wait=False)  # it recovers its logs while the faults go on
                faults.broker_restarts.append((time.time(), broker_victim))
                broker_back_at = None
                say(f"t={time.monotonic() - started:5.1f}s broker {broker_victim} back")
            time.sleep(0.2)
        if broker_back_at is not None:
            cluster.restart_node(broker_victim, wait=False)
            faults.broker_restarts.append((time.time(), broker_victim))
        ids = _read_ids(submitted)
        say(f"submitted {len(ids)} workloads in {time.monotonic() - started:.0f} s; draining")
        deadline = time.monotonic() + plan.drain_s
        while time.monotonic() < deadline and _terminal_count(stack, ids) < len(ids):
            time.sleep(1.0)
        # the grid stops first, so that every reading in the log reached the windows and DuckDB before the rest stops
        for child, proc in stack.children:
            if child == "grid":
                proc.terminate()
                proc.wait(timeout=15)
        time.sleep(6.0)  # the workers' last coalesced runs, the sink's last batch
    finally:
        stop.set()
        stack.stop()
    return faults, _read_ids(submitted), stack.settings


def _read_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["workload_id"] for line in path.read_text().splitlines() if line.strip()]


# ---- the checks ------------------------------------------------------------------------------------------------


def check_terminal_states(con: duckdb.DuckDBPyConnection, ids: list[str]) -> Check:
    status = dict(con.execute("SELECT workload_id, status FROM workloads").fetchall())
    endings: dict[str, Counter[str]] = defaultdict(Counter)
    for wid, kind in con.execute(
        "SELECT workload_id, type FROM workload_events WHERE type IN (SELECT unnest(?))", [sorted(TERMINAL_TYPES)]
    ).fetchall():
        endings[wid][kind] += 1
    by_status = Counter(status.get(w, "missing") for w in ids)
    stuck = [w for w in ids if status.get(w) not in TERMINAL_TYPES]
    two_endings = [w for w in ids if len(endings.get(w, {})) > 1]
    repeated = [w for w in ids if sum(endings.get(w, Counter()).values()) > 1 and w not in two_endings]
    figures = {
        "submitted": len(ids),
        "by_status": dict(sorted(by_status.items())),
        "not_terminal": len(stuck),
        "two_different_endings": len(two_endings),
        "same_ending_twice": len(repeated),
    }
    return Check("every workload ends exactly once", not stuck and not two_endings, figures, (stuck + two_endings)[:5])


@dataclass
class Hold:
    workload_id: str
    vram_mb: int
    mig_profile: str | None


def check_capacity(con: duckdb.DuckDBPyConnection, commands: list[tuple[int, dict[str, Any]]]) -> Check:
    """Sweep every node's history in time order: a start/resume command takes its VRAM (and slice) from the moment
    the owner sent it (its record's timestamp in ``node.commands``; its ``ts_ms`` is the time of the event that
    caused the decision, which can be older than the end that freed the node), until the workload's stop command
    there or its terminal event there, whichever comes first."""
    nodes = {
        n: (vram, model) for n, vram, model in con.execute("SELECT node_id, vram_mb, gpu_model FROM nodes").fetchall()
    }
    timeline: list[tuple[int, int, str, str, Any]] = []  # (ts, order, node, workload, payload)
    first_sent: dict[str, tuple[int, dict[str, Any]]] = {}  # by command id: a command sent again counts once
    for sent_ms, cmd in commands:
        if cmd["command_id"] not in first_sent or sent_ms < first_sent[cmd["command_id"]][0]:
            first_sent[cmd["command_id"]] = (sent_ms, cmd)
    for ts, cmd in first_sent.values():
        node, action, wid, vram, profile = (cmd["node_id"], cmd["action"], cmd["workload_id"], cmd["vram_mb"],
                                            cmd["mig_profile"])  # fmt: skip
        if action in ("start", "resume"):
            timeline.append((ts, 1, node, wid, Hold(wid, int(vram or 0), profile)))
        elif action == "stop":
            timeline.append((ts, 0, node, wid, None))
    for node, ts, wid in con.execute(
        "SELECT node_id, ts_ms, workload_id FROM workload_events "
        "WHERE type IN (SELECT unnest(?)) AND node_id IS NOT NULL",
        [sorted(TERMINAL_TYPES)],
    ).fetchall():
        timeline.append((ts, 0, node, wid, None))
    timeline.sort(key=lambda t: (t[0], t[1]))
    held: dict[str, dict[str, Hold]] = defaultdict(dict)
    ended: set[tuple[str, str]] = set()  # (node, workload) whose hold ended: a late duplicate start does not revive it
    violations: list[dict[str, Any]] = []
    worst_over_mb = 0
    bad_nodes: set[str] = set()
    for ts, _order, node, wid, hold in timeline:
        if hold is None:
            held[node].pop(wid, None)
            ended.add((node, wid))
            continue
        if (node, wid) in ended:
            continue
        held[node][wid] = hold
        vram, model = nodes.get(node, (None, None))
        holds = list(held[node].values())
        problems = []
        used = sum(h.vram_mb for h in holds)
        if vram is not None and used > vram:
            problems.append(f"VRAM {used} MiB > {vram} MiB")
            worst_over_mb = max(worst_over_mb, used - vram)
        whole = [h for h in holds if not h.mig_profile]
        slices = [h for h in holds if h.mig_profile]
        if len(whole) > 1:
            problems.append(f"{len(whole)} whole-GPU tenants")
        if whole and slices:
            problems.append("a whole-GPU tenant beside MIG slices")
        if slices and model in MIG_PROFILES:
            table = {p.name: p for p in MIG_PROFILES[model]}
            count = Counter(h.mig_profile for h in slices)
            used_slices = sum(table[p].slices * c for p, c in count.items() if p in table)
            if used_slices > COMPUTE_SLICES:
                problems.append(f"{used_slices} compute slices > {COMPUTE_SLICES}")
            problems += [
                f"{c} x {p} > {table[p].instances}" for p, c in count.items() if p in table and c > table[p].instances
            ]
        if problems:
            bad_nodes.add(node)
            violations.append({"ts_ms": ts, "node": node, "holders": sorted(held[node]), "problems": problems})
    failed_vram = con.execute(
        "SELECT count(DISTINCT workload_id) FROM workload_events "
        "WHERE type = 'failed' AND reason LIKE '%not enough VRAM%'"
    ).fetchone()[0]
    figures = {
        "commands_and_endings_swept": len(timeline),
        "overbooked_moments": len(violations),
        "overbooked_nodes": len(bad_nodes),
        "worst_vram_overbooking_mb": worst_over_mb,
        "failed_at_node_not_enough_vram": failed_vram,
    }
    return Check("no node ever over capacity", not violations and not failed_vram, figures, violations[:5])


def check_settlement(con: duckdb.DuckDBPyConnection, ids: list[str]) -> Check:
    def dupes(table: str, only: str = "true") -> int:
        return con.execute(
            f"SELECT count(*) FROM (SELECT workload_id FROM {table} WHERE workload_id IN (SELECT unnest(?)) "
            f"AND {only} GROUP BY ALL HAVING count(*) > 1)",
            [ids],
        ).fetchone()[0]

    def total(table: str) -> int:
        return con.execute(f"SELECT count(*) FROM {table} WHERE workload_id IN (SELECT unnest(?))", [ids]).fetchone()[0]

    initial = con.execute(
        "SELECT count(*) FROM (SELECT workload_id FROM routing_decisions WHERE type = 'initial' "
        "AND workload_id IN (SELECT unnest(?)) GROUP BY ALL HAVING count(*) > 1)",
        [ids],
    ).fetchone()[0]
    figures = {
        "receipts": total("carbon_receipts"),
        "bills": total("billing_records"),
        "payouts": total("payouts"),
        "workloads_with_2+_receipts": dupes("carbon_receipts"),
        # one final bill (and its payout) per workload; interim ones, per metering interval and node, have their ids
        "workloads_with_2+_bills": dupes("billing_records", "billing_id LIKE '%-final'"),
        "workloads_with_2+_payouts": dupes("payouts", "payout_id LIKE '%-final:%'"),
        "workloads_with_2+_initial_placements": initial,
    }
    # nothing is lost: a workload settles up to settle_wait_s after it ended, and the verifier stops at the last
    # ending, so every workload completed 30 s or more before the last ending has its receipt
    unsettled = con.execute(
        "SELECT count(*) FROM workloads w WHERE status = 'completed' AND workload_id IN (SELECT unnest(?)) "
        "AND updated_ms < (SELECT max(updated_ms) FROM workloads) - 30000 "
        "AND NOT EXISTS (SELECT 1 FROM carbon_receipts r WHERE r.workload_id = w.workload_id)",
        [ids],
    ).fetchone()[0]
    ok = not any(v for k, v in figures.items() if k.startswith("workloads_with")) and unsettled == 0
    figures["completed_30_s_before_the_end_without_a_receipt"] = unsettled
    return Check("at most one receipt, bill, payout, placement per workload; a receipt for every one done", ok, figures)


def read_log(bootstrap: str, topic: str) -> list[tuple[int, dict[str, Any]]]:
    """Every record of ``topic`` with its timestamp (ms), partition by partition in offset order."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"verifier-{time.time_ns()}", "enable.auto.commit": False}
    )
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
    consumer.assign(tps)
    by_partition: dict[int, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
    done = {p for p, end in ends.items() if end == 0}
    deadline = time.monotonic() + 60
    while len(done) < len(ends) and time.monotonic() < deadline:
        for m in consumer.consume(5000, 0.5):
            if m.error():
                continue
            with contextlib.suppress(DecodeError):  # the pipeline dead-letters it; so does the recomputation
                by_partition[m.partition()].append((m.offset(), m.timestamp()[1], decode(topic, m.value())))
            if m.offset() >= ends[m.partition()] - 1:
                done.add(m.partition())
    consumer.close()
    return [(ts, r) for p in sorted(by_partition) for _, ts, r in sorted(by_partition[p], key=lambda t: t[0])]


def read_grid_log(bootstrap: str) -> list[dict[str, Any]]:
    """Every record of ``grid.readings``, partition by partition in offset order (a zone's readings in order)."""
    return [r for _ts, r in read_log(bootstrap, "grid.readings")]


def recompute_windows(
    readings: list[dict[str, Any]], settings: Settings
) -> dict[tuple[str, str, int], WindowAggregate]:
    """The zone windows the agent should have produced, by the domain's own functions, reading by reading."""
    specs = specs_from(settings.windows)
    tumbling, hopping = specs
    grace_ms, keep_ms = settings.windows.grace_s * 1000, settings.windows.keep_s * 1000
    stored: dict[str, WindowAggregate] = {}
    metas: dict[str, ZoneMeta] = {}
    for wire in readings:
        reading = GridReading.from_wire(wire)
        zone = reading.zone
        meta = metas.get(zone) or ZoneMeta()
        keys = keys_needed(zone, reading.ts_ms, meta, specs)
        outcome = apply_reading(
            reading, {k: stored[k] for k in keys if k in stored}, meta, specs, grace_ms, keep_ms, settings.surplus
        )
        metas[zone] = outcome.meta
        if outcome.stored is not None:
            stored[outcome.stored[0]] = outcome.stored[1]
    result: dict[tuple[str, str, int], WindowAggregate] = {}
    for agg in stored.values():
        result[(agg.zone, agg.kind, agg.start_ms)] = agg
    zones = {agg.zone for agg in stored.values()}
    for zone in zones:
        starts = sorted(a.start_ms for a in stored.values() if a.zone == zone)
        hop_starts = {s for start in starts for s in hopping.starts(start)}
        for hs in hop_starts:
            parts = [
                stored[k]
                for s in range(hs, hs + hopping.size_ms, tumbling.step_ms)
                if (k := window_key(zone, tumbling.kind, s)) in stored
            ]
            result[(zone, hopping.kind, hs)] = assemble(zone, hopping, hs, parts)
    return result


def check_windows(con: duckdb.DuckDBPyConnection, readings: list[dict[str, Any]], settings: Settings) -> Check:
    expected = recompute_windows(readings, settings)
    rows = con.execute(
        "SELECT zone, kind, window_start_ms, count, carbon_mean, carbon_min, carbon_max, renewable_mean, price_mean "
        "FROM zone_windows"
    ).fetchall()
    mismatched: list[dict[str, Any]] = []
    compared = 0
    for zone, kind, start, count, c_mean, c_min, c_max, r_mean, p_mean in rows:
        want = expected.get((zone, kind, start))
        if want is None:
            mismatched.append({"window": (zone, kind, start), "problem": "not in the recomputation"})
            continue
        compared += 1
        got = {"count": count, "carbon_mean": c_mean, "carbon_min": c_min, "carbon_max": c_max,
               "renewable_mean": r_mean, "price_mean": p_mean}  # fmt: skip
        exp = {"count": want.count, "carbon_mean": want.carbon.mean, "carbon_min": want.carbon.min,
               "carbon_max": want.carbon.max, "renewable_mean": want.renewable.mean,
               "price_mean": want.price.mean}  # fmt: skip
        diff = {k: (got[k], exp[k]) for k in got if not _close(got[k], exp[k])}
        if diff:
            mismatched.append({"window": (zone, kind, start), "got_vs_expected": diff})
    missing = len({k for k in expected if k[1] == "tumbling"} - {(z, k, s) for z, k, s, *_ in rows})
    figures = {
        "readings_in_log": len(readings),
        "windows_in_duckdb": len(rows),
        "windows_compared": compared,
        "windows_mismatched": len(mismatched),
        "tumbling_windows_missing_in_duckdb": missing,
    }
    return Check(
        "zone windows equal the offline recomputation", not mismatched and not missing, figures, mismatched[:5]
    )


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))


def decision_timing(decisions: list[tuple[int, dict[str, Any]]], faults: Faults) -> dict[str, Any]:
    """When the owner actually sent its decisions (each ``routing.decisions`` record's timestamp, read back from
    Kafka), not the time of the event that caused them (``ts_ms``, which the pause figures above use): how far the
    owner ran behind the log, and how long after each kill it sent its next decision."""
    sent = sorted(ts for ts, _r in decisions)
    lag = sorted((ts - int(r["ts_ms"])) / 1000 for ts, r in decisions)
    after_kill = []
    for kill_s, _name in faults.worker_kills:
        later = [ts for ts in sent if ts >= kill_s * 1000]
        if later:
            after_kill.append(round(later[0] / 1000 - kill_s, 1))
    return {
        "decision_sent_after_its_event_s_p50": round(lag[len(lag) // 2], 2) if lag else None,
        "decision_sent_after_its_event_s_p99": round(lag[int(len(lag) * 0.99)], 2) if lag else None,
        "decision_sent_after_its_event_s_max": round(lag[-1], 2) if lag else None,
        "first_decision_sent_after_each_kill_s": after_kill,
        "longest_pause_between_decisions_sent_s": round(
            max((b - a for a, b in itertools.pairwise(sent)), default=0) / 1000, 1
        ),
    }


def check_workers(
    run_dir: Path, faults: Faults, con: duckdb.DuckDBPyConnection, sent: Sequence[tuple[int, dict[str, Any]]] = ()
) -> Check:
    crashed: dict[str, list[str]] = {}
    for log in sorted(run_dir.glob("worker-*.log")):
        name = log.stem
        text = log.read_text(errors="replace")
        # a killed incarnation's log ends abruptly; what counts is an exception in any worker's log
        markers = [line for line in text.splitlines() if "Traceback" in line or "ConsistencyError" in line
                   or ("[ERROR]" in line and "Crashed" in line)]  # fmt: skip
        if markers:
            crashed[name] = markers[:3]
    decisions = [ts for (ts,) in con.execute("SELECT ts_ms FROM routing_decisions ORDER BY ts_ms").fetchall()]
    gaps_after_kill = []
    for kill_s, _name in faults.worker_kills:
        later = [ts for ts in decisions if ts >= kill_s * 1000]
        if later:
            gaps_after_kill.append(round(later[0] / 1000 - kill_s, 1))
    longest_gap = max((b - a for a, b in itertools.pairwise(decisions)), default=0) / 1000
    figures = {
        "worker_kills": len(faults.worker_kills),
        "broker_kills": len(faults.broker_kills),
        "workers_that_exited_by_themselves": len(faults.worker_exits),
        "worker_logs_with_exceptions": len(crashed),
        "first_decision_after_each_kill_s": gaps_after_kill,
        "longest_pause_between_decisions_s": round(longest_gap, 1),
        **decision_timing(list(sent), faults),
    }
    ok = not crashed and not faults.worker_exits and longest_gap <= 10.0
    return Check("workers never crash, placement resumes within 10 s", ok, figures, list(crashed.items())[:3])


def verify(run_dir: Path, plan: Plan, say: Any = print) -> list[Check]:
    """The whole run: cluster, system under faults, then every check. Prints the figures as it goes."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with kafka_cluster(run_dir, plan.brokers, plan.partitions) as cluster:
        faults, ids, settings = run_under_faults(cluster, run_dir, plan, say)
        readings = read_grid_log(cluster.bootstrap)
        commands = read_log(cluster.bootstrap, "node.commands")
        decisions = read_log(cluster.bootstrap, "routing.decisions")
    with (run_dir / "grid-readings.jsonl").open("w") as out:  # the input log, for a second look
        out.writelines(json.dumps(r) + "\n" for r in readings)
    con = duckdb.connect(str(run_dir / "toogreen.duckdb"), read_only=True)
    try:
        checks = [
            check_terminal_states(con, ids),
            check_capacity(con, commands),
            check_settlement(con, ids),
            check_windows(con, readings, settings),
            check_workers(run_dir, faults, con, decisions),
        ]
    finally:
        con.close()
    for check in checks:
        say(f"[{'PASS' if check.ok else 'FAIL'}] {check.name}: {json.dumps(check.figures)}")
        for example in check.examples:
            say(f"        e.g. {json.dumps(example, default=str)[:400]}")
    (run_dir / "verifier.json").write_text(
        json.dumps(
            [{"name": c.name, "ok": c.ok, "figures": c.figures, "examples": c.examples} for c in checks],
            default=str,
            indent=2,
        )
    )
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("var/verifier"))
    parser.add_argument("--brokers", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--workloads", type=int, default=300)
    parser.add_argument("--submit-per-s", type=float, default=3.0)
    parser.add_argument("--drain-s", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    plan = Plan(args.brokers, args.workers, workloads=args.workloads, submit_per_s=args.submit_per_s,
                drain_s=args.drain_s, seed=args.seed)  # fmt: skip
    import shutil

    shutil.rmtree(args.run_dir, ignore_errors=True)
    checks = verify(args.run_dir, plan)
    print("VERIFIER", "PASSED" if all(c.ok for c in checks) else "FAILED", f"(figures in {args.run_dir}/verifier.json)")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
