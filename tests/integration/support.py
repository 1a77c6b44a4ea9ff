"""What the integration tests share: waiting for a running system to reach a state, and reading its snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import duckdb
import httpx

from toogreen.app.demo import Stack


def eventually(check: Callable[[], Any], timeout_s: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, duckdb.Error, KeyError, IndexError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"{what} not reached within {timeout_s} s (last: {last!r})")


def log_tail(stack: Stack, name: str, lines: int = 25) -> str:
    """The last warnings and errors of the process ``name``'s log (and its last lines), for a failure's message: a
    run in CI leaves nothing else behind."""
    path = stack.run_dir / f"{name}.log"
    if not path.exists():
        return f"({path} missing)"
    text = path.read_text(errors="replace").splitlines()
    loud = [line for line in text if "WARNING" in line or "ERROR" in line or "Traceback" in line]
    return "\n".join([f"--- {name}.log: last warnings/errors", *loud[-lines:], "--- last lines", *text[-10:]])


def snapshot_rows(stack: Stack, sql: str, params: list[Any] | None = None) -> list[tuple]:
    con = duckdb.connect(str(stack.settings.storage.snapshot_path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()
