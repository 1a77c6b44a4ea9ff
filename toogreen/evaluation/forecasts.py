"""The forecasts the evaluation's router sees: each zone's forecast issued every ``issue_interval_h`` from the
scenario's own grid series, from the readings before the issue time only (as the forecaster does live): one fit per
zone per issue time, made once per scenario, each fit starting from the zone's previous one (as the forecaster's
do), and a lookup of the latest issue per slot."""

from __future__ import annotations

import bisect
from collections.abc import Mapping

import numpy as np

from toogreen.domain.forecast import HOUR_MS, Forecast, ForecastError, fit_forecast
from toogreen.evaluation.inputs import GridSeries
from toogreen.settings import ForecastSettings


class ScenarioForecasts:
    """Every zone's forecasts over ``[first_ms, last_ms)``, made once per scenario (policies share them)."""

    def __init__(self, grid: Mapping[str, GridSeries], settings: ForecastSettings, first_ms: int, last_ms: int) -> None:
        interval = int(settings.issue_interval_h * HOUR_MS)
        self.issued: dict[str, list[int]] = {}
        self.forecasts: dict[str, list[Forecast]] = {}
        for zone, series in grid.items():
            readings = (
                np.array([p.ts_ms for p in series.points], dtype=np.int64),
                np.array([p.carbon_gco2_per_kwh for p in series.points], dtype=float),
            )
            times, made = [], []
            params: np.ndarray | None = None
            for t in range(first_ms - first_ms % interval, last_ms, interval):
                try:
                    f, fitted = fit_forecast(zone, readings, t, settings, start_params=params)
                except ForecastError:
                    continue
                params = fitted if fitted is not None else params
                times.append(t)
                made.append(f)
            self.issued[zone], self.forecasts[zone] = times, made

    def latest_at(self, ts_ms: int) -> dict[str, Forecast]:
        """The latest forecast per zone issued at or before ``ts_ms`` (zones without one yet are absent)."""
        out = {}
        for zone, times in self.issued.items():
            i = bisect.bisect_right(times, ts_ms) - 1
            if i >= 0:
                out[zone] = self.forecasts[zone][i]
        return out
