"""Day-ahead carbon-intensity forecasts per zone: the typed ``Forecast`` record (one wire form, the
``grid.forecasts`` topic), keeping the latest one per zone, and the models that make one from a zone's own history:

- ``ets``: statsmodels' exponential smoothing state-space model ETS(A,N,A): additive error, no trend, additive daily
  seasonality, fitted on the last ``history_days``; its prediction interval is the uncertainty band (a damped
  trend measured worse on the 2020 data: it extrapolates the last hours' drift a day out);
- ``persistence`` (the last value holds) and ``seasonal_naive`` (the same hour yesterday): the baselines a model
  must beat to be worth using; they carry no band.

Times are ms since the epoch (UTC); intensities gCO2eq/kWh. A forecast's points are the means of whole steps
(``step_ms``, an hour by default) starting at the step its issue time falls in.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from toogreen.settings import ForecastSettings

HOUR_MS = 3_600_000
ETS = "ets"
PERSISTENCE = "persistence"
SEASONAL_NAIVE = "seasonal_naive"
MODELS = (ETS, PERSISTENCE, SEASONAL_NAIVE)


class ForecastError(ValueError):
    """A forecast record or a history that cannot be used (says why)."""


@dataclass(frozen=True)
class ForecastPoint:
    """The forecast of one step: its mean and the band the true value falls in with ``band_coverage``."""

    ts_ms: int  # start of the step
    mean_gco2_per_kwh: float
    low_gco2_per_kwh: float
    high_gco2_per_kwh: float

    @property
    def half_band_gco2_per_kwh(self) -> float:
        return (self.high_gco2_per_kwh - self.low_gco2_per_kwh) / 2


@dataclass(frozen=True)
class WindowForecast:
    """What a forecast says of running over ``[start_ms, end_ms)``: time-weighted mean and half band."""

    zone: str
    start_ms: int
    end_ms: int
    mean_gco2_per_kwh: float
    half_band_gco2_per_kwh: float


@dataclass(frozen=True)
class Forecast:
    zone: str
    issued_ms: int
    step_ms: int
    points: tuple[ForecastPoint, ...]
    model: str  # ets / persistence / seasonal_naive / electricitymaps
    source: str  # who made it: statsmodels, a baseline, or electricitymaps
    band_coverage: float  # the share of outcomes the band is meant to hold (0 for a point forecast)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ForecastError(f"forecast for {self.zone!r}: {'; '.join(problems)}")

    @property
    def start_ms(self) -> int:
        return self.points[0].ts_ms

    @property
    def end_ms(self) -> int:
        return self.points[-1].ts_ms + self.step_ms

    def at(self, ts_ms: int) -> ForecastPoint | None:
        """The point whose step holds ``ts_ms``; None outside the forecast."""
        if not self.start_ms <= ts_ms < self.end_ms:
            return None
        return self.points[(ts_ms - self.start_ms) // self.step_ms]

    def window(self, start_ms: int, end_ms: int) -> WindowForecast | None:
        """Mean and half band over ``[start_ms, end_ms)``, each step weighted by its overlap; None unless the
        forecast covers the whole window."""
        if end_ms <= start_ms or start_ms < self.start_ms or end_ms > self.end_ms:
            return None
        first = (start_ms - self.start_ms) // self.step_ms
        last = (end_ms - 1 - self.start_ms) // self.step_ms
        mean = band = 0.0
        for p in self.points[first : last + 1]:
            overlap = min(end_ms, p.ts_ms + self.step_ms) - max(start_ms, p.ts_ms)
            mean += overlap * p.mean_gco2_per_kwh
            band += overlap * p.half_band_gco2_per_kwh
        span = end_ms - start_ms
        return WindowForecast(self.zone, start_ms, end_ms, mean / span, band / span)

    def to_record(self) -> dict[str, Any]:
        """The ``grid.forecasts`` record."""
        return {
            "zone": self.zone,
            "issued_ms": self.issued_ms,
            "step_ms": self.step_ms,
            "model": self.model,
            "source": self.source,
            "band_coverage": self.band_coverage,
            "points": [
                {
                    "ts_ms": p.ts_ms,
                    "mean_gco2_per_kwh": p.mean_gco2_per_kwh,
                    "low_gco2_per_kwh": p.low_gco2_per_kwh,
                    "high_gco2_per_kwh": p.high_gco2_per_kwh,
                }
                for p in self.points
            ],
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Forecast:
        """A ``grid.forecasts`` record as a forecast; :class:`ForecastError` says what is wrong with a bad one."""
        try:
            points = tuple(
                ForecastPoint(
                    int(p["ts_ms"]),
                    float(p["mean_gco2_per_kwh"]),
                    float(p["low_gco2_per_kwh"]),
                    float(p["high_gco2_per_kwh"]),
                )
                for p in record["points"]
            )
            return cls(
                str(record["zone"]),
                int(record["issued_ms"]),
                int(record["step_ms"]),
                points,
                str(record["model"]),
                str(record["source"]),
                float(record["band_coverage"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ForecastError):
                raise
            raise ForecastError(f"not a grid.forecasts record: {exc!r}") from exc


def _problems(f: Forecast) -> list[str]:
    out = []
    if not f.zone:
        out.append("no zone")
    if f.step_ms <= 0:
        out.append(f"step_ms must be positive, got {f.step_ms}")
    if not f.points:
        out.append("no points")
    if not 0.0 <= f.band_coverage < 1.0:
        out.append(f"band_coverage must be in [0, 1), got {f.band_coverage}")
    for i, p in enumerate(f.points):
        values = (p.low_gco2_per_kwh, p.mean_gco2_per_kwh, p.high_gco2_per_kwh)
        if not all(math.isfinite(v) for v in values):
            out.append(f"point {i}: not a finite number")
        elif not 0 <= p.low_gco2_per_kwh <= p.mean_gco2_per_kwh <= p.high_gco2_per_kwh:
            out.append(f"point {i}: needs 0 <= low <= mean <= high, got {values}")
        if f.step_ms > 0 and i and p.ts_ms != f.points[i - 1].ts_ms + f.step_ms:
            out.append(f"point {i}: not one step after the previous one")
        if len(out) >= 5:
            break
    return out


def newer(current: Forecast | None, incoming: Forecast) -> bool:
    """Whether ``incoming`` replaces the zone's kept forecast: a later issue time wins (a redelivery does not)."""
    return current is None or incoming.issued_ms > current.issued_ms


