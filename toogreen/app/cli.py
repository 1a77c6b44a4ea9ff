"""The ``toogreen`` command: one subcommand per part of the system, and the demo that runs them all."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from toogreen.settings import get_settings

app = typer.Typer(help="Too Green To Go: route AI workloads to the cleanest, cheapest GPUs.", no_args_is_help=True)
produce_app = typer.Typer(
    help="Producers: push grid readings, node telemetry, workloads into Kafka.", no_args_is_help=True
)
app.add_typer(produce_app, name="produce")
grid_app = typer.Typer(help="Grid data tools that need no Kafka.", no_args_is_help=True)
app.add_typer(grid_app, name="grid")
receipt_app = typer.Typer(help="Carbon receipts: verify one with nothing but the public key.", no_args_is_help=True)
app.add_typer(receipt_app, name="receipt")
token_app = typer.Typer(help="API bearer tokens: an admin issues them through the running API.", no_args_is_help=True)
app.add_typer(token_app, name="token")
replay_app = typer.Typer(help="Replay historical data through the pipeline in event time.", no_args_is_help=True)
app.add_typer(replay_app, name="replay")
kafka_app = typer.Typer(
    help="Apache Kafka (KRaft, from Maven Central) on 127.0.0.1: up, status, down.", no_args_is_help=True
)
app.add_typer(kafka_app, name="kafka")
console = Console(stderr=True)


def _stop_on_signals() -> threading.Event:
    from toogreen.lifespan import exit_after

    stop = threading.Event()

    def handler(_sig: int, _frame: object) -> None:
        if not stop.is_set():
            exit_after(get_settings().supervision.stop_grace_s, " ".join(sys.argv[1:]) or "toogreen")
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _ensure_topics() -> None:
    from toogreen.kafka.broker import ensure_topics

    settings = get_settings()
    ensure_topics(settings.bootstrap, settings.broker.topic_partitions, settings.broker.replication_factor)


@app.command()
def broker() -> None:
    """Run the embedded Kafka-compatible broker (Tansu) on 127.0.0.1 and create the topics; Ctrl-C stops it."""
    from toogreen.kafka.broker import EmbeddedBroker, ensure_topics

    settings = get_settings()
    stop = _stop_on_signals()
    with EmbeddedBroker(settings.broker.embedded_host, settings.broker.embedded_port) as embedded:
        ensure_topics(embedded.bootstrap, settings.broker.topic_partitions)
        console.print(f"[green]broker listening on {embedded.bootstrap}[/green] (memory storage); Ctrl-C to stop")
        while not stop.wait(0.5):
            if embedded.process and embedded.process.poll() is not None:
                raise typer.Exit(1)


@kafka_app.command("up")
def kafka_up(
    brokers: int = typer.Option(None, help="Brokers (default TOOGREEN_KAFKA__BROKERS, 1); 3 gives replication 3"),
    quorum: str = typer.Option(None, help="combined (each broker is a controller) or separate (controller-only JVMs)"),
    base_port: int = typer.Option(None, help="First port (broker i: base+2i, its controller base+2i+1); 0 = free"),
    run_dir: Path = typer.Option(None, help="Data dirs, logs and cluster.json (default var/kafka)"),
) -> None:
    """Install Kafka if needed, start a KRaft cluster in the foreground, create the topics; Ctrl-C stops it."""
    from toogreen.kafka.broker import ensure_topics
    from toogreen.kafka.cluster import KafkaCluster, pid_alive, read_state

    settings = get_settings()
    given = {"brokers": brokers, "quorum": quorum, "base_port": base_port}
    conf = settings.kafka.model_copy(update={k: v for k, v in given.items() if v is not None})
    if conf.quorum not in ("combined", "separate"):
        raise typer.BadParameter(f"--quorum is combined or separate, got {conf.quorum!r}")
    where = run_dir or conf.run_dir
    old = read_state(where)
    if old and pid_alive(int(old["supervisor_pid"])):
        console.print(f"[red]a cluster already runs from {where}[/red] (pid {old['supervisor_pid']}): kafka down first")
        raise typer.Exit(1)
    stop = _stop_on_signals()
    cluster = KafkaCluster(conf, where, conf.brokers, settings.broker.topic_partitions)
    with cluster:
        ensure_topics(
            cluster.bootstrap, cluster.topic_partitions, cluster.replication_factor, config=cluster.topic_config()
        )
        env = " ".join(f"{k}={v}" for k, v in cluster.client_env().items())
        console.print(
            f"[green]Kafka {conf.version} up[/green]: {conf.brokers} broker(s) at {cluster.bootstrap}, quorum "
            f"{conf.quorum}, replication {cluster.replication_factor}, min.insync.replicas "
            f"{cluster.min_insync_replicas}; logs in {where}\n  export {env}\nCtrl-C (or toogreen kafka down) stops it"
        )
        typer.echo(env)
        while not stop.wait(0.5):
            dead = [n.node_id for n in cluster.nodes if not cluster.running(n)]
            if dead:
                console.print(f"[red]Kafka node(s) {dead} exited[/red]; stopping the cluster (logs in {where})")
                raise typer.Exit(1)


@kafka_app.command("status")
def kafka_status(run_dir: Path = typer.Option(None, help="Where `kafka up` runs (default var/kafka)")) -> None:
    """Which nodes of the cluster run, and the brokers in its metadata; exit 1 when none runs."""
    from confluent_kafka.admin import AdminClient

    from toogreen.kafka.cluster import pid_alive, read_state

    where = run_dir or get_settings().kafka.run_dir
    state = read_state(where)
    if not state or not pid_alive(int(state["supervisor_pid"])):
        console.print(f"no Kafka cluster runs from {where}")
        raise typer.Exit(1)
    nodes = state["nodes"]
    assert isinstance(nodes, list)
    try:
        brokers = sorted(AdminClient({"bootstrap.servers": state["bootstrap"]}).list_topics(timeout=5).brokers)
    except Exception as exc:
        brokers = []
        console.print(f"[red]metadata request failed[/red]: {exc}")
    for node in nodes:
        up = node["pid"] is not None and pid_alive(node["pid"])
        typer.echo(
            f"node {node['node_id']:>3} {node['roles']:<18} broker :{node['broker_port']} controller "
            f":{node['controller_port']} pid {node['pid']} {'up' if up else 'DOWN'}"
        )
    typer.echo(f"bootstrap {state['bootstrap']}; brokers in metadata {brokers}")
    typer.echo(" ".join(f"{k}={v}" for k, v in state["env"].items()))


@kafka_app.command("down")
def kafka_down(run_dir: Path = typer.Option(None, help="Where `kafka up` runs (default var/kafka)")) -> None:
    """Stop the cluster `kafka up` runs (it stops its nodes in order), and wait until it has."""
    import os
    import time

    from toogreen.kafka.cluster import pid_alive, read_state

    where = run_dir or get_settings().kafka.run_dir
    state = read_state(where)
    if not state or not pid_alive(int(state["supervisor_pid"])):
        console.print(f"no Kafka cluster runs from {where}")
        return
    pid = int(state["supervisor_pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + get_settings().kafka.stop_timeout_s + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)  # its JVMs die with it
    console.print(f"Kafka cluster from {where} stopped")


@app.command()
def worker(loglevel: str = typer.Option("warning", help="Faust log level")) -> None:
    """Run the Faust worker: zone windows, node state, routing."""
    from faust.worker import Worker

    import streams.agents  # noqa: F401  (registers the agents)
    from streams.app import INTERNAL_TOPICS, changelog_topics
    from streams.app import app as faust_app
    from toogreen.kafka.broker import ensure_topics, log_lifetime
    from toogreen.lifespan import exit_after, exit_on_new_lifetime, watch_lifetime

    settings = get_settings()
    b = settings.broker
    ensure_topics(settings.bootstrap, b.topic_partitions, b.replication_factor, extra=INTERNAL_TOPICS)
    ensure_topics(settings.bootstrap, b.topic_partitions, b.replication_factor, config={"cleanup.policy": "compact"},
                  extra=changelog_topics())  # fmt: skip
    grace_s = settings.supervision.stop_grace_s

    class BoundedWorker(Worker):
        """Faust's worker, which exits at the latest ``stop_grace_s`` after a stop signal (with its broker gone
        it would wait for it much longer; the events it had not committed are read again, at-least-once)."""

        def _on_sigint(self) -> None:
            exit_after(grace_s, "worker")
            super()._on_sigint()

        def _on_sigterm(self) -> None:
            exit_after(grace_s, "worker")
            super()._on_sigterm()

    # The tables are restored from changelogs in the broker's log: under a new log they would be wrong.
    watch_lifetime(
        lambda: log_lifetime(settings.bootstrap, 2.0),
        log_lifetime(settings.bootstrap),
        settings.supervision.lifetime_check_s,
        exit_on_new_lifetime("worker"),
    )
    faust_worker = BoundedWorker(faust_app, loglevel=loglevel)
    # Faust's start-up spinner sets the root logger to DEBUG for good, so every debug call in aiokafka would build
    # a record that is then thrown away (about a seventh of the worker's time under load).
    faust_worker.spinner = None
    faust_worker.execute_from_commandline()


@app.command()
def sink() -> None:
    """Run the DuckDB sink alone (no API): every topic into the DuckDB file, idempotently."""
    from sinks.duckdb_store import Store
    from sinks.kafka_sink import DuckDBSink
    from sinks.settlement import build_settler

    settings = get_settings()
    _ensure_topics()
    stop = _stop_on_signals()
    store = Store(settings.storage.duckdb_path)
    duck = DuckDBSink(settings, store, build_settler(store, settings))
    thread = duck.start_thread()
    console.print(
        f"[green]sink writing {settings.storage.duckdb_path}[/green]; snapshot {settings.storage.snapshot_path}"
    )
    stop.wait()
    duck.stop()
    thread.join(timeout=10)
    store.close()


@app.command()
def api(with_sink: bool = typer.Option(True, help="Run the DuckDB sink in this process (the one writer)")) -> None:
    """Run the query API on http://127.0.0.1:8000 (OpenAPI at /docs), with the DuckDB sink beside it."""
    import uvicorn

    from api.app import create_app
    from sinks.duckdb_store import Store
    from sinks.kafka_sink import DuckDBSink
    from sinks.settlement import build_settler
    from toogreen.kafka.producer import RecordProducer

    settings = get_settings()
    _ensure_topics()
    store = Store(settings.storage.duckdb_path)
    duck = DuckDBSink(settings, store, build_settler(store, settings)) if with_sink else None
    if duck:
        duck.start_thread()
    application = create_app(settings, store, RecordProducer(settings.bootstrap))
    from toogreen.kafka.health import HealthMonitor

    application.state.health = HealthMonitor(settings, duck).start()  # what /healthz answers
    try:
        uvicorn.run(
            application, host=settings.api.host, port=settings.api.port, log_level="warning",
            timeout_graceful_shutdown=1, loop=settings.api.uvicorn_loop, http=settings.api.uvicorn_http,
        )  # fmt: skip
    finally:
        from toogreen.lifespan import exit_after

        exit_after(settings.supervision.stop_grace_s, "api")
        if duck:
            duck.stop()
            duck.join(settings.supervision.stop_grace_s - 0.5)


