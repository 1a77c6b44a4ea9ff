"""Golden numbers: every policy's totals on a short FR + GB window (the scenario of ``BENCHMARKS.md``, 3 days
instead of 14), to the milligram, as the code computed them before the typed-state redesign. A change to the
router, its bookkeeping or the accounting that moves any of them is a change of behaviour, not a refactor."""

from __future__ import annotations

import pytest

from connectors.entsoe import intensities, read_production_csv, write_intensity_csv
from toogreen.evaluation.inputs import HOUR_MS, day_start, generated_fleet, generated_workloads, load_grid
from toogreen.evaluation.simulate import POLICIES, Scenario, run_policy
from toogreen.settings import Settings

START, DAYS, PER_DAY, SEED = "2020-01-06", 3, 40, 7

GOLDEN: dict[str, dict[str, float | int]] = {
    "toogreen": {
        "gco2": 49073.197,
        "eur": 1177.57,
        "gpu_hours": 736.323,
        "kwh": 426.843,
        "deadline_misses": 7,
        "moves": 27,
    },
    "toogreen_no_reroute": {
        "gco2": 52996.87,
        "eur": 1151.1,
        "gpu_hours": 719.88,
        "kwh": 414.281,
        "deadline_misses": 8,
        "moves": 0,
    },
    "carbon_agnostic": {
        "gco2": 63828.409,
        "eur": 1227.04,
        "gpu_hours": 769.93,
        "kwh": 449.042,
        "deadline_misses": 0,
        "moves": 0,
    },
    "price_only": {
        "gco2": 58441.191,
        "eur": 1157.32,
        "gpu_hours": 769.93,
        "kwh": 437.694,
        "deadline_misses": 0,
        "moves": 0,
    },
    "oracle": {
        "gco2": 36800.931,
        "eur": 1145.65,
        "gpu_hours": 761.0,
        "kwh": 424.562,
        "deadline_misses": 10,
        "moves": 968,
    },
}


@pytest.fixture(scope="module")
def scenario(data_dir, tmp_path_factory):
    settings = Settings()
    folder = data_dir / "grid" / "entsoe-2020"
    out = tmp_path_factory.mktemp("golden")
    specs = []
    for zone in ("FR", "GB"):
        path = out / f"{zone.lower()}_intensity_renewables.csv"
        series = read_production_csv(folder / f"{zone.lower()}_production.csv")
        write_intensity_csv(intensities(series.mixes, settings.grid), path)
        specs.append(f"{zone}={path}")
    start = day_start(START)
    return Scenario(
        load_grid(specs),
        generated_fleet(["FR", "GB"], SEED),
        generated_workloads(start, DAYS, PER_DAY, SEED),
        start,
        start + DAYS * 24 * HOUR_MS,
        settings,
        SEED,
    )


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_gives_its_golden_totals(scenario, policy):
    assert run_policy(scenario, policy).summary() == GOLDEN[policy]