class LatestForecasts:
    """The latest forecast per zone."""

    def __init__(self, forecasts: Iterable[Forecast] = ()) -> None:
        self._by_zone: dict[str, Forecast] = {}
        for f in forecasts:
            self.offer(f)

    def offer(self, forecast: Forecast) -> bool:
        """Keep ``forecast`` if it is newer than the zone's; True when it was kept."""
        if not newer(self._by_zone.get(forecast.zone), forecast):
            return False
        self._by_zone[forecast.zone] = forecast
        return True

    def get(self, zone: str) -> Forecast | None:
        return self._by_zone.get(zone)

    def as_mapping(self) -> Mapping[str, Forecast]:
        return dict(self._by_zone)

    def __len__(self) -> int:
        return len(self._by_zone)


def step_start(ts_ms: int, step_ms: int) -> int:
    return ts_ms - ts_ms % step_ms


Readings = Sequence[tuple[int, float]] | tuple[np.ndarray, np.ndarray]


def reading_arrays(readings: Readings) -> tuple[np.ndarray, np.ndarray]:
    """``(ts_ms, gCO2eq/kWh)`` pairs as two arrays (times int64, values float); arrays are passed through, so a
    caller forecasting often from one long series converts it once."""
    if isinstance(readings, tuple) and len(readings) == 2 and isinstance(readings[0], np.ndarray):
        return readings[0], readings[1]
    pairs = list(readings)
    ts = np.fromiter((t for t, _ in pairs), dtype=np.int64, count=len(pairs))
    values = np.fromiter((v for _, v in pairs), dtype=float, count=len(pairs))
    return ts, values


