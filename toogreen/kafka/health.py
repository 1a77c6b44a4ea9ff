"""What ``/healthz`` says: is the broker there, does the worker keep up, does the DuckDB sink keep up.

A :class:`HealthMonitor` in the API process probes every ``health.probe_interval_s`` from a daemon thread (so a
health request costs nothing and a stall is seen even when nobody asks): the broker's metadata (and so its log
lifetime), the worker group's committed offsets against the high watermarks of the topics it reads, and the sink
beside the API (its thread, its lag, its last batch). :func:`judge` turns those figures into the problems that make
the answer a 503; it is pure, and tested directly.

A worker is judged by its consumer group's progress: records waiting and no offset committed for
``worker_stall_s`` means no live worker is consuming (with nothing waiting, a dead worker is not yet a problem).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaException, TopicPartition

from toogreen.settings import Settings
from toogreen.topics import GRID_READINGS, NODE_REGISTRY, NODE_TELEMETRY, WORKLOAD_EVENTS

WORKER_TOPICS = (GRID_READINGS.name, NODE_TELEMETRY.name, NODE_REGISTRY.name, WORKLOAD_EVENTS.name)


class SinkStatus(Protocol):
    """What the DuckDB sink tells about itself (``sinks.kafka_sink.DuckDBSink``)."""

    @property
    def alive(self) -> bool: ...
    @property
    def broker_reachable(self) -> bool: ...
    @property
    def lifetime_id(self) -> str | None: ...
    @property
    def lag_records(self) -> int | None: ...
    @property
    def last_batch_ms(self) -> int | None: ...
    @property
    def restarts(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...


@dataclass
class Observation:
    """One probe's figures."""

    at_ms: int
    broker_ok: bool
    broker_error: str | None = None
    lifetime_id: str | None = None
    worker_lag_records: int | None = None
    worker_committed_total: int | None = None
    worker_committed_any: bool = True  # has the worker group committed any offset in this log
    worker_last_progress_ms: int | None = None  # when its committed offsets last moved (or nothing waited)
    sink: dict[str, Any] | None = None  # None: no sink in this process


@dataclass
class Verdict:
    ok: bool
    problems: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)


def judge(obs: Observation, settings: Settings, started_ms: int) -> Verdict:
    """The problems in ``obs`` (none: healthy)."""
    h = settings.health
    problems: list[str] = []
    if not obs.broker_ok:
        problems.append(f"broker: no answer from {settings.bootstrap} ({obs.broker_error})")
    grace = obs.at_ms - started_ms < h.worker_stall_s * 1000
    if obs.broker_ok and obs.worker_lag_records is not None and not obs.worker_committed_any:
        if obs.worker_lag_records > 0:
            problems.append(
                f"worker: {obs.worker_lag_records} records waiting and nothing committed in this log yet (no worker "
                "consuming: not started, or still recovering)"
            )
    elif obs.broker_ok and obs.worker_lag_records is not None and not grace:
        stalled_s = (obs.at_ms - (obs.worker_last_progress_ms or started_ms)) / 1000
        if obs.worker_lag_records > 0 and stalled_s >= h.worker_stall_s:
            problems.append(
                f"worker: {obs.worker_lag_records} records waiting and no offset committed for {stalled_s:.0f} s "
                "(no live worker is consuming)"
            )
        elif obs.worker_lag_records > h.max_lag_records:
            problems.append(f"worker: {obs.worker_lag_records} records behind (over {h.max_lag_records})")
    sink = obs.sink
    if sink is not None:
        last_batch_age_s = None if sink["last_batch_ms"] is None else (obs.at_ms - sink["last_batch_ms"]) / 1000
        if not sink["alive"]:
            problems.append(f"sink: its thread is not running (last error: {sink['last_error']})")
        elif obs.broker_ok and obs.lifetime_id and sink["lifetime_id"] != obs.lifetime_id and not grace:
            problems.append(f"sink: still on log lifetime {sink['lifetime_id']}, the broker's is {obs.lifetime_id}")
        elif (sink["lag_records"] or 0) > 0 and (last_batch_age_s is None or last_batch_age_s >= h.sink_stall_s):
            if not grace:
                problems.append(
                    f"sink: {sink['lag_records']} records waiting, last batch "
                    f"{'never' if last_batch_age_s is None else f'{last_batch_age_s:.0f} s ago'}"
                )
        elif (sink["lag_records"] or 0) > h.max_lag_records:
            problems.append(f"sink: {sink['lag_records']} records behind (over {h.max_lag_records})")
        sink = {**sink, "last_batch_age_s": last_batch_age_s}
    checks = {
        "broker": {"ok": obs.broker_ok, "bootstrap": settings.bootstrap, "log_lifetime": obs.lifetime_id,
                   "error": obs.broker_error},
        "worker": {"lag_records": obs.worker_lag_records, "committed_offsets": obs.worker_committed_total,
                   "committed_in_this_log": obs.worker_committed_any, "last_progress_ms": obs.worker_last_progress_ms},
        "sink": sink,
    }  # fmt: skip
    return Verdict(not problems, problems, checks)


