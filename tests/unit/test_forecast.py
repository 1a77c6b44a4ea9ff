"""Forecasts: the record and its checks, keeping the latest per zone, the models on a known series and on real data."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toogreen.domain.forecast import (
    ETS,
    HOUR_MS,
    PERSISTENCE,
    SEASONAL_NAIVE,
    Forecast,
    ForecastError,
    ForecastPoint,
    LatestForecasts,
    absolute_errors,
    forecast_from_history,
    regular_history,
)
from toogreen.settings import ForecastSettings

T0 = 1_580_515_200_000  # 2020-02-01 00:00 UTC


def wave(t: int, base: float = 200.0, swing: float = 80.0) -> float:
    return base + swing * math.sin(2 * math.pi * (t % (24 * HOUR_MS)) / (24 * HOUR_MS))


def daily_wave(days: int, every_ms: int = 30 * 60_000) -> list[tuple[int, float]]:
    """Half-hourly readings of a clean daily cycle for the ``days`` before T0."""
    return [(t, wave(t)) for t in range(T0 - days * 24 * HOUR_MS, T0, every_ms)]


def flat(zone: str, issued: int, values: list[float], step: int = HOUR_MS, band: float = 0.0) -> Forecast:
    points = tuple(ForecastPoint(issued + i * step, v, max(v - band, 0.0), v + band) for i, v in enumerate(values))
    return Forecast(zone, issued, step, points, "test", "test", 0.8 if band else 0.0)


def test_the_record_round_trips_through_its_avro_schema():
    from toogreen.codec import decode, encode

    f = flat("GB", T0, [150.0, 120.0, 90.0], band=10.0)
    record = f.to_record()
    assert Forecast.from_record(decode("grid.forecasts", encode("grid.forecasts", record))) == f


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"points": []}, "no points"),
        ({"step_ms": 0}, "step_ms must be positive"),
        ({"band_coverage": 1.5}, "band_coverage"),
        ({"points": [{"ts_ms": T0, "mean_gco2_per_kwh": 10.0, "low_gco2_per_kwh": 20.0, "high_gco2_per_kwh": 30.0}]},
         "low <= mean <= high"),
        ({"points": [{"ts_ms": T0, "mean_gco2_per_kwh": float("nan"), "low_gco2_per_kwh": 0, "high_gco2_per_kwh": 1}]},
         "finite"),
        ({"zone": None} , "not a grid.forecasts record"),
    ],
)  # fmt: skip
def test_a_bad_record_is_a_clear_error(change, message):
    record = {**flat("FR", T0, [50.0, 51.0]).to_record(), **change}
    if change.get("zone", "") is None:
        del record["zone"]
    with pytest.raises(ForecastError, match=message):
        Forecast.from_record(record)


def test_points_must_follow_each_other_by_one_step():
    points = (ForecastPoint(T0, 1, 1, 1), ForecastPoint(T0 + 2 * HOUR_MS, 1, 1, 1))
    with pytest.raises(ForecastError, match="one step after"):
        Forecast("FR", T0, HOUR_MS, points, "test", "test", 0.0)


def test_the_latest_issue_is_kept_per_zone_and_a_redelivery_changes_nothing():
    book = LatestForecasts()
    old, new = flat("GB", T0, [100.0]), flat("GB", T0 + HOUR_MS, [120.0])
    assert book.offer(new) and not book.offer(old) and not book.offer(new)
    assert book.offer(flat("FR", T0, [40.0]))
    assert book.get("GB") is new and len(book) == 2


def test_a_window_is_the_overlap_weighted_mean():
    f = flat("GB", T0, [100.0, 200.0, 300.0], band=10.0)
    w = f.window(T0 + HOUR_MS // 2, T0 + 2 * HOUR_MS)
    assert w is not None and w.mean_gco2_per_kwh == pytest.approx((50 + 200) / 1.5)
    assert w.half_band_gco2_per_kwh == pytest.approx(10.0)
    assert f.window(T0, T0 + 4 * HOUR_MS) is None  # beyond the forecast
    assert f.at(T0 + 2 * HOUR_MS + 1) == f.points[2] and f.at(T0 + 3 * HOUR_MS) is None


@given(st.lists(st.floats(0, 1000), min_size=1, max_size=30), st.integers(0, 29), st.integers(1, 30))
def test_a_window_mean_lies_between_its_points(values, first, length):
    f = flat("X", T0, values)
    start, end = T0 + first * HOUR_MS, T0 + (first + length) * HOUR_MS
    w = f.window(start, end)
    if first + length > len(values):
        assert w is None
        return
    assert w is not None
    inside = values[first : first + length]
    assert min(inside) - 1e-6 <= w.mean_gco2_per_kwh <= max(inside) + 1e-6


def test_history_is_regularised_gaps_held_and_too_little_refused():
    readings = [(T0 - 3 * 24 * HOUR_MS + i * HOUR_MS, float(i)) for i in range(72) if i != 40]
    h = regular_history(readings, T0, 3, HOUR_MS)
    assert h is not None and len(h) == 72 and h[40] == 39.0 and h[41] == 41.0
    assert regular_history(readings[-30:], T0, 3, HOUR_MS) is None


def test_the_baselines_are_what_they_say():
    s = ForecastSettings(horizon_h=30)
    readings = daily_wave(14)
    p = forecast_from_history("GB", readings, T0, s, PERSISTENCE)
    last_hour = [v for t, v in readings if t >= T0 - HOUR_MS]
    assert [pt.mean_gco2_per_kwh for pt in p.points] == pytest.approx([sum(last_hour) / len(last_hour)] * 30)
    n = forecast_from_history("GB", readings, T0, s, SEASONAL_NAIVE)
    assert len(n.points) == 30 and n.points[0].mean_gco2_per_kwh == pytest.approx(n.points[24].mean_gco2_per_kwh)
    assert n.start_ms == T0 and n.band_coverage == 0.0


def test_ets_learns_a_daily_cycle_and_gives_a_band():
    s = ForecastSettings()
    f = forecast_from_history("GB", daily_wave(14), T0, s, ETS)
    assert f.model == ETS and f.source == "statsmodels" and len(f.points) == s.horizon_h
    actual = {p.ts_ms: (wave(p.ts_ms) + wave(p.ts_ms + 30 * 60_000)) / 2 for p in f.points}  # hourly means
    errors = [e for e in absolute_errors(f, actual) if e is not None]
    assert len(errors) == s.horizon_h and max(errors) < 10.0  # a clean cycle (80 either side): close to perfect
    assert all(p.low_gco2_per_kwh <= p.mean_gco2_per_kwh <= p.high_gco2_per_kwh for p in f.points)
    assert f.points[-1].half_band_gco2_per_kwh >= f.points[0].half_band_gco2_per_kwh  # wider further out


def test_a_flat_history_falls_back_and_says_so():
    readings = [(T0 - i * HOUR_MS, 50.0) for i in range(1, 24 * 5)][::-1]
    f = forecast_from_history("FR", readings, T0, ForecastSettings(), ETS)
    assert f.model.startswith("seasonal_naive (ets failed")


def test_unknown_model_and_short_history_are_clear_errors():
    with pytest.raises(ForecastError, match="unknown forecast model"):
        forecast_from_history("FR", daily_wave(14), T0, ForecastSettings(), "prophet")
    with pytest.raises(ForecastError, match="fewer than 2 days"):
        forecast_from_history("FR", daily_wave(1), T0, ForecastSettings(), ETS)


def test_on_real_gb_data_ets_beats_persistence_a_day_ahead(data_dir):
    from toogreen.domain.intensity import read_intensity_csv

    points = read_intensity_csv(data_dir / "grid" / "entsoe-2020" / "gb_ci.csv")
    readings = [(p.ts_ms, p.carbon_gco2_per_kwh) for p in points]
    hourly: dict[int, list[float]] = {}
    for t, v in readings:
        hourly.setdefault(t - t % HOUR_MS, []).append(v)
    actual = {h: sum(v) / len(v) for h, v in hourly.items()}
    s = ForecastSettings(horizon_h=24)
    totals = {ETS: 0.0, PERSISTENCE: 0.0}
    for day in range(10):
        issued = T0 + day * 24 * HOUR_MS
        for model in totals:
            errors = absolute_errors(forecast_from_history("GB", readings, issued, s, model), actual)
            totals[model] += sum(e for e in errors if e is not None)
    assert totals[ETS] < totals[PERSISTENCE]


def test_a_fit_started_from_the_previous_one_gives_the_same_forecast(data_dir):
    """The forecaster starts each fit from the zone's last one (about half the optimiser's work); it converges to
    the forecast a fit from scratch gives."""
    from toogreen.domain.forecast import fit_forecast
    from toogreen.domain.intensity import read_intensity_csv

    points = read_intensity_csv(data_dir / "grid" / "entsoe-2020" / "gb_ci.csv")
    readings = [(p.ts_ms, p.carbon_gco2_per_kwh) for p in points]
    s = ForecastSettings()
    at = readings[24 * 60][0]
    _first, params = fit_forecast("GB", readings, at, s)
    assert params is not None
    later = at + 6 * HOUR_MS
    warm, _ = fit_forecast("GB", readings, later, s, start_params=params)
    cold, _ = fit_forecast("GB", readings, later, s)
    assert warm.issued_ms == cold.issued_ms == later
    assert [p.mean_gco2_per_kwh for p in warm.points] == pytest.approx([p.mean_gco2_per_kwh for p in cold.points],
                                                                        abs=1.0)  # fmt: skip
