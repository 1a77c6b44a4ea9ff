"""Starting and stopping the whole system as separate processes: the demo, and the integration tests, use it.

Every child gets the same settings through the environment (``TOOGREEN_...``), its own log file under the run
directory, and is stopped (SIGTERM, then SIGKILL) in reverse order of starting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from toogreen.kafka.broker import EmbeddedBroker, die_with_parent, ensure_topics, port_open
from toogreen.settings import Settings

console = Console(stderr=True)


def toogreen_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "toogreen.app.cli", *args]


@dataclass
class Stack:
    """The processes of one running system."""

    settings: Settings
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    broker: EmbeddedBroker | None = None
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def child_env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.env,
            "TOOGREEN_BROKER__BOOTSTRAP": self.settings.bootstrap,
            "PYTHONUNBUFFERED": "1",
        }

    def start_broker(self) -> None:
        if not self.settings.uses_embedded_broker:
            return
        self.broker = EmbeddedBroker(
            self.settings.broker.embedded_host, self.settings.broker.embedded_port, self.run_dir / "broker.log"
        ).start()

    def create_topics(self) -> None:
        ensure_topics(
            self.settings.bootstrap, self.settings.broker.topic_partitions, self.settings.broker.replication_factor
        )

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.run_dir / f"{name}.log", "ab")  # noqa: SIM115  (the child owns it)
        proc = subprocess.Popen(
            toogreen_argv(*args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.child_env(),
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops the children in order
            preexec_fn=die_with_parent,
        )
        self.children.append((name, proc))
        return proc

    def log_text(self, name: str) -> str:
        path = self.run_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check_alive(self) -> None:
        for name, proc in self.children:
            if proc.poll() is not None:
                tail = self.log_text(name)[-2000:]
                raise RuntimeError(f"{name} exited with code {proc.returncode}; end of its log:\n{tail}")

    def wait_for(self, what: str, ready: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if ready():
                return
            time.sleep(0.25)
        raise TimeoutError(f"{what} not ready within {timeout_s:.0f} s (logs in {self.run_dir})")

    def api_url(self) -> str:
        return f"http://{self.settings.api.host}:{self.settings.api.port}"

    def api_headers(self) -> dict[str, str]:
        """The settings' admin token, as a bearer header."""
        return {"Authorization": f"Bearer {self.settings.api.admin_token}"}

    def api_ready(self) -> bool:
        try:
            return httpx.get(f"{self.api_url()}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def worker_ready(self) -> bool:
        return "Worker]: Ready" in self.log_text("worker")

    def stop(self) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(self.children):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.children.clear()
        if self.broker:
            self.broker.stop()
            self.broker = None


def start_core(stack: Stack, progress: Progress | None = None) -> None:
    """Broker, topics, worker, and the API with its DuckDB sink; returns when all are ready."""

    def step(text: str, action: Callable[[], None]) -> None:
        task = progress.add_task(text) if progress else None
        action()
        if progress and task is not None:
            progress.update(task, description=f"[green]✓[/green] {text}", completed=1, total=1)

    if stack.settings.uses_embedded_broker:
        step(f"embedded broker on {stack.settings.bootstrap}", stack.start_broker)
    else:
        step(
            f"Kafka at {stack.settings.bootstrap}",
            lambda: stack.wait_for("kafka", lambda: port_open(*_host_port(stack.settings.bootstrap)), 30),
        )
    step("topics", stack.create_topics)
    stack.spawn("worker", "worker", "--loglevel", "info")
    stack.spawn("api", "api")
    step("API and DuckDB sink", lambda: stack.wait_for("API", stack.api_ready, 60))
    step("Faust worker (group join)", lambda: stack.wait_for("worker", stack.worker_ready, 90))


# The demo's people: one token per role plus a second developer. The providers are the simulated fleet's
# (connectors/fleet_sim.py), and the workload trickle submits as the two developers, so every role sees something.
DEMO_PEOPLE: dict[str, tuple[str, str]] = {
    "admin": ("admin", "demo-admin"),
    "developer": ("developer", "ada"),
    "developer-2": ("developer", "grace"),
    "datacenter": ("datacenter", "Nordique Cloud"),
    "recycler": ("recycler", "Sol Heat Recovery"),
    "gamer": ("gamer", "camille"),
}
DEMO_DEVELOPERS = tuple(subject for role, subject in DEMO_PEOPLE.values() if role == "developer")


def issue_demo_tokens(stack: Stack, path: Path) -> dict[str, dict[str, str]]:
    """A token per demo person, issued by the running API (stored hashed there), written to ``path``."""
    tokens = {}
    for name, (role, subject) in DEMO_PEOPLE.items():
        r = httpx.post(
            f"{stack.api_url()}/api/v1/admin/tokens",
            json={"role": role, "subject": subject},
            headers=stack.api_headers(),
            timeout=10,
        )
        r.raise_for_status()
        tokens[name] = r.json()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tokens, indent=2) + "\n")
    path.chmod(0o600)
    return tokens