@produce_app.command("grid")
def produce_grid(count: int = typer.Option(0, help="Ticks to send (0 = until Ctrl-C)")) -> None:
    """The synthetic grid (a simulator): one reading per zone per tick, labelled 'synthetic'."""
    from connectors.runners import run_synthetic_grid

    _ensure_topics()
    stats = run_synthetic_grid(get_settings(), _stop_on_signals(), count or None)
    console.print(
        f"grid: sent {stats.sent}, delivered {stats.delivered}, rejected {stats.rejected}, failed {stats.failed}"
    )


@produce_app.command("telemetry")
def produce_telemetry(
    source: str = typer.Option("simulated", help="simulated (the demo fleet), nvml (this machine's GPUs), replay"),
    node_id: str = typer.Option("nvml-node", help="Node id (nvml: suffixed by the GPU index; replay: as is)"),
    trace: Path = typer.Option(None, help="replay: the NVML trace (default: shared/data/nvml/h100_trace.jsonl)"),
    speed: float = typer.Option(1.0, help="replay: speed-up over the recorded pace"),
    loops: int = typer.Option(1, help="replay: times through the trace"),
    interval_s: float = typer.Option(1.0, help="nvml: seconds between samples"),
    count: int = typer.Option(0, help="nvml: samples per GPU (0 = until Ctrl-C)"),
) -> None:
    """GPU telemetry into node.telemetry: the simulated fleet (a simulator: registers 20 nodes, obeys
    node.commands), real NVML, or a replay of the real H100 trace."""
    from connectors.runners import run_nvml, run_simulated_fleet, run_trace_replay

    settings = get_settings()
    _ensure_topics()
    stop = _stop_on_signals()
    if source == "simulated":
        stats = run_simulated_fleet(settings, stop)
    elif source == "nvml":
        stats = run_nvml(settings, stop, node_id, interval_s, count or None)
    elif source == "replay":
        path = trace or settings.data_dir / "nvml" / "h100_trace.jsonl"
        stats = run_trace_replay(settings, stop, path, node_id, speed, loops)
    else:
        raise typer.BadParameter(f"unknown source {source!r}: simulated, nvml or replay")
    console.print(
        f"telemetry ({source}): sent {stats.sent}, delivered {stats.delivered}, rejected {stats.rejected}, "
        f"failed {stats.failed}"
    )


