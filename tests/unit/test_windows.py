"""Event-time window maths: membership, aggregation in and out of order, lateness, surplus detection."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import grid_reading
from toogreen.domain.records import GridReading, ZoneMeta
from toogreen.domain.windows import Stat, WindowAggregate, WindowSpec, detect_surplus, empty_window, is_too_late
from toogreen.domain.zone_state import apply_reading, keys_needed, republished, window_key
from toogreen.settings import SurplusSettings

TUMBLING = WindowSpec("tumbling", 300_000, 300_000)
HOPPING = WindowSpec("hopping", 3_600_000, 300_000)
SPECS = (TUMBLING, HOPPING)


@given(st.integers(min_value=0, max_value=10**13))
def test_every_window_returned_contains_the_timestamp(ts):
    for spec in SPECS:
        starts = spec.starts(ts)
        assert len(starts) == spec.size_ms // spec.step_ms
        assert all(s <= ts < s + spec.size_ms and s % spec.step_ms == 0 for s in starts)


def test_tumbling_window_boundaries():
    assert TUMBLING.starts(299_999) == [0]
    assert TUMBLING.starts(300_000) == [300_000]


@given(st.lists(st.tuples(st.integers(0, 10**6), st.floats(0, 1000)), min_size=1, max_size=50))
def test_stat_is_order_independent_except_last(samples):
    forward = Stat()
    for ts, v in samples:
        forward = forward.add(v, ts)
    backward = Stat()
    for ts, v in reversed(samples):
        backward = backward.add(v, ts)
    assert forward.n == backward.n == len(samples)
    assert math.isclose(forward.total, backward.total, rel_tol=1e-9, abs_tol=1e-6)
    assert forward.min == backward.min and forward.max == backward.max
    newest = max(ts for ts, _ in samples)
    assert forward.last in {v for ts, v in samples if ts == newest}


def test_aggregate_counts_out_of_order_readings_and_keeps_newest_as_last():
    agg = empty_window("FR", TUMBLING, 0)
    agg = agg.add(grid_reading(ts_ms=200_000, carbon=80))
    agg = agg.add(grid_reading(ts_ms=100_000, carbon=40))  # out of order
    assert agg.count == 2 and agg.late_count == 1
    assert agg.carbon.mean == 60 and agg.carbon.last == 80 and agg.carbon.min == 40
    assert WindowAggregate.from_dict(agg.to_dict()) == agg


def test_too_late_is_beyond_the_grace_period():
    assert not is_too_late(1_000, watermark_ms=1_500, grace_ms=600)
    assert is_too_late(800, watermark_ms=1_500, grace_ms=600)


def _apply(readings, meta=None, windows=None):
    meta = meta or ZoneMeta()
    windows = windows if windows is not None else {}
    outcomes = []
    for r in readings:
        keys = keys_needed(r["zone"], r["ts_ms"], meta, SPECS)
        have = {k: windows[k] for k in keys if k in windows}
        out = apply_reading(
            GridReading.from_wire(r),
            have,
            meta,
            SPECS,
            grace_ms=600_000,
            keep_ms=6 * 3_600_000,
            surplus_settings=SurplusSettings(),
        )
        if out.stored:
            key, agg, _s = out.stored  # only the tumbling window is stored
            windows[key] = agg
        for key in out.expired_keys:
            windows.pop(key)
        meta = out.meta
        outcomes.append(out)
    return outcomes, windows, meta


def test_reading_updates_one_tumbling_and_twelve_hopping_windows():
    outcomes, _windows, _meta = _apply([grid_reading(ts_ms=3_600_000 * 100 + 1)])
    kinds = [outcomes[0].stored[1].kind] + [assemble_now().kind for _k, assemble_now in outcomes[0].hopping]
    assert kinds.count("tumbling") == 1 and kinds.count("hopping") == 12
    assert outcomes[0].view is not None and outcomes[0].view.carbon_gco2_per_kwh == 60


def test_late_reading_within_grace_updates_its_own_window_and_is_counted():
    base = 3_600_000 * 100
    outcomes, windows, meta = _apply(
        [grid_reading(ts_ms=base + 400_000), grid_reading(ts_ms=base + 100_000, carbon=10)]
    )
    assert not outcomes[1].too_late
    assert meta.late_count == 1
    assert windows[window_key("FR", "tumbling", base)].carbon.mean == 10


def test_reading_past_grace_is_refused_and_counted():
    base = 3_600_000 * 100
    outcomes, _windows, meta = _apply([grid_reading(ts_ms=base + 3_000_000), grid_reading(ts_ms=base)])
    assert outcomes[1].too_late and meta.too_late_count == 1


def test_hopping_windows_are_assembled_from_the_tumbling_ones():
    base = 3_600_000 * 100
    readings = [grid_reading(ts_ms=base + i * 300_000, carbon=float(10 * i)) for i in range(15)]
    outcomes, _windows, _meta = _apply(readings)
    last = {agg.start_ms: agg for _k, assemble_now in outcomes[-1].hopping if (agg := assemble_now()).kind == "hopping"}
    hour = last[base + 3 * 300_000]  # the hour holding readings 3..14
    assert hour.count == 12 and hour.carbon.mean == pytest.approx(sum(10 * i for i in range(3, 15)) / 12)
    assert hour.carbon.min == 30 and hour.carbon.max == 140 and hour.carbon.last == 140


@given(st.integers(min_value=1, max_value=14))
def test_a_reading_the_windows_already_hold_is_published_again_as_it_was(last):
    """A redelivered reading is not folded in twice; what apply_reading published for it is rebuilt from the
    windows as they are."""
    base = 3_600_000 * 100
    readings = [grid_reading(ts_ms=base + i * 300_000, carbon=float(10 * i)) for i in range(last + 1)]
    outcomes, windows, meta = _apply(readings)
    ts = readings[-1]["ts_ms"]
    have = {k: windows[k] for k in keys_needed("FR", ts, meta, SPECS) if k in windows}
    again = republished("FR", ts, have, SPECS, SurplusSettings())
    assert again is not None
    (key, agg, surplus), hopping = again
    assert (key, agg, surplus) == outcomes[-1].stored
    assert [(k, make()) for k, make in hopping] == [(k, make()) for k, make in outcomes[-1].hopping]
    assert republished("FR", base + 100 * 3_600_000, have, SPECS, SurplusSettings()) is None  # its window is gone


def test_settings_that_cannot_assemble_hopping_windows_are_refused():
    from toogreen.domain.windows import specs_from
    from toogreen.settings import WindowSettings

    with pytest.raises(ValueError, match="must hop by the tumbling window"):
        specs_from(WindowSettings(tumbling_s=300, hopping_size_s=3600, hopping_step_s=600))


def test_old_windows_expire():
    base = 3_600_000 * 100
    readings = [grid_reading(ts_ms=base + i * 300_000) for i in range(12 * 8)]
    _outcomes, windows, meta = _apply(readings)
    horizon = meta.watermark_ms - 6 * 3_600_000
    assert all(windows[k].end_ms >= horizon for k in meta.open_keys)
    assert min(windows[k].end_ms for k in meta.open_keys) < horizon + 300_000  # nothing kept longer than needed
    assert set(windows) == set(meta.open_keys)
    assert len(meta.open_keys) < len(readings) * 2


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        (grid_reading(curtailment_mw=500.0), "curtailment"),
        (grid_reading(price=-5.0), "price"),
    ],
)
def test_surplus_from_curtailment_or_low_price(reading, reason):
    agg = empty_window("FR", TUMBLING, 0).add(reading)
    surplus = detect_surplus(agg, None, SurplusSettings())
    assert surplus.active and reason in surplus.reason and 0 < surplus.strength <= 1


def test_surplus_from_renewable_far_above_its_own_window():
    baseline = empty_window("FR", HOPPING, 0)
    for i, ren in enumerate([50, 52, 48, 51, 49, 50, 50, 52]):
        baseline = baseline.add(grid_reading(ts_ms=i * 1000, renewable_pct=ren))
    calm = empty_window("FR", TUMBLING, 0).add(grid_reading(renewable_pct=51))
    spike = empty_window("FR", TUMBLING, 0).add(grid_reading(renewable_pct=70))
    assert not detect_surplus(calm, baseline, SurplusSettings()).active
    surplus = detect_surplus(spike, baseline, SurplusSettings())
    assert surplus.active and "renewable" in surplus.reason
