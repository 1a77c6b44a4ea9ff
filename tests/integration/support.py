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


def snapshot_rows(stack: Stack, sql: str, params: list[Any] | None = None) -> list[tuple]:
    con = duckdb.connect(str(stack.settings.storage.snapshot_path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()