def regular_history(readings: Readings, issued_ms: int, days: float, step_ms: int) -> np.ndarray | None:
    """The mean reading of each whole step in the ``days`` before the step ``issued_ms`` falls in (a step without a
    reading holds the previous step's value; leading empty steps take the first one). ``readings`` are
    ``(ts_ms, gCO2eq/kWh)`` in time order (or the two arrays of :func:`reading_arrays`). None when fewer than two
    days of steps have a reading."""
    end = step_start(issued_ms, step_ms)
    n = int(days * 24 * HOUR_MS // step_ms)
    begin = end - n * step_ms
    sums = np.zeros(n)
    counts = np.zeros(n)
    ts, values = reading_arrays(readings)
    lo, hi = np.searchsorted(ts, [begin, end])  # in time order: only the window's readings are looked at
    ts, values = ts[lo:hi], values[lo:hi]
    keep = (ts >= begin) & (ts < end) & np.isfinite(values)
    idx = (ts[keep] - begin) // step_ms
    np.add.at(sums, idx, values[keep])
    np.add.at(counts, idx, 1)
    if np.count_nonzero(counts) < 2 * 24 * HOUR_MS // step_ms:
        return None
    out = np.divide(sums, counts, out=np.full(n, np.nan), where=counts > 0)
    first = int(np.argmax(counts > 0))
    out[:first] = out[first]
    for i in range(first + 1, n):  # hold the last value across a gap
        if np.isnan(out[i]):
            out[i] = out[i - 1]
    return out


def _points(
    start_ms: int, step_ms: int, mean: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[ForecastPoint, ...]:
    mean = np.maximum(mean, 0.0)
    low = np.clip(low, 0.0, mean)
    high = np.maximum(high, mean)
    return tuple(
        ForecastPoint(start_ms + i * step_ms, float(m), float(lo), float(hi))
        for i, (m, lo, hi) in enumerate(zip(mean, low, high, strict=True))
    )


def forecast_from_history(
    zone: str,
    readings: Readings,
    issued_ms: int,
    settings: ForecastSettings,
    model: str = ETS,
) -> Forecast:
    """A ``horizon_h`` forecast issued at ``issued_ms`` from the zone's readings before it, by ``model``.

    An ETS fit that fails (a flat or broken history) falls back to seasonal naive and says so in ``model``."""
    return fit_forecast(zone, readings, issued_ms, settings, model)[0]


def fit_forecast(
    zone: str,
    readings: Readings,
    issued_ms: int,
    settings: ForecastSettings,
    model: str = ETS,
    start_params: np.ndarray | None = None,
) -> tuple[Forecast, np.ndarray | None]:
    """:func:`forecast_from_history`, and the fitted ETS parameters (None for a baseline). ``start_params``: where
    the optimiser starts, e.g. the zone's previous fit: a forecaster issuing every few hours from a window that
    moved by a few hours starts next to the optimum, and converges to the same fit in about half the iterations."""
    if model not in MODELS:
        raise ForecastError(f"unknown forecast model {model!r}: one of {', '.join(MODELS)}")
    step_ms = settings.step_minutes * 60_000
    period = settings.seasonal_period_h * HOUR_MS // step_ms
    steps = settings.horizon_h * HOUR_MS // step_ms
    history = regular_history(readings, issued_ms, settings.history_days, step_ms)
    if history is None:
        raise ForecastError(f"zone {zone}: fewer than 2 days of readings in the {settings.history_days} days before")
    start = step_start(issued_ms, step_ms)
    if model == PERSISTENCE:
        mean = np.full(steps, history[-1])
        points = _points(start, step_ms, mean, mean, mean)
        return Forecast(zone, issued_ms, step_ms, points, model, "baseline", 0.0), None
    if model == SEASONAL_NAIVE:
        mean = np.resize(history[-period:], steps)
        points = _points(start, step_ms, mean, mean, mean)
        return Forecast(zone, issued_ms, step_ms, points, model, "baseline", 0.0), None
    try:
        mean, low, high, params = _ets(history, period, steps, settings.band_coverage, start_params)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
        mean = np.resize(history[-period:], steps)
        name = f"{SEASONAL_NAIVE} (ets failed: {type(exc).__name__})"
        points = _points(start, step_ms, mean, mean, mean)
        return Forecast(zone, issued_ms, step_ms, points, name, "baseline", 0.0), None
    points = _points(start, step_ms, mean, low, high)
    return Forecast(zone, issued_ms, step_ms, points, ETS, "statsmodels", settings.band_coverage), params


def _ets(
    history: np.ndarray, period: int, steps: int, coverage: float, start_params: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    if not np.all(np.isfinite(history)) or float(np.ptp(history)) == 0.0:
        raise ValueError("a flat or non-finite history")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter: a poor fit shows in the measured error instead
        # a pandas series: statsmodels' prediction summary needs an index
        model = ETSModel(pd.Series(history), error="add", trend=None, seasonal="add", seasonal_periods=period,
                         initialization_method="heuristic")  # fmt: skip
        fit = model.fit(disp=False, start_params=start_params)
        frame = fit.get_prediction(start=len(history), end=len(history) + steps - 1).summary_frame(alpha=1 - coverage)
    mean = frame["mean"].to_numpy(dtype=float)
    low = frame["pi_lower"].to_numpy(dtype=float)
    high = frame["pi_upper"].to_numpy(dtype=float)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError("the fit gave non-finite forecasts")
    return mean, low, high, np.asarray(fit.params, dtype=float)


def absolute_errors(forecast: Forecast, actual: Mapping[int, float]) -> list[float | None]:
    """|forecast mean - actual| per step ahead (index 0 = the step the forecast was issued in); None where the
    actual step mean is unknown. ``actual`` maps step starts to the step's mean reading."""
    out: list[float | None] = []
    for p in forecast.points:
        truth = actual.get(p.ts_ms)
        out.append(None if truth is None else abs(p.mean_gco2_per_kwh - truth))
    return out
