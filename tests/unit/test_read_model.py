"""The sink's read model agrees with a scan of the tables, whatever order readings and windows arrive in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sinks import queries
from sinks.duckdb_store import Store
from sinks.rows import grid_row, window_row
from tests.builders import grid_reading
from toogreen.domain.windows import Surplus, WindowSpec, empty_window

SPEC = WindowSpec("tumbling", 300_000, 300_000)
readings = st.lists(
    st.tuples(st.sampled_from(["FR", "DE", "PT"]), st.integers(0, 50), st.floats(1, 900)), min_size=1, max_size=30
)


@settings(max_examples=10, deadline=None)
@given(batches=st.lists(readings, min_size=1, max_size=4))
def test_latest_readings_and_windows_match_a_scan(tmp_path_factory, batches):
    """One reading per zone and minute (a zone's readings at one instant are one reading replayed)."""
    seen: set[tuple[str, int]] = set()
    batches = [[r for r in b if (r[0], r[1]) not in seen and not seen.add((r[0], r[1]))] for b in batches]
    store = Store(tmp_path_factory.mktemp("rm") / "rm.duckdb")
    try:
        for batch in batches:
            grid = [grid_row(grid_reading(z, t * 60_000, c)) for z, t, c in batch]
            windows = []
            for z, t, c in batch:
                start = t * 60_000 - t * 60_000 % SPEC.size_ms
                agg = empty_window(z, SPEC, start).add(grid_reading(z, t * 60_000, c))
                windows.append(window_row(agg.to_record(Surplus()).to_wire()))
            store.write({"grid_readings": grid, "zone_windows": windows}, [])
        assert queries.latest_readings(store) == queries.scan_latest_readings(store)
        assert queries.latest_windows(store, "tumbling") == queries.scan_latest_windows(store, "tumbling")
        reopened_version = store.read_model.version
        assert reopened_version == len(batches) + 1  # the load on open, then one per batch
    finally:
        store.close()


def test_a_reopened_file_starts_from_what_it_holds(tmp_path):
    store = Store(tmp_path / "x.duckdb")
    store.write({"grid_readings": [grid_row(grid_reading("FR", 1_000, 42.0))]}, [])
    store.close()
    again = Store(tmp_path / "x.duckdb")
    assert again.read_model.latest_readings()["FR"]["carbon_intensity_gco2_per_kwh"] == 42.0
    again.close()


def test_listeners_see_a_committed_write_before_the_version_moves(tmp_path):
    store = Store(tmp_path / "hook.duckdb")
    seen: list[tuple[int, bool, int, set[str]]] = []
    model = store.read_model
    model.before_version_moves.append(
        lambda nxt, batch: seen.append((nxt, batch, model.version, set(model.latest_readings())))
    )
    start = model.version
    store.write({"grid_readings": [grid_row(grid_reading("PT", 1_000, 99.0))]}, [])
    store.execute_write("INSERT INTO api_tokens (token_sha256, role, subject, created_ms, created_by) "
                        "VALUES ('h', 'gamer', 'camille', 0, 'admin')")  # fmt: skip
    assert seen == [(start + 1, True, start, {"PT"}), (start + 2, False, start + 1, {"PT"})]
    assert model.version == start + 2
    store.close()
