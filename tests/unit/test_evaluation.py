"""The offline evaluation: the policies on real 2020 grid data, the oracle as a lower bound, the CLI."""

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from toogreen.app.cli import app
from toogreen.evaluation.inputs import day_start, generated_fleet, generated_workloads, load_grid
from toogreen.evaluation.simulate import POLICIES, Scenario, run_policy
from toogreen.settings import Settings


@pytest.fixture(scope="module")
def scenario(data_dir):
    folder = data_dir / "grid" / "entsoe-2020"
    grid = load_grid([f"FR={folder / 'fr_ci.csv'}", f"GB={folder / 'gb_ci.csv'}"])
    start = day_start("2020-03-02")
    # generous deadlines and room to spare: every policy finishes everything, so totals compare like for like
    work = [replace(w, deadline_ms=w.submitted_ms + 72 * 3_600_000, green_only=False)
            for w in generated_workloads(start, 1.0, 12, seed=3)]  # fmt: skip
    return Scenario(grid, generated_fleet(["FR", "GB"], 3), work, start, start + 86_400_000, Settings(), 3)


def test_every_policy_does_all_the_work_and_the_oracle_is_the_lower_bound(scenario):
    results = {name: run_policy(scenario, name) for name in POLICIES}
    assert all(r.deadline_misses == 0 for r in results.values()), {n: r.deadline_misses for n, r in results.items()}
    work = sum(w.duration_h for w in scenario.workloads)
    for name in ("carbon_agnostic", "price_only", "toogreen_no_reroute"):
        assert results[name].gpu_hours == pytest.approx(work, rel=1e-6)
    lower = results["oracle"].gco2
    assert all(r.gco2 >= lower * 0.999 for r in results.values())
    assert results["toogreen"].gco2 < results["carbon_agnostic"].gco2
    assert results["toogreen_no_reroute"].moves == 0


def test_the_same_inputs_give_the_same_results(scenario):
    assert run_policy(scenario, "toogreen").summary() == run_policy(scenario, "toogreen").summary()
    assert run_policy(scenario, "carbon_agnostic").summary() == run_policy(scenario, "carbon_agnostic").summary()


def test_cli_writes_the_policies_json(data_dir, tmp_path):
    folder = data_dir / "grid" / "entsoe-2020"
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, [
        "evaluate", "--grid", f"FR={folder / 'fr_ci.csv'}", "--grid", f"GB={folder / 'gb_ci.csv'}",
        "--start", "2020-06-01", "--days", "0.5", "--per-day", "10", "--out", str(out),
        "--plot", str(tmp_path / "p.png"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["policies"]) == set(POLICIES)
    assert set(report["policies"]["toogreen"]) >= {"gco2", "eur", "gpu_hours", "deadline_misses", "moves"}
    assert (tmp_path / "p.png").stat().st_size > 10_000