@app.command("node-agent")
def node_agent(
    node_id: str = typer.Option(None, help="Node id (default: <hostname>-gpu<index>)"),
    zone: str = typer.Option(..., help="Grid zone the node draws power from (FR, DE, GB, ...)"),
    node_type: str = typer.Option("datacenter", help="datacenter, recycler or gamer"),
    gpu_model: str = typer.Option(None, help="GPU model (default: from NVML, else the replayed trace's: H100)"),
    vram_mb: int = typer.Option(None, help="GPU memory, MiB (default: from NVML or the replayed trace)"),
    pue: float = typer.Option(1.0, help="Power usage effectiveness of the site (>= 1)"),
    telemetry: str = typer.Option(None, help="nvml or replay (default: nvml where a GPU exists, else replay)"),
    workdir: Path = typer.Option(None, help="Where workloads run (default: the node_agent.workdir setting)"),
    checkpoint_store: str = typer.Option(None, help="file:///dir or a path (default: node_agent.checkpoint_store)"),
    provider: str = typer.Option(None, help="Who owns the node (default: the node id)"),
    gpu_index: int = typer.Option(0, help="nvml: which GPU of this machine"),
    wallet: str = typer.Option(None, help="Solana wallet for payouts (gamers)"),
    billing_account: str = typer.Option(None, help="Billing account for payouts"),
    declared_energy_source: str = typer.Option(None, help="e.g. 'waste heat' (recyclers)"),
    declared_carbon: float = typer.Option(None, help="Market-based gCO2eq/kWh of the declared source"),
) -> None:
    """Run a node agent: register this GPU, publish its telemetry, run the workloads the router sends it (real
    processes that checkpoint and move), report each step. The contract for workloads: docs/node-agent.md."""
    import socket

    from connectors.node_agent.agent import NodeAgent, NodeIdentity
    from connectors.node_agent.telemetry import nvml_present, open_telemetry
    from toogreen.domain.zones import ZONES

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if zone not in ZONES:
        raise typer.BadParameter(f"unknown zone {zone!r}: known zones are {', '.join(ZONES)}", param_hint="--zone")
    if node_type not in ("datacenter", "recycler", "gamer"):
        raise typer.BadParameter(f"{node_type!r}: datacenter, recycler or gamer", param_hint="--node-type")
    if pue < 1.0:
        raise typer.BadParameter(f"{pue} is below 1", param_hint="--pue")
    node = node_id or f"{socket.gethostname()}-gpu{gpu_index}"
    kind = telemetry or ("nvml" if nvml_present() else "replay")
    if kind not in ("nvml", "replay"):
        raise typer.BadParameter(f"{kind!r}: nvml or replay", param_hint="--telemetry")
    source = open_telemetry(kind, node, gpu_model, gpu_index, settings.data_dir,
                            list(settings.pricing.base_eur_per_gpu_hour))  # fmt: skip
    if workdir is not None:
        settings.node_agent.workdir = workdir
    if checkpoint_store is not None:
        settings.node_agent.checkpoint_store = checkpoint_store
    facts = source.facts
    identity = NodeIdentity(
        node_id=node, provider=provider or node, node_type=node_type, gpu_model=gpu_model or facts.gpu_model,
        vram_mb=vram_mb or facts.vram_mb, zone=zone, pue=pue, max_power_w=facts.max_power_w,
        mig_capable=facts.mig_capable, wallet=wallet, billing_account=billing_account,
        declared_energy_source=declared_energy_source, declared_carbon_gco2_per_kwh=declared_carbon,
    )  # fmt: skip
    _ensure_topics()
    agent = NodeAgent(settings, identity, source)
    label = "NVML" if kind == "nvml" else f"replay of a real {facts.name} trace (not this machine's GPU)"
    console.print(
        f"[green]node agent {node}[/green] in {zone}: {identity.gpu_model}, {identity.vram_mb} MiB, telemetry {label}; "
        f"workloads in {settings.node_agent.workdir / node}, checkpoints in {settings.node_agent.checkpoint_store}"
    )
    stats = agent.run(_stop_on_signals())
    console.print(f"node agent {node}: sent {stats.sent}, delivered {stats.delivered}, failed {stats.failed}")


