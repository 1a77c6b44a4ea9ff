"""What the dashboard reads, kept current by the sink as each batch commits instead of recomputed by scanning
tables per request: each zone's newest reading and newest tumbling and hopping window, and a version that moves
with every committed write (the API's answer cache is keyed on it)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import duckdb

Row = dict[str, Any]
WINDOW_KINDS = ("tumbling", "hopping")


class ReadModel:
    """Newest reading and windows per zone; :attr:`version` counts the writes committed since the file opened."""

    def __init__(self) -> None:
        self.version = 0
        self._lock = threading.Lock()
        self._readings: dict[str, Row] = {}
        self._windows: dict[str, dict[str, Row]] = {kind: {} for kind in WINDOW_KINDS}
        # Called with the version a committed write is about to get, before readers see it move, and whether the
        # write was a batch (apply) or a single statement (touched): the API rebuilds its read models there.
        self.before_version_moves: list[Callable[[int, bool], None]] = []

    def load(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Start from what the file holds (one scan, when it opens)."""
        readings = _rows(cur, "SELECT * FROM grid_readings QUALIFY row_number() OVER "
                              "(PARTITION BY zone ORDER BY ts_ms DESC) = 1")  # fmt: skip
        windows = _rows(cur, "SELECT * FROM zone_windows QUALIFY row_number() OVER "
                             "(PARTITION BY zone, kind ORDER BY window_start_ms DESC) = 1")  # fmt: skip
        self.apply({"grid_readings": readings, "zone_windows": windows})

    def apply(self, rows_by_table: Mapping[str, list[Row]]) -> None:
        """Fold a committed batch in: a newer reading or window replaces the zone's, a grown window its own."""
        with self._lock:
            for row in rows_by_table.get("grid_readings", ()):
                current = self._readings.get(row["zone"])
                if current is None or row["ts_ms"] > current["ts_ms"]:  # a replayed reading changes nothing
                    self._readings[row["zone"]] = {k: v for k, v in row.items() if k != "ts"}
            for row in rows_by_table.get("zone_windows", ()):
                by_zone = self._windows[row["kind"]]
                current = by_zone.get(row["zone"])
                newer = current is None or row["window_start_ms"] > current["window_start_ms"]
                grown = (
                    current is not None
                    and row["window_start_ms"] == current["window_start_ms"]
                    and (row["count"] >= current["count"])
                )
                if newer or grown:
                    by_zone[row["zone"]] = {k: v for k, v in row.items() if k != "window_start"}
        self._move_version(batch=True)

    def touched(self) -> None:
        """A single statement the model does not fold in (tokens, submissions, payouts): answers built on it are
        stale."""
        self._move_version(batch=False)

    def _move_version(self, batch: bool) -> None:
        for listener in self.before_version_moves:
            listener(self.version + 1, batch)
        with self._lock:
            self.version += 1

    def latest_readings(self) -> dict[str, Row]:
        with self._lock:
            return dict(self._readings)

    def latest_windows(self, kind: str) -> dict[str, Row]:
        with self._lock:
            return dict(self._windows[kind])


def _rows(cur: duckdb.DuckDBPyConnection, sql: str) -> list[Row]:
    cur.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
