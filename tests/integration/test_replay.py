"""Replaying the real 2020 France and Great Britain data through the running pipeline fills ``zone_windows``
with one row per window and zone, in event time."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import duckdb
import pytest

from connectors.replay import load_readings
from tests.integration.support import eventually
from toogreen.app.demo import Stack
from toogreen.domain.windows import specs_from

pytestmark = pytest.mark.integration


def test_replay_fills_zone_windows_in_event_time(core: Stack, data_dir):
    folder = data_dir / "grid" / "entsoe-2020"
    args = ["replay", "grid", "--csv", f"FR={folder / 'fr_production.csv'}", "--csv", f"GB={folder / 'gb_ci.csv'}",
            "--start", "2020-06-01", "--days", "2"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "toogreen.app.cli", *args], env=core.child_env(), capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rejected 0, failed 0" in done.stderr

    expected: dict[tuple[str, str], set[int]] = defaultdict(set)
    from datetime import UTC, datetime, timedelta

    start = datetime(2020, 6, 1, tzinfo=UTC)
    for zone, path in (("FR", folder / "fr_production.csv"), ("GB", folder / "gb_ci.csv")):
        for reading in load_readings(zone, path, core.settings.grid, start, start + timedelta(days=2)):
            for spec in specs_from(core.settings.windows):
                expected[(zone, spec.kind)].update(spec.starts(reading["ts_ms"]))
    assert len(expected[("FR", "tumbling")]) == 48 and len(expected[("GB", "tumbling")]) == 96

    def windows_in_snapshot() -> dict | None:
        con = duckdb.connect(str(core.settings.storage.snapshot_path), read_only=True)
        try:
            rows = con.execute("SELECT zone, kind, window_start_ms, count FROM zone_windows").fetchall()
        finally:
            con.close()
        got: dict[tuple[str, str], set[int]] = defaultdict(set)
        for zone, kind, start_ms, _count in rows:
            got[(zone, kind)].add(start_ms)
        return got if got == expected else None

    eventually(windows_in_snapshot, timeout_s=90, what="one zone_windows row per window and zone")
    con = duckdb.connect(str(core.settings.storage.snapshot_path), read_only=True)
    # GB's half-hourly readings: two in every 5-minute... no: one per half hour, so each tumbling window has 1
    counts = dict(con.execute("SELECT kind, max(count) FROM zone_windows WHERE zone = 'GB' GROUP BY kind").fetchall())
    late = con.execute("SELECT coalesce(sum(late_count), 0) FROM zone_windows").fetchone()[0]
    con.close()
    assert counts == {"tumbling": 1, "hopping": 2} and late == 0