@grid_app.command("intensity")
def grid_intensity(
    entsoe_csv: Path = typer.Option(..., exists=True, dir_okay=False, help="ENTSO-E production CSV"),
    zone: str = typer.Option(..., help="Zone code (FR, GB, ...)"),
    out: Path = typer.Option(..., help="Output CSV: Time, Carbon Intensity, Renewable Percentage"),
    without_imports: bool = typer.Option(False, help="Production-based intensity (leave the import columns out)"),
) -> None:
    """Carbon intensity (IPCC 2014 lifecycle factors, configurable) and renewable share from a fuel mix."""
    from connectors.entsoe import intensities, read_production_csv, write_intensity_csv
    from toogreen.domain.zones import UnknownZoneError, require_zone

    try:
        require_zone(zone)
    except UnknownZoneError as exc:
        raise typer.BadParameter(str(exc)) from exc
    series = read_production_csv(entsoe_csv)
    n = write_intensity_csv(intensities(series.mixes, get_settings().grid, not without_imports), out)
    console.print(
        f"{zone}: wrote {n} rows to {out} ({series.duplicates} duplicate timestamps dropped, {series.empty_cells} "
        f"empty cells, {series.rows_without_data} rows without data; intensity "
        f"{'production-based' if without_imports else 'with imports'})"
    )