def _host_port(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    return host, int(port)


def _interrupt(_sig: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(settings: Settings, duration_s: float | None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    run_dir = settings.storage.duckdb_path.parent / "demo-logs"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {}
    if not settings.settlement.solana_rpc_url:
        # gamers' payouts in the demo are real transactions executed by an in-process Solana VM (LiteSVM)
        env["TOOGREEN_SETTLEMENT__SOLANA_RPC_URL"] = "litesvm"
    stack = Stack(settings, run_dir, env=env)
    url = stack.api_url()
    started = time.monotonic()
    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
        ) as progress:
            start_core(stack, progress)
            tokens_path = settings.storage.duckdb_path.parent / "demo-tokens.json"
            tokens = issue_demo_tokens(stack, tokens_path)
            console.print(
                f"demo tokens (one per role, and a second developer) written to {tokens_path}: "
                f"{url}/#token={tokens['admin']['token']} signs in as admin"
            )
            stack.spawn("grid", "produce", "grid")
            stack.spawn("fleet", "produce", "telemetry")
            task = progress.add_task("zone windows from the synthetic grid, the simulated fleet registering")
            stack.wait_for("zone windows", lambda: _count(stack, "/api/v1/zones", "window_5m") >= 11, 60)
            stack.wait_for("fleet", lambda: _count(stack, "/api/v1/nodes", "routable") >= 1, 60)
            progress.update(
                task, description="[green]✓[/green] 11 zones with windowed values, fleet routable", completed=1, total=1
            )
            stack.spawn("workloads", "produce", "workloads", *[f"--submitter={d}" for d in DEMO_DEVELOPERS])
        console.print(
            f"\n[bold green]Too Green To Go is running[/bold green] ({time.monotonic() - started:.0f} s to start)\n"
            f"  API          {url}/api/v1/zones   {url}/api/v1/nodes   {url}/api/v1/workloads\n"
            f"  OpenAPI      {url}/docs\n"
            f"  tokens       {tokens_path} (admin, developer, developer-2, datacenter, recycler, gamer)\n"
            f"  submit       TOOGREEN_API_TOKEN=<developer token> toogreen submit --name my-job --image my/image "
            f"--vram-mb 16000 --expected-hours 1\n"
            f"  analysts     duckdb {settings.storage.snapshot_path}   (a snapshot refreshed every "
            f"{settings.storage.snapshot_interval_s:.0f} s)\n"
            f"  logs         {run_dir}\n"
            f"  settlement   receipts at {url}/api/v1/sustainability, bills at {url}/api/v1/billing "
            f"(gamer payouts: {'in-process Solana VM' if env else settings.settlement.solana_rpc_url})\n"
            f"  broker       {settings.bootstrap}{' (embedded Tansu)' if settings.uses_embedded_broker else ''}\n"
            "Ctrl-C stops everything."
        )
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while deadline is None or time.monotonic() < deadline:
            stack.check_alive()
            time.sleep(1)
        return 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        return 1
    finally:
        console.print("stopping…")
        stack.stop()
        console.print("stopped.")


def _count(stack: Stack, path: str, field: str) -> int:
    """How many items the API lists at ``path`` have ``field`` set (0 while the API does not answer)."""
    try:
        items = httpx.get(f"{stack.api_url()}{path}", headers=stack.api_headers(), timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return 0
    return sum(1 for item in items if item.get(field))