class HealthMonitor:
    """Probes the broker, the worker group and the sink on an interval; :meth:`verdict` is the latest."""

    def __init__(self, settings: Settings, sink: SinkStatus | None = None) -> None:
        self.settings, self.sink = settings, sink
        self.started_ms = _now_ms()
        self._consumer: Consumer | None = None
        self._committed_total: int | None = None
        self._progress_ms: int | None = None
        self._lifetime: str | None = None
        self._stop = threading.Event()
        self._latest = Verdict(False, ["health: not probed yet"])
        self._lock = threading.Lock()

    def _probe_consumer(self) -> Consumer:
        if self._consumer is None:
            # reads the worker group's committed offsets; it never subscribes, so it never joins that group
            self._consumer = Consumer({
                "bootstrap.servers": self.settings.bootstrap, "group.id": self.settings.worker.app_id,
                "enable.auto.commit": False, "socket.timeout.ms": 2000,
            })  # fmt: skip
        return self._consumer

    def observe(self) -> Observation:
        now = _now_ms()
        obs = Observation(at_ms=now, broker_ok=False, sink=self._sink_figures())
        consumer = self._probe_consumer()
        try:
            meta = consumer.list_topics(timeout=self.settings.health.probe_timeout_s)
            obs.broker_ok, obs.lifetime_id = True, str(meta.cluster_id)
            partitions = [
                TopicPartition(t, p) for t in WORKER_TOPICS if t in meta.topics for p in meta.topics[t].partitions
            ]
            committed = consumer.committed(partitions, timeout=self.settings.health.probe_timeout_s)
            lag = total = 0
            obs.worker_committed_any = any(tp.offset >= 0 for tp in committed)
            for tp in committed:
                low, high = consumer.get_watermark_offsets(tp, timeout=self.settings.health.probe_timeout_s)
                position = tp.offset if tp.offset >= 0 else low
                lag += max(0, high - position)
                total += max(0, position)
        except KafkaException as exc:
            obs.broker_error = str(exc.args[0] if exc.args else exc)
            obs.broker_ok = False
            return obs
        if obs.lifetime_id != self._lifetime:  # a new log: the worker's progress is measured afresh
            self._lifetime, self._committed_total, self._progress_ms = obs.lifetime_id, None, now
        if self._committed_total is None or total != self._committed_total or lag == 0:
            self._progress_ms = now
        self._committed_total = total
        obs.worker_lag_records, obs.worker_committed_total, obs.worker_last_progress_ms = lag, total, self._progress_ms
        return obs

    def _sink_figures(self) -> dict[str, Any] | None:
        s = self.sink
        if s is None:
            return None
        return {"alive": s.alive, "broker_reachable": s.broker_reachable, "lifetime_id": s.lifetime_id,
                "lag_records": s.lag_records, "last_batch_ms": s.last_batch_ms, "restarts": s.restarts,
                "last_error": s.last_error}  # fmt: skip

    def probe(self) -> Verdict:
        verdict = judge(self.observe(), self.settings, self.started_ms)
        with self._lock:
            self._latest = verdict
        return verdict

    def verdict(self) -> Verdict:
        with self._lock:
            return self._latest

    def start(self) -> HealthMonitor:
        def loop() -> None:
            while not self._stop.is_set():
                with contextlib.suppress(Exception):  # a probe that fails leaves the last verdict standing
                    self.probe()
                self._stop.wait(self.settings.health.probe_interval_s)

        self.probe()
        threading.Thread(target=loop, name="health-monitor", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self.verdict())


def _now_ms() -> int:
    return int(time.time() * 1000)