@replay_app.command("grid")
def replay_grid(
    csv_files: list[str] = typer.Option(
        ..., "--csv", help="ZONE=PATH: a production CSV or a Time,Carbon Intensity CSV"
    ),
    speed: float = typer.Option(0.0, help="Event time per wall time (e.g. 525600 = a year in a minute); 0 = flat out"),
    start: datetime = typer.Option(None, help="First timestamp (UTC)"),
    days: float = typer.Option(0.0, help="Days to replay from --start (0 = all)"),
) -> None:
    """Replay historical grid files through grid.readings with their own timestamps (event time)."""
    from datetime import UTC, timedelta

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from connectors.replay import load_readings, merge_in_time, play
    from toogreen.kafka.producer import RecordProducer

    settings = get_settings()
    lo = start.replace(tzinfo=UTC) if start else None
    hi = lo + timedelta(days=days) if lo and days else None
    series = []
    for item in csv_files:
        zone, _, path = item.partition("=")
        if not path:
            raise typer.BadParameter(f"--csv takes ZONE=PATH, got {item!r}")
        series.append(load_readings(zone, Path(path), settings.grid, lo, hi))
    readings = merge_in_time(series)
    _ensure_topics()
    producer = RecordProducer(settings.bootstrap)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("replaying", total=len(readings))
        stats = play(producer, readings, speed, _stop_on_signals(), lambda n: progress.update(task, completed=n))
    console.print(
        f"replay: sent {stats.sent}, delivered {stats.delivered}, rejected {stats.rejected}, failed {stats.failed}"
    )


