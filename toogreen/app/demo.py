"""Starting, supervising and stopping the whole system as separate processes: the demo, and the integration
tests, use it.

Every child gets the same settings through the environment (``TOOGREEN_...``), its own log file under the run
directory, its own session (a Ctrl-C in the terminal reaches the demo only), and dies with the demo however the
demo dies (``PR_SET_PDEATHSIG``). A supervised stack restarts a child that died, with back-off and a log line
(``supervisor.log`` in the run directory); a broker that died is restarted first, and with it every other child (they
hold clients and state of the lost log: the worker's tables, the fleet's commands, producer ids), since a new broker
is a new log lifetime.
:meth:`Stack.stop` asks every child to stop at once, kills what is left after ``demo_stop_timeout_s``, and stops
the broker last.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from toogreen.kafka.broker import BrokerError, EmbeddedBroker, die_with_parent, ensure_topics, port_open
from toogreen.settings import Settings

console = Console(stderr=True)


def toogreen_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "toogreen.app.cli", *args]


@dataclass
class Child:
    """One supervised process: how to start it again, and its restart history."""

    name: str
    args: tuple[str, ...]
    proc: subprocess.Popen[bytes]
    started_at: float
    restarts: int = 0
    backoff_s: float = 0.0
    restart_at: float | None = None  # set while it waits out its back-off


@dataclass
class Stack:
    """The processes of one running system."""

    settings: Settings
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    supervised: bool = False  # restart what dies (the demo) or fail at once (the tests of the pipeline)
    broker: EmbeddedBroker | None = None
    managed: list[Child] = field(default_factory=list)
    broker_restarts: int = 0
    _broker_backoff_s: float = 0.0
    _broker_restart_at: float | None = None
    _stopping: bool = False

    @property
    def children(self) -> list[tuple[str, subprocess.Popen[bytes]]]:
        return [(c.name, c.proc) for c in self.managed]

    def child_env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.env,
            "TOOGREEN_BROKER__BOOTSTRAP": self.settings.bootstrap,
            "PYTHONUNBUFFERED": "1",
        }

    def note(self, text: str) -> None:
        """A supervision log line: on the console and in ``supervisor.log``."""
        console.print(f"[yellow]supervisor:[/yellow] {text}")
        with open(self.run_dir / "supervisor.log", "a") as out:
            out.write(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {text}\n")

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

    def _popen(self, name: str, args: tuple[str, ...]) -> subprocess.Popen[bytes]:
        log = open(self.run_dir / f"{name}.log", "ab")  # noqa: SIM115  (the child owns it)
        try:
            return subprocess.Popen(
                toogreen_argv(*args),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.child_env(),
                start_new_session=True,  # Ctrl-C reaches the demo only; it stops the children
                preexec_fn=die_with_parent,
            )
        finally:
            log.close()

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        proc = self._popen(name, args)
        self.managed.append(Child(name, args, proc, time.monotonic()))
        return proc

    def retire(self, name: str) -> None:
        """Stop a child for good (it is not restarted)."""
        for child in [c for c in self.managed if c.name == name]:
            self.managed.remove(child)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGTERM)
            try:
                child.proc.wait(timeout=self.settings.supervision.demo_stop_timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(child.proc)
                child.proc.wait()

    def log_text(self, name: str) -> str:
        path = self.run_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check_alive(self) -> None:
        if self.supervised:
            self.supervise()
            return
        for child in self.managed:
            if child.proc.poll() is not None:
                tail = self.log_text(child.name)[-2000:]
                raise RuntimeError(f"{child.name} exited with code {child.proc.returncode}; end of its log:\n{tail}")

    # -- supervision -----------------------------------------------------------------------------------------
    def _next_backoff(self, previous_s: float, up_s: float) -> float:
        sup = self.settings.supervision
        if previous_s <= 0 or up_s >= sup.restart_reset_after_s:
            return sup.restart_backoff_min_s
        return min(previous_s * 2, sup.restart_backoff_max_s)

    def supervise(self) -> None:
        """Restart what died (call it often, from the thread that started the children: see ``die_with_parent``)."""
        if self._stopping:
            return
        now = time.monotonic()
        if self.broker is not None and not self.broker.alive():
            self._supervise_broker(now)
            return  # nothing else starts before the broker is back
        for child in self.managed:
            code = child.proc.poll()
            if code is None:
                continue
            if child.restart_at is None:
                child.backoff_s = self._next_backoff(child.backoff_s, now - child.started_at)
                child.restart_at = now + child.backoff_s
                self.note(
                    f"{child.name} exited with code {code} after {now - child.started_at:.1f} s; restarting it in "
                    f"{child.backoff_s:.1f} s (restart {child.restarts + 1}; log {self.run_dir / child.name}.log)"
                )
            elif now >= child.restart_at:
                self._restart(child, now)

    def _restart(self, child: Child, now: float) -> None:
        child.proc = self._popen(child.name, child.args)
        child.started_at, child.restart_at = now, None
        child.restarts += 1
        self.note(f"{child.name} restarted (pid {child.proc.pid})")

    def _supervise_broker(self, now: float) -> None:
        assert self.broker is not None
        sup = self.settings.supervision
        if self._broker_restart_at is None:
            code = self.broker.process.returncode if self.broker.process else None
            self._broker_backoff_s, self._broker_restart_at = sup.restart_backoff_min_s, now
            self.note(f"the broker exited with code {code}: its log is lost; starting a new one (a new log lifetime)")
            # Every child, before the new broker listens: what they still buffer (changelog records, the fleet's
            # events, offset commits) belongs to the lost log and would confuse the next worker's recovery, and an
            # idempotent producer's id is unknown to a new broker (its sends would stall).
            for child in self.managed:
                if child.proc.poll() is None:
                    _kill_group(child.proc)
                    child.proc.wait()
        if now < self._broker_restart_at:
            return
        try:
            self.broker.start()
            self.create_topics()
        except BrokerError as exc:
            self._broker_backoff_s = min(self._broker_backoff_s * 2, sup.restart_backoff_max_s)
            self._broker_restart_at = now + self._broker_backoff_s
            self.note(f"the broker did not start ({exc}); trying again in {self._broker_backoff_s:.1f} s")
            self.broker.stop(0.5)
            return
        self._broker_restart_at = None
        self.broker_restarts += 1
        self.note(f"broker restarted on {self.broker.bootstrap}, log lifetime {self.broker.lifetime_id}")
        for child in self.managed:
            if child.proc.poll() is not None:
                self._restart(child, time.monotonic())

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

    def stop(self) -> float:
        """Every child asked to stop at once, what is left killed after ``demo_stop_timeout_s``, the broker last;
        returns the seconds it took."""
        started = time.monotonic()
        self._stopping = True
        for child in self.managed:
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.proc.pid, signal.SIGTERM)
        deadline = started + self.settings.supervision.demo_stop_timeout_s
        for child in self.managed:
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(child.proc)
                child.proc.wait()
        self.managed.clear()
        if self.broker:
            self.broker.stop(timeout_s=1.0)
            self.broker = None
        return time.monotonic() - started


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


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
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (in the background)
    run_dir = settings.storage.duckdb_path.parent / "demo-logs"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {}
    if not settings.settlement.solana_rpc_url:
        # gamers' payouts in the demo are real transactions executed by an in-process Solana VM (LiteSVM)
        env["TOOGREEN_SETTLEMENT__SOLANA_RPC_URL"] = "litesvm"
    # the simulated node agents keep what runs on their GPUs here, so a restarted agent carries on with it
    env["TOOGREEN_SUPERVISION__FLEET_STATE_PATH"] = str(run_dir / "fleet-state.json")
    stack = Stack(settings, run_dir, env=env, supervised=True)
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
            agents = spawn_node_agents(stack)
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
            f"(gamer payouts: {settings.settlement.solana_rpc_url or 'in-process Solana VM'})\n"
            f"  node agents  {', '.join(agents) or 'none'} (real processes running the reference workload; "
            f"telemetry: a replay of a real H100 trace), workloads in {settings.node_agent.workdir}\n"
            f"  broker       {settings.bootstrap}{' (embedded Tansu)' if settings.uses_embedded_broker else ''}\n"
            "Ctrl-C stops everything."
        )
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while deadline is None or time.monotonic() < deadline:
            stack.supervise()
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut the stopping short
        console.print("stopping…")
        took_s = stack.stop()
        console.print(f"stopped in {took_s:.1f} s.")


def spawn_node_agents(stack: Stack) -> list[str]:
    """A real node agent per ``node_agent.demo_zones`` zone (replayed telemetry: the demo machine needs no GPU)."""
    names = []
    for zone in stack.settings.node_agent.demo_zones:
        name = f"agent-{zone.lower()}-1"
        stack.spawn(name, "node-agent", "--node-id", name, "--zone", zone, "--telemetry", "replay",
                    "--provider", "demo node agents")  # fmt: skip
        names.append(name)
    return names


def _count(stack: Stack, path: str, field: str) -> int:
    """How many items the API lists at ``path`` have ``field`` set (0 while the API does not answer)."""
    try:
        items = httpx.get(f"{stack.api_url()}{path}", headers=stack.api_headers(), timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return 0
    return sum(1 for item in items if item.get(field))
