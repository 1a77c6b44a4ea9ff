"""Golden numbers: every policy's totals on a short FR + GB window (the scenario of ``BENCHMARKS.md``, 3 days
instead of 14), to the milligram, as the code computed them before the typed-state redesign. A change to the
router, its bookkeeping or the accounting that moves any of them is a change of behaviour, not a refactor.

Changed on purpose since (issue 15, every policy does the same work): ``toogreen``, ``toogreen_no_reroute`` and
``oracle`` now run the work that misses its deadline (late) instead of dropping it, and the oracle needs exactly
each workload's hours instead of whole slots; their GPU-hours are the trace's 769.93 (toogreen's a little more:
the time its moves cost). Deferral is off in these settings (its default): this pins the non-deferring router.

The oracle is now a min-cost flow (OR-Tools) instead of HiGHS' LP, for speed: the same relaxation, but what cannot
fit its window is left unmet on the fewest, longest workloads (9 → 7 misses, and their late work finds cleaner
slots: gCO2 -1.7 %), and a different optimal schedule moves differently (1013 → 1370).

A move may go to another GPU model (``migration.keep_gpu_model`` off, as placement already takes the expected hours
to hold on any GPU the workload fits): toogreen moves 119 times instead of 29 (H100 work onto free A100s), gCO2
52,616.786 → 52,524.629, kWh 446.874 → 442.297, GPU-hours 770.803 → 773.959 (the moves' own time).

Green-only work is retried first, and work that is not green-only spares the compliant nodes
(``scoring.spare_compliant_nodes``: a non-compliant node no dirtier than the cleanest compliant one first): toogreen
gCO2 52,524.629 → 52,559.08, 98 moves; toogreen_no_reroute 61,276.795 → 59,459.091 and 8 → 5 misses."""

from __future__ import annotations

import pytest

from connectors.entsoe import intensities, read_production_csv, write_intensity_csv
from toogreen.evaluation.inputs import HOUR_MS, day_start, generated_fleet, generated_workloads, load_grid
from toogreen.evaluation.simulate import POLICIES, Scenario, run_policy
from toogreen.settings import Settings

START, DAYS, PER_DAY, SEED = "2020-01-06", 3, 40, 7

GOLDEN: dict[str, dict[str, float | int]] = {
    "toogreen": {
        "gco2": 52559.08,
        "eur": 1234.5,
        "gpu_hours": 772.921,
        "kwh": 446.398,
        "deadline_misses": 7,
        "moves": 98,
    },
    "toogreen_no_reroute": {
        "gco2": 59459.091,
        "eur": 1249.13,
        "gpu_hours": 769.93,
        "kwh": 451.383,
        "deadline_misses": 5,
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
        "gco2": 35636.552,
        "eur": 1154.23,
        "gpu_hours": 769.93,
        "kwh": 428.439,
        "deadline_misses": 7,
        "moves": 1013 + 357,
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