@produce_app.command("forecasts")
def produce_forecasts(
    source: str = typer.Option(
        None, help="model (fitted on each zone's readings) or electricitymaps; default: electricitymaps with a token"
    ),
    idle_exit_s: float = typer.Option(0.0, help="Stop after this many seconds without a reading (0 = until Ctrl-C)"),
) -> None:
    """Day-ahead intensity forecasts per zone onto grid.forecasts, from grid.readings (a replay included)."""
    from connectors.forecaster import run_forecaster

    settings = get_settings()
    _ensure_topics()
    chosen = source or ("electricitymaps" if settings.grid.electricitymaps_token else "model")
    stats = run_forecaster(settings, _stop_on_signals(), chosen, idle_exit_s or None)
    delivered = stats.delivery.delivered if stats.delivery else 0
    console.print(
        f"forecasts ({chosen}): issued {stats.issued}, delivered {delivered}, "
        f"too little history {stats.too_little_history}, vendor failures {len(stats.vendor_failures)}"
    )


@produce_app.command("workloads")
def produce_workloads(
    count: int = typer.Option(0, help="Workloads to submit (0 = until Ctrl-C)"),
    submitter: list[str] = typer.Option(None, help="Developer subjects the workloads belong to, in turn"),
) -> None:
    """A trickle of demo workloads straight onto workload.events."""
    from connectors.runners import run_workload_trickle

    _ensure_topics()
    stats = run_workload_trickle(get_settings(), _stop_on_signals(), count or None, tuple(submitter or ()))
    console.print(f"workloads: sent {stats.sent}, delivered {stats.delivered}")


@produce_app.command("raw")
def produce_raw(
    topic: str, value: str, key: Annotated[str, typer.Option(help="Message key")] = "", hex_value: bool = False
) -> None:
    """Send one raw message (no validation): for checking that bad input is dead-lettered."""
    from toogreen.kafka.producer import RecordProducer

    producer = RecordProducer(get_settings().bootstrap)
    producer.send_raw(topic, key.encode() or None, bytes.fromhex(value) if hex_value else value.encode())
    producer.flush()
    console.print(f"sent {len(value)} bytes to {topic}")


