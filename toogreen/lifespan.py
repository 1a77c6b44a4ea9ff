"""How a process of the system ends: soon after it is told to, and on its own when its broker's log is replaced.

Every part is safe to kill (the sinks are idempotent, the worker is at-least-once), so a process that was asked to
stop and is still waiting (for a broker that is gone, a flush, a group leave) exits hard after a grace period
instead of holding up the demo's shutdown.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def exit_after(grace_s: float, what: str, code: int = 0) -> threading.Timer:
    """Arm a timer that ends this process ``grace_s`` from now, whatever it is doing then."""

    def hard_exit() -> None:
        print(f"{what}: still stopping after {grace_s:.1f} s, exiting now", file=sys.stderr, flush=True)
        os._exit(code)

    timer = threading.Timer(grace_s, hard_exit)
    timer.daemon = True
    timer.start()
    return timer


def watch_lifetime(
    current: Callable[[], str], first: str, interval_s: float, on_change: Callable[[str, str], None]
) -> threading.Thread:
    """Call ``on_change(first, new)`` from a daemon thread once ``current()`` names another log lifetime than
    ``first`` (a broker that does not answer is no change: it may come back with the same log)."""

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(interval_s):
            try:
                now = current()
            except Exception:  # an unreachable broker: ask again later
                continue
            if now != first:
                on_change(first, now)
                return

    thread = threading.Thread(target=watch, name="lifetime-watch", daemon=True)
    thread.start()
    return thread


def exit_on_new_lifetime(what: str, code: int = 75) -> Callable[[str, str], None]:
    """An ``on_change`` for processes whose state lives in the log (the worker's tables): end, to be restarted."""

    def on_change(old: str, new: str) -> None:
        print(
            f"{what}: the broker's log lifetime changed ({old} -> {new}); what this process holds belongs to the "
            "lost log, so it exits to be started afresh on the new one",
            file=sys.stderr,
            flush=True,
        )
        os._exit(code)

    return on_change
