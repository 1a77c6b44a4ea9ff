"""Forecast error on the real 2020 France + Great Britain intensity: a rolling origin through the year, the ETS
model against persistence and seasonal naive, mean absolute error by hours ahead.

At each origin (every ``every_h`` hours from 2020-01-01 00:00 UTC) each model is given only the readings before
it, issues a ``horizon_h`` forecast of hourly means, and is scored against the hourly means of the published
intensity (``*_ci.csv``); an hour without a reading is not scored.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.common import Table
from toogreen.domain.forecast import ETS, HOUR_MS, MODELS, PERSISTENCE, forecast_from_history
from toogreen.domain.intensity import read_intensity_csv
from toogreen.evaluation.inputs import day_start
from toogreen.settings import Settings

HORIZONS_H = (1, 3, 6, 12, 24, 36)


def hourly_truth(readings: list[tuple[int, float]]) -> dict[int, float]:
    """Mean reading of each hour that has one (hour start ms -> gCO2eq/kWh)."""
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    for ts, value in readings:
        hour = ts - ts % HOUR_MS
        sums[hour] = sums.get(hour, 0.0) + value
        counts[hour] = counts.get(hour, 0) + 1
    return {h: sums[h] / counts[h] for h in sums}


def rolling_origin(
    zone: str, readings: list[tuple[int, float]], first_ms: int, last_ms: int, every_h: int, settings: Settings
) -> dict[str, object]:
    """Absolute errors per model and hour ahead, the ETS band's coverage, and the fit time."""
    truth = hourly_truth(readings)
    fs = settings.forecast
    steps = fs.horizon_h
    errors = {m: [[] for _ in range(steps)] for m in MODELS}
    inside = total = 0
    origins = 0
    fit_s = 0.0
    models_used: dict[str, int] = {}
    for origin in range(first_ms, last_ms, every_h * HOUR_MS):
        origins += 1
        for model in MODELS:
            t0 = time.perf_counter()
            f = forecast_from_history(zone, readings, origin, fs, model)
            if model == ETS:
                fit_s += time.perf_counter() - t0
                models_used[f.model] = models_used.get(f.model, 0) + 1
            for k, p in enumerate(f.points[:steps]):
                actual = truth.get(p.ts_ms)
                if actual is None:
                    continue
                errors[model][k].append(abs(p.mean_gco2_per_kwh - actual))
                if model == ETS:
                    total += 1
                    inside += p.low_gco2_per_kwh <= actual <= p.high_gco2_per_kwh
    mae = {m: [float(np.mean(e)) if e else float("nan") for e in errors[m]] for m in MODELS}
    return {
        "zone": zone,
        "origins": origins,
        "mae_by_hour_ahead": mae,
        "band_coverage": inside / total if total else float("nan"),
        "ets_fit_s_mean": fit_s / max(origins, 1),
        "ets_models": models_used,
    }


def run(out_dir: Path, every_h: int = 12, days: int = 366) -> Table:
    settings = Settings()
    folder = settings.data_dir / "grid" / "entsoe-2020"
    first = day_start("2020-01-01")
    last = min(first + days * 24 * HOUR_MS, day_start("2021-01-01"))
    results = []
    for zone in ("FR", "GB"):
        points = read_intensity_csv(folder / f"{zone.lower()}_ci.csv")
        readings = [(p.ts_ms, p.carbon_gco2_per_kwh) for p in points]
        results.append(rolling_origin(zone, readings, first, last, every_h, settings))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "forecast_error.json").write_text(json.dumps(results, indent=2) + "\n")
    fs = settings.forecast
    table = Table(
        "Forecast error: FR + GB 2020, rolling origin",
        f"origins every {every_h} h from 2020-01-01 ({results[0]['origins']} per zone), each model fitted on the "
        f"{fs.history_days} days before the origin, hourly means, {fs.horizon_h} h ahead; truth = the published "
        "intensity's hourly means (`*_ci.csv`); MAE in gCO2eq/kWh",
        ["zone", "model", *[f"{h} h" for h in HORIZONS_H], f"mean 1-{fs.horizon_h} h", "vs persistence"],
    )
    for r in results:
        mae = r["mae_by_hour_ahead"]
        assert isinstance(mae, dict)
        base = float(np.nanmean(mae[PERSISTENCE]))
        for model in MODELS:
            mean = float(np.nanmean(mae[model]))
            table.rows.append(
                [
                    str(r["zone"]),
                    model,
                    *[f"{mae[model][h - 1]:.1f}" for h in HORIZONS_H if h <= fs.horizon_h],
                    f"{mean:.1f}",
                    f"{mean / base:.2f}x",
                ]
            )
    for r in results:
        table.notes.append(
            f"{r['zone']}: the ETS {fs.band_coverage:.0%} band held the truth {float(r['band_coverage']):.0%} of the "
            f"time; one fit {float(r['ets_fit_s_mean']) * 1000:.0f} ms on average; fits {r['ets_models']}."
        )
    table.notes.append(
        "ets = statsmodels' ETSModel ETS(A,N,A): additive error, no trend, additive daily seasonality, heuristic "
        "initial states, and its prediction interval; persistence = the last hour holds; seasonal_naive = the same "
        "hour the day before."
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--every-h", type=int, default=12)
    parser.add_argument("--days", type=int, default=366)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "bench-results")
    args = parser.parse_args()
    print(run(args.out, args.every_h, args.days).markdown())


if __name__ == "__main__":
    main()
