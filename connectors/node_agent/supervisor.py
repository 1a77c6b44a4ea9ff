"""What a node agent does with its workloads: obey ``node.commands``, run each one as a real process, and say
what happened as ``workload.events`` records. No Kafka here: :meth:`Supervisor.handle` and
:meth:`Supervisor.poll` return the records; the agent's loop sends them.

The protocol is the router's (``toogreen.domain.router``), the one the simulated fleet speaks:

- ``start`` → the command runs → ``started``; its exit decides ``completed`` (with ``result_sha256``) or ``failed``.
- ``checkpoint`` (the first half of a move) → SIGTERM: the workload checkpoints and exits 0; the agent stores the
  checkpoint and reports ``checkpointed`` with its location, sha256, size and step times. The process is gone
  before the router hears of it, so the workload never runs in two places at once.
- ``stop`` → nothing left to do after a move; a workload still running here is stopped without a report (it runs
  elsewhere now).
- ``resume`` → fetch the checkpoint, check its sha256 (a mismatch refuses the resume: ``failed``, and the router
  rolls back), start the command with ``TOOGREEN_RESUME_FROM`` → ``resumed`` once it reports progress, with the
  transfer and restore times and the move's downtime.
- every ``checkpoint_interval_s`` → SIGUSR1: the workload checkpoints and goes on; the stored checkpoint is
  reported on a ``progress`` event (its ``checkpoint_uri``), the one a lost node's workload is resumed from.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import tarfile
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from connectors.node_agent.process import WorkloadDir, describe_exit, signal_workload, spawn
from connectors.node_agent.store import CheckpointError, CheckpointStore, ChecksumMismatch, FetchedCheckpoint
from toogreen.settings import NodeAgentSettings

log = logging.getLogger(__name__)

SEEN_COMMANDS_KEPT = 1024
StopKind = Literal["move", "shutdown", "silent"]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


@dataclass
class PendingCheckpoint:
    """A checkpoint asked for (by signal) and not yet written."""

    signalled_mono: float
    signalled_ms: int
    before: tuple[int, int] | None  # the ``LATEST`` file before the signal (a checkpoint written replaces it)


@dataclass
class PendingResume:
    """A resumed workload whose ``resumed`` report waits for its first progress."""

    uri: str
    fetched: FetchedCheckpoint
    decision_id: str | None


@dataclass
class WorkloadRun:
    workload_id: str
    command: str
    wdir: WorkloadDir
    proc: subprocess.Popen[bytes]
    spawned_mono: float
    decision_id: str | None
    last_checkpoint_mono: float
    resume: PendingResume | None = None
    checkpoint: PendingCheckpoint | None = None
    stopping: StopKind | None = None
    stop_delivered: bool = False
    progress_pct: float | None = None
    progress_sent_pct: float | None = None
    progress_sent_mono: float = 0.0
    last_checkpoint_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    progress_seen: bool = False

    def alive(self) -> bool:
        return self.proc.poll() is None


class Supervisor:
    """The workloads of one node."""

    def __init__(
        self, node_id: str, workdir: Path, store: CheckpointStore, settings: NodeAgentSettings, vram_mb: int = 0
    ) -> None:
        self.node_id = node_id
        self.workdir = workdir
        self.store = store
        self.settings = settings
        self.vram_mb = vram_mb
        self.runs: dict[str, WorkloadRun] = {}
        self.reserved_mb: dict[str, int] = {}
        self._seen: deque[str] = deque(maxlen=SEEN_COMMANDS_KEPT)
        workdir.mkdir(parents=True, exist_ok=True)

    # -- what the agent asks ------------------------------------------------------------------------------------

    def busy(self) -> bool:
        return any(run.alive() for run in self.runs.values())

    def used_vram_mb(self) -> int:
        return sum(self.reserved_mb.get(w, 0) for w in self.runs)

    def event(self, workload_id: str, kind: str, **fields: Any) -> dict[str, Any]:
        """A ``workload.events`` record from this node (fields not given take their schema defaults)."""
        return {
            "event_id": f"agent:{self.node_id}:{workload_id}:{kind}:{uuid.uuid4().hex[:12]}",
            "workload_id": workload_id, "ts_ms": _now_ms(), "type": kind, "node_id": self.node_id,
            "progress_pct": None, "checkpoint_uri": None, "decision_id": None, "reason": None, "request": None,
            **fields,
        }  # fmt: skip

    def handle(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        """Obey one ``node.commands`` record addressed to this node (a redelivered one is a no-op)."""
        if command["node_id"] != self.node_id or command["command_id"] in self._seen:
            return []
        self._seen.append(command["command_id"])
        wid, action = command["workload_id"], command["action"]
        run = self.runs.get(wid)
        log.info("%s: %s %s", self.node_id, action, wid)
        if action == "start":
            return [] if run else self._start(command)
        if action == "resume":
            if run and run.alive() and run.stopping is None:
                return []  # already running here (a rollback to a node that never stopped it, or a redelivery)
            return self._resume(command)
        if run is None or not run.alive():
            return []
        if action == "checkpoint":
            if run.stopping is None:
                run.decision_id = command.get("decision_id")  # the move's decision: its checkpointed event names it
                self._stop(run, "move")
        elif action == "stop":
            self._stop(run, "silent")
        return []

    def poll(self) -> list[dict[str, Any]]:
        """Look at every workload: exits, checkpoints written, progress, timers. Returns the events to send."""
        events: list[dict[str, Any]] = []
        for run in list(self.runs.values()):
            code = run.proc.poll()
            events += self._watch(run) if code is None else self._exited(run, code)
        return events

    def shutdown(self, timeout_s: float | None = None) -> list[dict[str, Any]]:
        """The agent is stopping: every workload checkpoints and exits; each stored checkpoint is reported (a
        ``progress`` event with its location), so the workload can be resumed elsewhere from there."""
        for run in self.runs.values():
            if run.alive() and run.stopping is None:
                self._stop(run, "shutdown")
        deadline = time.monotonic() + (self.settings.stop_timeout_s if timeout_s is None else timeout_s)
        events: list[dict[str, Any]] = []
        while self.runs and time.monotonic() < deadline:
            events += self.poll()
            time.sleep(0.05)
        for run in list(self.runs.values()):
            signal_workload(run.proc, signal.SIGKILL)
            run.proc.wait()
            events += self._exited(run, run.proc.returncode)
        return events

    # -- the steps -----------------------------------------------------------------------------------------------

    def _spawn(self, command: dict[str, Any], resume_from: Path | None, wdir: WorkloadDir) -> WorkloadRun:
        wid = command["workload_id"]
        proc = spawn(command["command"], wid, wdir, resume_from)
        now = time.monotonic()
        run = WorkloadRun(wid, command["command"], wdir, proc, now, command.get("decision_id"), now)
        self.runs[wid] = run
        self.reserved_mb[wid] = int(command.get("vram_mb") or 0)
        return run

    def _refusal(self, command: dict[str, Any]) -> str | None:
        if not command.get("command"):
            image = command.get("image")
            return f"{self.node_id} runs commands only; no command given" + (
                f" (container image {image!r}: images are not supported by this agent yet)" if image else ""
            )
        wanted = int(command.get("vram_mb") or 0)
        if self.vram_mb and self.used_vram_mb() + wanted > self.vram_mb:
            return f"not enough VRAM on {self.node_id}: {wanted} MiB asked, {self.vram_mb - self.used_vram_mb()} free"
        return None

    def _start(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        wid = command["workload_id"]
        if why := self._refusal(command):
            return [self.event(wid, "failed", reason=why, decision_id=command.get("decision_id"))]
        wdir = WorkloadDir(self.workdir / wid)
        wdir.prepare()
        try:
            self._spawn(command, None, wdir)
        except OSError as exc:
            return [self.event(wid, "failed", reason=f"could not start the command: {exc}")]
        return [self.event(wid, "started", decision_id=command.get("decision_id"))]

    def _resume(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        wid, uri = command["workload_id"], command.get("checkpoint_uri")
        decision_id = command.get("decision_id")

        def failed(why: str) -> list[dict[str, Any]]:
            return [self.event(wid, "failed", reason=why, checkpoint_uri=uri, decision_id=decision_id)]

        if why := self._refusal(command):
            return failed(why)
        if not uri:
            return failed(f"resume on {self.node_id} without a checkpoint location")
        stale = self.runs.pop(wid, None)
        if stale is not None and stale.alive():  # stopping from an earlier stint here: it must be gone first
            signal_workload(stale.proc, signal.SIGKILL)
            stale.proc.wait()
        wdir = WorkloadDir(self.workdir / wid)
        wdir.prepare()
        name = Path(uri.partition("#")[0]).name.removesuffix(".tar") or "checkpoint"
        try:
            fetched = self.store.fetch_checkpoint(uri, wdir.restore / name)
        except ChecksumMismatch as exc:
            return failed(f"refused to resume on {self.node_id}: {exc}")
        except (CheckpointError, OSError, tarfile.TarError, ValueError) as exc:
            return failed(f"could not fetch the checkpoint on {self.node_id}: {exc}")
        try:
            run = self._spawn(command, fetched.path, wdir)
        except OSError as exc:
            return failed(f"could not start the command: {exc}")
        run.resume = PendingResume(uri, fetched, decision_id)
        run.last_checkpoint_uri = uri
        return []

    def _ready(self, run: WorkloadRun) -> bool:
        """Whether the workload can take a contract signal: it reported progress, or had time to set up."""
        return run.progress_seen or time.monotonic() - run.spawned_mono >= self.settings.signal_grace_s

    def _stop(self, run: WorkloadRun, kind: StopKind) -> None:
        run.stopping = kind
        if kind == "silent":
            run.stop_delivered = signal_workload(run.proc, signal.SIGKILL)
            return
        run.checkpoint = PendingCheckpoint(time.monotonic(), _now_ms(), run.wdir.latest_stamp())
        self._read_progress(run)
        run.stop_delivered = self._ready(run) and signal_workload(run.proc, signal.SIGTERM)

    def _read_progress(self, run: WorkloadRun) -> bool:
        """Update the run's progress from its progress file; True if the file exists."""
        try:
            data = json.loads(run.wdir.progress.read_text())
        except (OSError, ValueError):
            return False
        pct = data.get("progress_pct") if isinstance(data, dict) else None
        if isinstance(pct, int | float) and 0 <= pct <= 100:
            run.progress_pct = float(pct)
        run.progress_seen = True
        return True

    def _watch(self, run: WorkloadRun) -> list[dict[str, Any]]:
        now, s = time.monotonic(), self.settings
        events: list[dict[str, Any]] = []
        reported = self._read_progress(run)
        if run.stopping and not run.stop_delivered and (run.stopping == "silent" or self._ready(run)):
            sig = signal.SIGKILL if run.stopping == "silent" else signal.SIGTERM
            run.stop_delivered = signal_workload(run.proc, sig)
        if run.resume is not None:
            if reported or now - run.spawned_mono >= s.restore_timeout_s:
                events.append(self._resumed(run, restored=reported))
            else:
                return events  # no progress reports before the router knows it resumed
        if run.stopping:
            if run.checkpoint and now - run.checkpoint.signalled_mono >= s.stop_timeout_s:
                log.warning("%s: %s did not exit within %.0f s of SIGTERM: killed", self.node_id, run.workload_id,
                            s.stop_timeout_s)  # fmt: skip
                signal_workload(run.proc, signal.SIGKILL)
            return events
        if run.checkpoint is not None:
            events += self._periodic_written(run, now)
        elif (
            now - run.last_checkpoint_mono >= s.checkpoint_interval_s
            and self._ready(run)
            and (run.progress_pct or 0.0) < 100.0  # finishing: nothing left to save
        ):
            run.checkpoint = PendingCheckpoint(now, _now_ms(), run.wdir.latest_stamp())
            if not signal_workload(run.proc, signal.SIGUSR1):
                run.checkpoint = None  # nobody to signal yet
        if (
            run.progress_pct is not None
            and run.progress_pct != run.progress_sent_pct
            and now - run.progress_sent_mono >= s.progress_interval_s
        ):
            run.progress_sent_pct, run.progress_sent_mono = run.progress_pct, now
            events.append(self.event(run.workload_id, "progress", progress_pct=round(run.progress_pct, 3)))
        return events

    def _resumed(self, run: WorkloadRun, restored: bool) -> dict[str, Any]:
        pending = run.resume
        assert pending is not None
        run.resume = None
        now_ms = _now_ms()
        restore_s = time.monotonic() - run.spawned_mono if restored else None
        stopped_ms = pending.fetched.manifest.get("signalled_ms")
        moved = pending.fetched.manifest.get("reason") == "move" and stopped_ms is not None
        downtime_s = (now_ms - stopped_ms) / 1000 if moved and restored and stopped_ms is not None else None
        manifest = pending.fetched.manifest
        run.progress_sent_pct, run.progress_sent_mono = run.progress_pct, time.monotonic()
        return self.event(
            run.workload_id, "resumed", checkpoint_uri=pending.uri, decision_id=pending.decision_id,
            progress_pct=run.progress_pct, checkpoint_sha256=pending.fetched.sha256,
            checkpoint_bytes=pending.fetched.size_bytes, checkpoint_s=manifest.get("checkpoint_s"),
            store_s=manifest.get("store_s"), transfer_s=_seconds(pending.fetched.seconds),
            restore_s=_seconds(restore_s), downtime_s=_seconds(downtime_s),
        )  # fmt: skip

    def _store(self, run: WorkloadRun, written: Path, reason: str) -> tuple[dict[str, Any], str | None]:
        """Store the checkpoint ``written``: (its event fields, or an error message)."""
        pending = run.checkpoint
        assert pending is not None
        checkpoint_s = time.monotonic() - pending.signalled_mono
        manifest = {"workload_id": run.workload_id, "node_id": self.node_id, "name": written.name, "reason": reason,
                    "signalled_ms": pending.signalled_ms, "checkpoint_s": round(checkpoint_s, 6),
                    "progress_pct": run.progress_pct}  # fmt: skip
        name = f"{self.node_id}-{pending.signalled_ms}-{written.name}"
        try:
            stored = self.store.put_checkpoint(run.workload_id, name, written, manifest)
        except (CheckpointError, OSError, tarfile.TarError) as exc:
            return {}, f"could not store the checkpoint of {run.workload_id} on {self.node_id}: {exc}"
        run.last_checkpoint_uri = stored.uri
        return {
            "checkpoint_uri": stored.uri, "checkpoint_sha256": stored.sha256, "checkpoint_bytes": stored.size_bytes,
            "checkpoint_s": _seconds(checkpoint_s), "store_s": _seconds(stored.seconds),
            "progress_pct": run.progress_pct,
        }, None  # fmt: skip

    def _periodic_written(self, run: WorkloadRun, now: float) -> list[dict[str, Any]]:
        pending = run.checkpoint
        assert pending is not None
        latest = run.wdir.latest_checkpoint()
        if latest is None or run.wdir.latest_stamp() == pending.before:
            if now - pending.signalled_mono >= self.settings.checkpoint_timeout_s:
                log.warning("%s: %s wrote no checkpoint within %.0f s of SIGUSR1", self.node_id, run.workload_id,
                            self.settings.checkpoint_timeout_s)  # fmt: skip
                run.checkpoint, run.last_checkpoint_mono = None, now
            return []
        fields, error = self._store(run, latest, "periodic")
        run.checkpoint, run.last_checkpoint_mono = None, now
        if error:
            log.warning("%s", error)
            return []
        run.progress_sent_pct, run.progress_sent_mono = run.progress_pct, now
        return [self.event(run.workload_id, "progress", **fields)]

    def _exited(self, run: WorkloadRun, code: int) -> list[dict[str, Any]]:
        self.runs.pop(run.workload_id, None)
        self.reserved_mb.pop(run.workload_id, None)
        wid = run.workload_id
        self._read_progress(run)
        if run.stopping == "silent":
            log.info("%s: %s stopped (%s)", self.node_id, wid, describe_exit(code))
            return []
        events = [self._resumed(run, restored=False)] if run.resume is not None else []
        if run.stopping in ("move", "shutdown") and code == 0:
            latest = run.wdir.latest_checkpoint()
            if latest is not None and run.wdir.latest_stamp() != (run.checkpoint.before if run.checkpoint else None):
                fields, error = self._store(run, latest, "move" if run.stopping == "move" else "shutdown")
                if error:
                    return [*events, self.event(wid, "failed", reason=error, exit_code=code)]
                kind = "checkpointed" if run.stopping == "move" else "progress"
                return [*events, self.event(wid, kind, decision_id=run.decision_id, **fields)]
            if not run.wdir.output.exists():
                why = f"{wid} exited 0 after SIGTERM without writing a checkpoint (does it honour the contract?)"
                return [*events, self.event(wid, "failed", reason=why, exit_code=code)]
            # it finished before it could checkpoint: a completion like any other
        if code == 0:
            return [*events, self._completed(run)]
        why = describe_exit(code)
        if code in (-signal.SIGUSR1, 128 + signal.SIGUSR1):
            why += ": it does not handle SIGUSR1 (the checkpoint contract, docs/node-agent.md)"
        if tail := run.wdir.stderr_tail():
            why += f"; stderr ends: {tail}"
        return [*events, self.event(wid, "failed", reason=why, exit_code=code, progress_pct=run.progress_pct)]

    def _completed(self, run: WorkloadRun) -> dict[str, Any]:
        fields: dict[str, Any] = {"exit_code": 0, "progress_pct": 100.0}
        if run.wdir.output.exists():
            try:
                stored = self.store.put_file(run.workload_id, f"result-{self.node_id}", run.wdir.output)
            except (CheckpointError, OSError) as exc:
                fields["reason"] = f"the result could not be stored: {exc}"
            else:
                fields.update(result_sha256=stored.sha256, result_bytes=stored.size_bytes, result_uri=stored.uri)
        else:
            fields["reason"] = "exited 0 without writing $TOOGREEN_OUTPUT"
        return self.event(run.workload_id, "completed", **fields)
