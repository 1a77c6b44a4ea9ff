"""The ``toogreen`` command: one subcommand per part of the system, and the demo that runs them all."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
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
console = Console(stderr=True)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _ensure_topics() -> None:
    from toogreen.broker import ensure_topics

    settings = get_settings()
    ensure_topics(settings.bootstrap, settings.broker.topic_partitions, settings.broker.replication_factor)


@app.command()
def broker() -> None:
    """Run the embedded Kafka-compatible broker (Tansu) on 127.0.0.1 and create the topics; Ctrl-C stops it."""
    from toogreen.broker import EmbeddedBroker, ensure_topics

    settings = get_settings()
    stop = _stop_on_signals()
    with EmbeddedBroker(settings.broker.embedded_host, settings.broker.embedded_port) as embedded:
        ensure_topics(embedded.bootstrap, settings.broker.topic_partitions)
        console.print(f"[green]broker listening on {embedded.bootstrap}[/green] (memory storage); Ctrl-C to stop")
        while not stop.wait(0.5):
            if embedded.process and embedded.process.poll() is not None:
                raise typer.Exit(1)


@app.command()
def worker(loglevel: str = typer.Option("warning", help="Faust log level")) -> None:
    """Run the Faust worker: zone windows, node state, routing."""
    _ensure_topics()
    from faust.worker import Worker

    import streams.agents  # noqa: F401  (registers the agents)
    from streams.app import app as faust_app

    Worker(faust_app, loglevel=loglevel).execute_from_commandline()


@app.command()
def sink() -> None:
    """Run the DuckDB sink alone (no API): every topic into the DuckDB file, idempotently."""
    from sinks.duckdb_store import Store
    from sinks.kafka_sink import DuckDBSink

    settings = get_settings()
    _ensure_topics()
    stop = _stop_on_signals()
    store = Store(settings.storage.duckdb_path)
    duck = DuckDBSink(settings, store)
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
    from toogreen.kafka_io import RecordProducer

    settings = get_settings()
    _ensure_topics()
    store = Store(settings.storage.duckdb_path)
    duck = DuckDBSink(settings, store) if with_sink else None
    if duck:
        duck.start_thread()
    application = create_app(settings, store, RecordProducer(settings.bootstrap))
    try:
        uvicorn.run(application, host=settings.api.host, port=settings.api.port, log_level="warning")
    finally:
        if duck:
            duck.stop()


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
def produce_telemetry() -> None:
    """The simulated fleet (a simulator): registers 20 nodes, obeys node.commands, reports telemetry and progress."""
    from connectors.runners import run_simulated_fleet

    _ensure_topics()
    stats = run_simulated_fleet(get_settings(), _stop_on_signals())
    console.print(
        f"fleet: sent {stats.sent}, delivered {stats.delivered}, rejected {stats.rejected}, failed {stats.failed}"
    )


@produce_app.command("workloads")
def produce_workloads(count: int = typer.Option(0, help="Workloads to submit (0 = until Ctrl-C)")) -> None:
    """A trickle of demo workloads straight onto workload.events."""
    from connectors.runners import run_workload_trickle

    _ensure_topics()
    stats = run_workload_trickle(get_settings(), _stop_on_signals(), count or None)
    console.print(f"workloads: sent {stats.sent}, delivered {stats.delivered}")


@produce_app.command("raw")
def produce_raw(
    topic: str, value: str, key: Annotated[str, typer.Option(help="Message key")] = "", hex_value: bool = False
) -> None:
    """Send one raw message (no validation): for checking that bad input is dead-lettered."""
    from toogreen.kafka_io import RecordProducer

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
) -> None:
    """Submit a workload through the API; prints its id."""
    settings = get_settings()
    url = api_url or f"http://{settings.api.host}:{settings.api.port}"
    body = {k: v for k, v in {
        "name": name, "image": image, "command": command, "workload_type": workload_type, "vram_mb": vram_mb,
        "expected_hours": expected_hours, "priority": priority, "green_only": green_only,
        "max_carbon_gco2_kwh": max_carbon_gco2_kwh, "budget_eur": budget_eur, "deadline": deadline,
    }.items() if v is not None}  # fmt: skip
    response = httpx.post(f"{url}/api/v1/workloads", json=body, timeout=15)
    if response.status_code != 202:
        console.print(f"[red]{response.status_code}[/red] {response.text}")
        raise typer.Exit(1)
    typer.echo(json.dumps(response.json()))


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
    from toogreen.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    sys.exit(run_demo(get_settings(), duration_s or None))


if __name__ == "__main__":
    app()