@app.command()
def submit(
    name: str = typer.Option(...),
    image: str = typer.Option(None),
    command: str = typer.Option(None),
    workload_type: str = typer.Option("inference"),
    vram_mb: int = typer.Option(...),
    expected_hours: float = typer.Option(...),
    priority: str = typer.Option("normal"),
    green_only: bool = typer.Option(False),
    max_carbon_gco2_kwh: float = typer.Option(None),
    budget_eur: float = typer.Option(None),
    deadline: str = typer.Option(None, help="ISO 8601 with offset"),
    api_url: str = typer.Option(None, help="Default: the configured API address"),
    token: str = typer.Option(None, envvar="TOOGREEN_API_TOKEN", help="A developer token (default: the admin's)"),
    idempotency_key: str = typer.Option(None, help="Default: a new one; retries of this call reuse it"),
) -> None:
    """Submit a workload through the API (retrying with one Idempotency-Key, so never twice); prints its id."""
    import uuid

    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    settings = get_settings()
    url = api_url or f"http://{settings.api.host}:{settings.api.port}"
    headers = {
        "Authorization": f"Bearer {token or settings.api.admin_token}",
        "Idempotency-Key": idempotency_key or uuid.uuid4().hex,
    }
    body = {k: v for k, v in {
        "name": name, "image": image, "command": command, "workload_type": workload_type, "vram_mb": vram_mb,
        "expected_hours": expected_hours, "priority": priority, "green_only": green_only,
        "max_carbon_gco2_kwh": max_carbon_gco2_kwh, "budget_eur": budget_eur, "deadline": deadline,
    }.items() if v is not None}  # fmt: skip

    class Retry(Exception):
        pass

    @retry(retry=retry_if_exception_type((httpx.TransportError, Retry)), stop=stop_after_attempt(4),
           wait=wait_exponential(0.5, max=4), reraise=True)  # fmt: skip
    def post() -> httpx.Response:
        response = httpx.post(f"{url}/api/v1/workloads", json=body, headers=headers, timeout=15)
        if response.status_code == 503:
            raise Retry
        return response

    try:
        response = post()
    except Retry:
        console.print("[red]503[/red] the API could not publish the submission; tried 4 times")
        raise typer.Exit(1) from None
    if response.status_code != 202:
        console.print(f"[red]{response.status_code}[/red] {response.text}")
        raise typer.Exit(1)
    typer.echo(json.dumps(response.json()))


@token_app.command("create")
def token_create(
    role: str = typer.Option(..., help="admin, developer, datacenter, recycler or gamer"),
    subject: str = typer.Option(..., help="Who the token acts for: a developer, or the provider named on its nodes"),
    api_url: str = typer.Option(None, help="Default: the configured API address"),
    admin_token: str = typer.Option(None, envvar="TOOGREEN_API__ADMIN_TOKEN", help="Default: the settings' one"),
) -> None:
    """Issue a token through the running API (as admin); prints {"role", "subject", "token"} (shown once)."""
    settings = get_settings()
    url = api_url or f"http://{settings.api.host}:{settings.api.port}"
    try:
        response = httpx.post(
            f"{url}/api/v1/admin/tokens",
            json={"role": role, "subject": subject},
            headers={"Authorization": f"Bearer {admin_token or settings.api.admin_token}"},
            timeout=15,
        )
    except httpx.HTTPError as exc:
        console.print(f"[red]could not reach the API at {url}[/red]: {exc}")
        raise typer.Exit(1) from exc
    if response.status_code != 201:
        console.print(f"[red]{response.status_code}[/red] {response.text}")
        raise typer.Exit(1)
    typer.echo(json.dumps(response.json()))


@receipt_app.command("verify")
def receipt_verify(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The receipt as JSON"),
    public_key: Path = typer.Option(None, help="PEM or hex public key (default: the platform key's public half)"),
) -> None:
    """Exit 0 for a valid receipt, 1 for an invalid one (saying which check failed)."""
    from toogreen.signing import load_or_create_key, load_public_key, verify_receipt

    try:
        receipt = json.loads(file.read_text())
    except ValueError as exc:
        console.print(f"[red]invalid:[/red] {file} is not JSON ({exc})")
        raise typer.Exit(1) from exc
    if public_key is not None:
        trusted = load_public_key(public_key.read_text())
    else:
        trusted = load_or_create_key(get_settings().settlement.signing_key_path).public_key()
    result = verify_receipt(receipt, trusted)
    if result.valid:
        typer.echo(f"valid: receipt {receipt.get('receipt_id')} for workload {receipt.get('workload_id')}")
        return
    typer.echo(f"invalid: {result.failed_check}")
    raise typer.Exit(1)


