"""Apache Kafka on 127.0.0.1 in KRaft mode: 1 or 3 brokers (any number, really), run from the Maven Central jars.

``scripts/install-kafka.sh`` copies ``org.apache.kafka:kafka_2.13`` and its runtime dependencies into a cache
directory once; this module formats each node's storage, starts one JVM per node (``kafka.Kafka``, a small heap)
and waits until every broker is in the cluster's metadata. Each node's data directory and log live under the run
directory. The JVMs are our children and get SIGKILL when the process that started them dies, however it dies
(``PR_SET_PDEATHSIG``), so no test or demo leaves a JVM behind. With 3 brokers or more, topics have replication 3
and ``min.insync.replicas`` 2 (so a producer with acks=all survives one broker down and never acks a write held by
one replica only).

``toogreen kafka up`` runs a cluster in the foreground and writes ``cluster.json`` (addresses, pids) in the run
directory; ``toogreen kafka status`` and ``down`` read it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from toogreen import PROJECT_ROOT
from toogreen.kafka.broker import BrokerError, port_open
from toogreen.settings import KafkaClusterSettings

INSTALL_SCRIPT = PROJECT_ROOT / "scripts" / "install-kafka.sh"
STATE_FILE = "cluster.json"
# Broker log lines at WARN and up, plus the ones that say a node started or stopped.
LOG4J_PROPERTIES = """\
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.Kafka$=INFO
"""


class KafkaInstallError(BrokerError):
    pass


def install(settings: KafkaClusterSettings) -> Path:
    """The folder of the broker's jars, installing them from Maven Central the first time (then it is instant)."""
    libs = settings.cache_dir / f"kafka-{settings.version}" / "libs"
    if (libs.parent / ".complete").exists():
        return libs
    env = {**os.environ, "KAFKA_VERSION": settings.version, "TOOGREEN_KAFKA_CACHE": str(settings.cache_dir)}
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise KafkaInstallError(f"{INSTALL_SCRIPT} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def _kill_with_parent() -> None:
    """For ``Popen(preexec_fn=...)``: the JVM gets SIGKILL when its parent dies (Linux), so it is never orphaned."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes in URL-safe base64 without padding (what ``Uuid.randomUuid`` prints)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass
class KafkaNode:
    """One KRaft process: a broker (with a controller inside it when the quorum is combined) or a controller."""

    node_id: int
    roles: str  # "broker,controller", "broker" or "controller"
    controller_port: int | None
    broker_port: int | None
    data_dir: Path
    pid: int | None = None

    @property
    def is_broker(self) -> bool:
        return "broker" in self.roles

    @property
    def is_controller(self) -> bool:
        return "controller" in self.roles


@dataclass
class KafkaCluster:
    """A local Apache Kafka cluster in KRaft mode. ``start()`` returns once every broker is registered."""

    settings: KafkaClusterSettings
    run_dir: Path
    brokers: int = 1
    topic_partitions: int = 4
    nodes: list[KafkaNode] = field(default_factory=list)
    cluster_id: str = field(default_factory=random_cluster_id)
    _procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _libs: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.brokers < 1:
            raise ValueError(f"a cluster needs at least 1 broker, got {self.brokers}")
        if not self.nodes:
            self.nodes = self._plan()

    # ---- the plan: node ids, roles, ports, data dirs -------------------------------------------------------------

    def _plan(self) -> list[KafkaNode]:
        s = self.settings
        port_no = iter(range(10_000))

        def port() -> int:
            return s.base_port + next(port_no) if s.base_port else free_port(s.host)

        nodes: list[KafkaNode] = []
        combined = s.quorum == "combined"
        for i in range(self.brokers):
            node_id = i + 1
            nodes.append(
                KafkaNode(
                    node_id,
                    "broker,controller" if combined else "broker",
                    None,
                    port(),
                    self.run_dir / f"node-{node_id}" / "data",
                )
            )
            if combined:
                nodes[-1].controller_port = port()
        if not combined:
            for i in range(s.separate_controllers):
                node_id = 100 + i + 1
                nodes.append(KafkaNode(node_id, "controller", port(), None, self.run_dir / f"node-{node_id}" / "data"))
        return nodes

    @property
    def replication_factor(self) -> int:
        return min(3, self.brokers)

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.brokers >= 3 else 1

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.settings.host}:{n.broker_port}" for n in self.nodes if n.is_broker)

    def topic_config(self) -> dict[str, str]:
        """What every product topic is created with."""
        return {"min.insync.replicas": str(self.min_insync_replicas)}

    def client_env(self) -> dict[str, str]:
        """The environment that points every ``toogreen`` process at this cluster."""
        return {
            "TOOGREEN_BROKER__BOOTSTRAP": self.bootstrap,
            "TOOGREEN_BROKER__REPLICATION_FACTOR": str(self.replication_factor),
            "TOOGREEN_BROKER__TOPIC_PARTITIONS": str(self.topic_partitions),
        }

    def _voters(self) -> str:
        return ",".join(f"{n.node_id}@{self.settings.host}:{n.controller_port}" for n in self.nodes if n.is_controller)

    def properties(self, node: KafkaNode) -> str:
        """The node's ``server.properties``."""
        h = self.settings.host
        listeners, advertised, protocols = [], [], ["CONTROLLER:PLAINTEXT"]
        if node.is_broker:
            listeners.append(f"PLAINTEXT://{h}:{node.broker_port}")
            advertised.append(f"PLAINTEXT://{h}:{node.broker_port}")
            protocols.append("PLAINTEXT:PLAINTEXT")
        if node.is_controller:
            listeners.append(f"CONTROLLER://{h}:{node.controller_port}")
        rf, isr = self.replication_factor, self.min_insync_replicas
        lines = {
            "process.roles": node.roles,
            "node.id": node.node_id,
            "controller.quorum.voters": self._voters(),
            "controller.listener.names": "CONTROLLER",
            "listeners": ",".join(listeners),
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": node.data_dir,
            # KRaft fences a broker whose heartbeats stop after this long and moves its partition leaderships
            "broker.session.timeout.ms": self.settings.broker_session_timeout_ms,
            "broker.heartbeat.interval.ms": min(2000, self.settings.broker_session_timeout_ms // 4),
            # a small machine shared with others: few threads
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.threads": 1,
            "log.cleaner.dedupe.buffer.size": 8 * 1024 * 1024,
        }
        if node.is_broker:
            lines |= {
                "advertised.listeners": ",".join(advertised),
                "inter.broker.listener.name": "PLAINTEXT",
                "num.partitions": self.topic_partitions,
                "default.replication.factor": rf,
                "min.insync.replicas": isr,
                "offsets.topic.replication.factor": rf,
                "offsets.topic.num.partitions": 8,
                "transaction.state.log.replication.factor": rf,
                "transaction.state.log.min.isr": isr,
                "transaction.state.log.num.partitions": 4,
                # topics are created on purpose (ensure_topics, Faust's own), never by a typo
                "auto.create.topics.enable": "false",
                "group.initial.rebalance.delay.ms": 0,
                # the workers' session timeout is a few seconds (a dead worker's partitions move fast): Kafka's
                # default floor is 6 s
                "group.min.session.timeout.ms": 1000,
                "unclean.leader.election.enable": "false",
            }
        return "".join(f"{k}={v}\n" for k, v in lines.items())

    # ---- processes -----------------------------------------------------------------------------------------------

    def _java(self, *args: str) -> list[str]:
        assert self._libs is not None
        return [
            "java",
            f"-Xmx{self.settings.heap_mb}m",
            "-Xms64m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.run_dir / 'log4j.properties'}",
            "-cp",
            f"{self._libs}/*",
            *args,
        ]

    def _props_path(self, node: KafkaNode) -> Path:
        return self.run_dir / f"node-{node.node_id}" / "server.properties"

    def log_path(self, node: KafkaNode) -> Path:
        return self.run_dir / f"node-{node.node_id}" / "kafka.log"

    def prepare(self) -> None:
        """Install if needed, write each node's properties and format its storage (all nodes at once). Every
        cluster starts from empty logs: what a previous one left in the run directory is removed."""
        self._libs = install(self.settings)
        for node in self.nodes:
            shutil.rmtree(node.data_dir.parent, ignore_errors=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "log4j.properties").write_text(LOG4J_PROPERTIES)
        formats = []
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            self._props_path(node).write_text(self.properties(node))
            argv = self._java(
                "kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster_id}",  # an id may start with "-"
                "-c", str(self._props_path(node)), "--ignore-formatted",
            )  # fmt: skip
            pipe = subprocess.PIPE
            proc = subprocess.Popen(argv, stdout=pipe, stderr=subprocess.STDOUT, preexec_fn=_kill_with_parent)
            formats.append((node, proc))
        for node, proc in formats:
            out, _ = proc.communicate(timeout=60)
            if proc.returncode != 0:
                raise BrokerError(f"formatting node {node.node_id} failed: {out.decode(errors='replace')[-1500:]}")

    def start_node(self, node: KafkaNode) -> None:
        if (proc := self._procs.get(node.node_id)) is not None and proc.poll() is None:
            return
        log = open(self.log_path(node), "ab")  # noqa: SIM115  (the JVM owns it)
        proc = subprocess.Popen(
            self._java("kafka.Kafka", str(self._props_path(node))),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches our process, which stops the nodes in order
            preexec_fn=_kill_with_parent,
        )
        log.close()
        self._procs[node.node_id] = proc
        node.pid = proc.pid

    def start(self) -> KafkaCluster:
        """Prepare, start every node, and wait until all brokers are registered; stops what it started on failure."""
        try:
            self.prepare()
            for node in self.nodes:
                self.start_node(node)
            self.wait_ready(self.settings.start_timeout_s)
            self.wait_for_group_coordinator(self.settings.start_timeout_s)
        except BaseException:
            self.stop()
            raise
        self.write_state()
        return self

    def alive_brokers(self, timeout_s: float = 2.0) -> set[int]:
        """The broker ids in the cluster's metadata now (empty when no broker answers)."""
        addresses = [f"{self.settings.host}:{n.broker_port}" for n in self.nodes if n.is_broker and self.running(n)]
        if not addresses:
            return set()
        admin = AdminClient({"bootstrap.servers": ",".join(addresses), "socket.connection.setup.timeout.ms": 1000})
        try:
            return set(admin.list_topics(timeout=timeout_s).brokers)
        except Exception:
            return set()

    def running(self, node: KafkaNode) -> bool:
        proc = self._procs.get(node.node_id)
        return proc is not None and proc.poll() is None

    def wait_ready(self, timeout_s: float, node_ids: set[int] | None = None) -> None:
        """Until every broker (or those in ``node_ids``) is in the metadata; raises with the log tail if one died."""
        wanted = node_ids or {n.node_id for n in self.nodes if n.is_broker}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for node in self.nodes:
                proc = self._procs.get(node.node_id)
                if proc is not None and proc.poll() is not None:
                    tail = self.log_path(node).read_text(errors="replace")[-2000:]
                    raise BrokerError(f"Kafka node {node.node_id} exited with {proc.returncode}:\n{tail}")
            listening = all(
                n.broker_port is not None and port_open(self.settings.host, n.broker_port)
                for n in self.nodes
                if n.node_id in wanted
            )
            if listening and wanted <= self.alive_brokers():
                return
            time.sleep(0.25)
        raise BrokerError(f"Kafka brokers {sorted(wanted)} not up within {timeout_s:.0f} s (logs in {self.run_dir})")

    def wait_for_group_coordinator(self, timeout_s: float) -> None:
        """Until consumer groups work: the first group request creates ``__consumer_offsets`` (replicated 3 times on
        3 brokers), and until its leaders are elected every client's offset request fails with NOT_COORDINATOR."""
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "toogreen-cluster-ready"})
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    consumer.committed([TopicPartition("toogreen-cluster-ready", 0)], timeout=5)
                    return
                except KafkaException as exc:
                    if time.monotonic() > deadline:
                        raise BrokerError(f"no group coordinator within {timeout_s:.0f} s: {exc}") from exc
                    time.sleep(0.25)
        finally:
            consumer.close()

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def kill_node(self, node_id: int) -> None:
        """``kill -9`` one node (for fault tests)."""
        proc = self._procs.get(node_id)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart_node(self, node_id: int, timeout_s: float | None = None, wait: bool = True) -> None:
        """Start a killed node again on its own data and ports (and wait until it is back in the metadata)."""
        node = self.node(node_id)
        self.start_node(node)
        self.write_state()
        if wait and node.is_broker:
            self.wait_ready(timeout_s or self.settings.start_timeout_s, {node_id})

    def stop(self) -> None:
        """SIGTERM every node (a controlled shutdown), brokers before controllers; SIGKILL what outlives the wait."""
        order = [n for n in self.nodes if n.roles == "broker"] + [n for n in self.nodes if n.roles != "broker"]
        for node in order:
            proc = self._procs.get(node.node_id)
            if proc is not None and proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + self.settings.stop_timeout_s
        for node in order:
            proc = self._procs.get(node.node_id)
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()
        for node in self.nodes:
            node.pid = None
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / STATE_FILE).unlink()

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the state file that `toogreen kafka status` and `down` read ---------------------------------------------

    def write_state(self, supervisor_pid: int | None = None) -> None:
        state = {
            "cluster_id": self.cluster_id,
            "bootstrap": self.bootstrap,
            "version": self.settings.version,
            "replication_factor": self.replication_factor,
            "min_insync_replicas": self.min_insync_replicas,
            "supervisor_pid": supervisor_pid or os.getpid(),
            "env": self.client_env(),
            "nodes": [{**asdict(n), "data_dir": str(n.data_dir)} for n in self.nodes],
        }
        path = self.run_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """What ``toogreen kafka up`` wrote, or None when no cluster runs from ``run_dir``."""
    path = run_dir / STATE_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
