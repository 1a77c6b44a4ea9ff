"""A workload's command as a real process: its directory, its environment, its signals, its exit.

Each workload gets ``<workdir>/<workload id>/`` with ``checkpoints/`` (``TOOGREEN_CHECKPOINT_DIR``), ``output/result``
(``TOOGREEN_OUTPUT``), ``progress.json`` (``TOOGREEN_PROGRESS``), ``restore/`` (where a fetched checkpoint is
unpacked for ``TOOGREEN_RESUME_FROM``) and its ``stdout.log`` / ``stderr.log`` (appended across restarts).

The command runs through ``/bin/sh`` in its own session (process group), with the project's interpreter first on
``PATH`` and none of the agent's own ``TOOGREEN_`` settings (they may hold secrets). The contract's signals go to
the workload's processes, not to the shells around them (``dash`` forks rather than execs, and a shell dies of
SIGUSR1). Everything the command started is killed if the agent dies, however it dies: nobody would store its
checkpoint and the workload is resumed elsewhere, so it must not go on running here meanwhile. The kernel tells
the leading shell (``PR_SET_PDEATHSIG``: SIGHUP), which kills its whole group; the command runs in a background
job of that shell so that the shell is free to hear it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SHELL = "/bin/sh"
CHECKPOINT_POINTER = "LATEST"
ENV_PREFIX = "TOOGREEN_"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkloadDir:
    """The files of one workload on this node."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def output(self) -> Path:
        return self.root / "output" / "result"

    @property
    def progress(self) -> Path:
        return self.root / "progress.json"

    @property
    def restore(self) -> Path:
        return self.root / "restore"

    @property
    def stdout(self) -> Path:
        return self.root / "stdout.log"

    @property
    def stderr(self) -> Path:
        return self.root / "stderr.log"

    def prepare(self) -> None:
        """Fresh checkpoint, output and progress places (a workload may come back to a node it left)."""
        for path in (self.checkpoints, self.output.parent):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        self.progress.unlink(missing_ok=True)

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint directory ``LATEST`` names, if it names one that exists."""
        try:
            name = (self.checkpoints / CHECKPOINT_POINTER).read_text().strip()
        except OSError:
            return None
        path = self.checkpoints / name
        if not name or "/" in name or name.startswith(".") or not path.is_dir():
            return None
        return path

    def latest_stamp(self) -> tuple[int, int] | None:
        """Identifies the current ``LATEST`` file (it is replaced by rename on every checkpoint), None if absent."""
        try:
            st = (self.checkpoints / CHECKPOINT_POINTER).stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def stderr_tail(self, chars: int = 400) -> str:
        try:
            with self.stderr.open("rb") as fh:
                fh.seek(max(0, self.stderr.stat().st_size - chars))
                return fh.read().decode(errors="replace").strip()
        except OSError:
            return ""


def _die_with_agent() -> None:
    """In the child, before exec: SIGHUP when the agent dies (Linux ``PR_SET_PDEATHSIG``); see :func:`script`.

    SIGHUP is set back to its default first: an agent started under ``nohup`` ignores it, a shell cannot trap a
    signal ignored when it started, and the workload then ran on after its agent was killed."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.signal(signal.SIGHUP, None)  # NULL is SIG_DFL
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGHUP)


def script(command: str) -> str:
    """The shell script around ``command``: run it as a job, wait for it, exit with its status; on SIGHUP (the
    agent died) kill the whole process group."""
    return f'trap "kill -KILL 0" HUP\n{{\n{command}\n}} &\nwait $!\n'


def workload_env(workload_id: str, wdir: WorkloadDir, resume_from: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(
        TOOGREEN_WORKLOAD_ID=workload_id,
        TOOGREEN_CHECKPOINT_DIR=str(wdir.checkpoints),
        TOOGREEN_OUTPUT=str(wdir.output),
        TOOGREEN_PROGRESS=str(wdir.progress),
        PYTHONUNBUFFERED="1",
    )
    if resume_from is not None:
        env["TOOGREEN_RESUME_FROM"] = str(resume_from)
    return env


def spawn(command: str, workload_id: str, wdir: WorkloadDir, resume_from: Path | None) -> subprocess.Popen[bytes]:
    """Start ``command`` in the workload's directory (its outputs appended to its logs)."""
    wdir.root.mkdir(parents=True, exist_ok=True)
    with wdir.stdout.open("ab") as out, wdir.stderr.open("ab") as err:
        return subprocess.Popen(
            [SHELL, "-c", script(command)],
            cwd=wdir.root,
            env=workload_env(workload_id, wdir, resume_from),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=_die_with_agent,
        )


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _is_shell(pid: int) -> bool:
    try:
        return os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(SHELL)
    except OSError:
        return False


def signal_workload(proc: subprocess.Popen[bytes], sig: int) -> bool:
    """Send ``sig`` to the workload: every process of its group but the shells that only wait for them (SIGKILL:
    the whole group). False when there was nobody to signal yet (the shell has not started the command yet): the
    caller tries again."""
    if proc.poll() is not None:
        return False
    if sig == signal.SIGKILL:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        return True
    delivered = False
    for pid in _group_members(proc.pid):
        if not _is_shell(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
                delivered = True
    return delivered


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code > 128 and code - 128 in {s.value for s in signal.Signals}:
        return f"exited with code {code} ({signal.Signals(code - 128).name} in the shell)"
    return f"exited with code {code}"
