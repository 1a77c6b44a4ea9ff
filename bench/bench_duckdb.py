"""DuckDB sink: rows per second through the store's Arrow batches vs ``executemany`` (same rows, same file)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import Table, median_of, timed
from connectors.synthetic_grid import SyntheticGrid
from sinks.duckdb_store import Store
from sinks.rows import grid_row

T0 = 1_600_000_000_000


def _rows(n: int, offset: int) -> list[dict]:
    grid = SyntheticGrid(seed=1)
    rows = []
    i = 0
    while len(rows) < n:
        rows += [grid_row(r) for r in grid.readings(T0 + (offset + i) * 60_000)]
        i += 1
    return rows[:n]


def run(runs: int = 3, batch: int = 100_000, small: int = 2_000) -> Table:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        state = {"offset": 0}

        def arrow() -> float:
            rows = _rows(batch, state["offset"])
            state["offset"] += batch
            return batch / timed(lambda: store.write({"grid_readings": rows}, []))

        def replay() -> float:  # the same rows again: every one a conflict, nothing written
            rows = _rows(batch, 0)
            return batch / timed(lambda: store.write({"grid_readings": rows}, []))

        def executemany() -> float:
            rows = _rows(small, 10_000_000 + state["offset"])
            state["offset"] += small
            cols = list(rows[0])
            marks = ", ".join("?" * len(cols))
            sql = f"INSERT INTO grid_readings ({', '.join(cols)}) VALUES ({marks}) ON CONFLICT DO NOTHING"
            cur = store.cursor()
            return small / timed(lambda: cur.executemany(sql, [[r[c] for c in cols] for r in rows]))

        arrow_rate, arrow_all = median_of(runs, arrow)
        replay_rate, _ = median_of(runs, replay)
        naive_rate, naive_all = median_of(runs, executemany)
        store.close()
    table = Table(
        "DuckDB sink: rows/s into grid_readings",
        f"batches of {batch:,} rows (Arrow) and {small:,} rows (executemany), medians of {runs} runs, one file",
        ["method", "rows/s (median)", "runs", "vs executemany"],
    )
    table.rows.append(
        [
            "Store.write: Arrow INSERT … SELECT … ON CONFLICT",
            f"{arrow_rate:,.0f}",
            ", ".join(f"{x:,.0f}" for x in arrow_all),
            f"{arrow_rate / naive_rate:.0f}x",
        ]
    )
    table.rows.append(
        ["the same batch replayed (all conflicts)", f"{replay_rate:,.0f}", "", f"{replay_rate / naive_rate:.0f}x"]
    )
    table.rows.append(["executemany (baseline)", f"{naive_rate:,.0f}", ", ".join(f"{x:,.0f}" for x in naive_all), "1x"])
    table.notes.append("Target ≥ 200 k rows/s: " + ("met." if arrow_rate >= 200_000 else "not met on this machine."))
    return table
