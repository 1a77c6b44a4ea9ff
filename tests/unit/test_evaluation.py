"""The offline evaluation: the policies on real 2020 grid data, the oracle as a lower bound, the CLI."""

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from toogreen.app.cli import app
from toogreen.evaluation.inputs import day_start, generated_fleet, generated_workloads, load_grid
from toogreen.evaluation.simulate import POLICIES, Scenario, _RouterReplay, run_policy
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


def test_skipping_the_idle_queue_retries_changes_no_result(data_dir):
    """The replay leaves out retries that can only leave a workload waiting (every node big enough for it is busy);
    on a crowded fleet, with deferral on and off, the results are the same as with every retry sent."""
    folder = data_dir / "grid" / "entsoe-2020"
    grid = load_grid([f"FR={folder / 'fr_ci.csv'}", f"GB={folder / 'gb_ci.csv'}"])
    start = day_start("2020-03-02")
    for deferral in (False, True):
        settings = Settings()
        rules = settings.forecast.deferral.model_copy(update={"enabled": deferral})
        settings = settings.model_copy(update={"forecast": settings.forecast.model_copy(update={"deferral": rules})})
        crowded = Scenario(grid, generated_fleet(["FR", "GB"], 5), generated_workloads(start, 1.5, 60, seed=5), start,
                           start + 36 * 3_600_000, settings, 5)  # fmt: skip
        skipping = _RouterReplay(crowded, skip_idle_retries=True)
        fast = skipping.run(reroute=True)
        slow = _RouterReplay(crowded, skip_idle_retries=False).run(reroute=True)
        assert skipping.retries_skipped > 100  # the shortcut was taken, often
        assert fast.summary() == slow.summary()
        assert fast.usage == slow.usage


def test_the_oracle_runs_each_hour_once_in_the_cleanest_slots(data_dir):
    """One node, one workload of 0.75 h with a 3-hour window: it runs exactly 0.75 GPU-hours, in the window's
    cleanest slot(s), never two places at once."""
    folder = data_dir / "grid" / "entsoe-2020"
    grid = load_grid([f"FR={folder / 'fr_ci.csv'}"])
    start = day_start("2020-03-02")
    node = generated_fleet(["FR"], 1)[0]
    work = replace(generated_workloads(start, 1.0, 12, seed=3)[0], submitted_ms=start, duration_h=0.75,
                   deadline_ms=start + 3 * 3_600_000, vram_mb=1024, green_only=False)  # fmt: skip
    s = Scenario(grid, [node], [work], start, start + 3 * 3_600_000, Settings(), 1)
    result = run_policy(s, "oracle")
    assert result.gpu_hours == pytest.approx(0.75)
    assert result.deadline_misses == 0
    slot_h = s.slot_ms / 3_600_000
    intensities = sorted(grid["FR"].at(t).carbon_gco2_per_kwh for t in range(start, start + 3 * 3_600_000, s.slot_ms))
    best, left = 0.0, 0.75  # the cleanest slots filled in turn: the optimum of one workload on one node
    for ci in intensities:
        best += min(left, slot_h) * ci
        left -= min(left, slot_h)
    assert result.gco2 == pytest.approx(node.power_w * node.pue / 1000 * best, rel=1e-6)
    assert all(h <= slot_h + 1e-9 for _z, _t, h in result.usage)