@receipt_app.command("public-key")
def receipt_public_key() -> None:
    """Print the platform's receipt-signing public key (PEM)."""
    from toogreen.signing import load_or_create_key, public_key_pem

    typer.echo(public_key_pem(load_or_create_key(get_settings().settlement.signing_key_path)), nl=False)


@app.command()
def evaluate(
    grid: list[str] = typer.Option(..., "--grid", help="ZONE=PATH, a 'Time, Carbon Intensity' CSV (repeatable)"),
    fleet: Path = typer.Option(None, exists=True, help="CSV: node_id,zone,node_type,gpu_model,vram_mb,power_w,pue"),
    workloads: Path = typer.Option(None, exists=True, help="CSV: workload_id,submitted_at,duration_h,deadline_at,..."),
    start: str = typer.Option(None, help="First day (UTC, e.g. 2020-01-06); default: the grid's first day"),
    days: float = typer.Option(7.0, help="Days of submissions"),
    per_day: float = typer.Option(40.0, help="Generated workloads per day (when no --workloads)"),
    seed: int = typer.Option(7),
    out: Path = typer.Option(..., help="Where the JSON goes"),
    plot_png: Path = typer.Option(None, "--plot", help="Also draw intensity and where the work ran (PNG)"),
    policy: list[str] = typer.Option(None, help="Only these policies (default: all)"),
) -> None:
    """Replay historical grid data through the routing policies (ours uses the agents' own router code)."""
    from toogreen.evaluation.inputs import (
        HOUR_MS,
        day_start,
        generated_fleet,
        generated_workloads,
        load_grid,
        read_fleet,
        read_workloads,
    )  # fmt: skip
    from toogreen.evaluation.report import evaluate as run_all
    from toogreen.evaluation.report import plot, write_report
    from toogreen.evaluation.simulate import POLICIES, Scenario

    series = load_grid(grid)
    first = min(s.points[0].ts_ms for s in series.values())
    start_ms = day_start(start) if start else first - first % (24 * HOUR_MS)
    end_ms = start_ms + int(days * 24 * HOUR_MS)
    nodes = read_fleet(fleet) if fleet else generated_fleet(sorted(series), seed)
    trace = read_workloads(workloads) if workloads else generated_workloads(start_ms, days, per_day, seed)
    scenario = Scenario(series, nodes, trace, start_ms, end_ms, get_settings(), seed)
    chosen = tuple(policy) if policy else POLICIES
    report, results = run_all(scenario, chosen)
    write_report(report, out)
    for name, summary in report["policies"].items():
        typer.echo(f"{name:20s} {json.dumps(summary)}")
    if plot_png and "toogreen" in results:
        plot(scenario, results["toogreen"], plot_png, f"toogreen on {', '.join(sorted(series))}")


@app.command()
def sql(query: str, snapshot: Path = typer.Option(None, help="Default: the configured snapshot path")) -> None:
    """Run a read-only SQL query on the analysts' DuckDB snapshot."""
    import duckdb

    path = snapshot or get_settings().storage.snapshot_path
    if not path.exists():
        console.print(f"[red]no snapshot at {path}[/red]: is the sink running?")
        raise typer.Exit(1)
    con = duckdb.connect(str(path), read_only=True)
    con.sql(query).show()


@app.command()
def demo(duration_s: float = typer.Option(0, help="Stop after this many seconds (0 = until Ctrl-C)")) -> None:
    """Run everything: embedded broker, worker, sink + API, synthetic grid, simulated fleet, workload trickle."""
    from toogreen.app.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    code = run_demo(get_settings(), duration_s or None)
    # Everything is stopped: not waiting for librdkafka's threads to give up on the broker stopped last (a second).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    app()
