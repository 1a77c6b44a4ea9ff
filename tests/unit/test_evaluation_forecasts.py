"""The evaluation's forecasts: issued on the interval from the scenario's own series, each from the past only."""

from __future__ import annotations

from toogreen.domain.forecast import HOUR_MS
from toogreen.domain.intensity import IntensityPoint
from toogreen.evaluation.forecasts import ScenarioForecasts
from toogreen.evaluation.inputs import GridSeries
from toogreen.settings import ForecastSettings

T0 = 1_580_515_200_000  # 2020-02-01 00:00 UTC


def test_the_latest_issue_before_each_time_and_never_the_future():
    # 4 days of a ramp, then a jump the forecasts must not have seen before it happened
    points = [IntensityPoint(t, 100.0 + (t - T0) / HOUR_MS % 24) for t in range(T0 - 4 * 24 * HOUR_MS, T0, HOUR_MS)]
    points += [IntensityPoint(t, 900.0) for t in range(T0, T0 + 24 * HOUR_MS, HOUR_MS)]
    fc = ScenarioForecasts(
        {"GB": GridSeries("GB", points)}, ForecastSettings(issue_interval_h=6), T0, T0 + 13 * HOUR_MS
    )
    assert [f.issued_ms for f in fc.forecasts["GB"]] == [T0, T0 + 6 * HOUR_MS, T0 + 12 * HOUR_MS]
    assert fc.latest_at(T0 - 1) == {}
    at_start = fc.latest_at(T0 + 5 * HOUR_MS)["GB"]
    assert at_start.issued_ms == T0 and max(p.mean_gco2_per_kwh for p in at_start.points) < 200  # no peeking
    assert fc.latest_at(T0 + 12 * HOUR_MS)["GB"].points[0].mean_gco2_per_kwh > 500  # it has seen the jump by then
