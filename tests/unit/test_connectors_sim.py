"""The demo's simulators: the synthetic grid and the simulated fleet (labelled as simulators)."""

from collections import Counter

from connectors.fleet_sim import FLEET, SimulatedFleet
from connectors.synthetic_grid import SyntheticGrid, solar_factor
from toogreen.codec import encode
from toogreen.domain.validation import validate_grid_reading, validate_registration, validate_telemetry
from toogreen.domain.zones import ZONES

T0 = 1_700_000_000_000


def test_synthetic_grid_covers_the_eleven_zones_and_is_labelled():
    readings = SyntheticGrid(seed=1).readings(T0)
    assert sorted(r["zone"] for r in readings) == sorted(ZONES)
    for r in readings:
        assert r["source"] == "synthetic"
        assert validate_grid_reading(r) == []
        encode("grid.readings", r)


def test_synthetic_grid_is_deterministic_for_a_seed():
    a, b = SyntheticGrid(seed=3), SyntheticGrid(seed=3)
    assert [a.readings(T0 + i * 300_000) for i in range(5)] == [b.readings(T0 + i * 300_000) for i in range(5)]


def test_solar_follows_local_solar_time():
    fr, cal = ZONES["FR"], ZONES["US-CAL-CISO"]
    noon_utc = 1_700_006_400_000 - 1_700_006_400_000 % 86_400_000 + 12 * 3_600_000
    assert solar_factor(fr, noon_utc) > 0.9
    assert solar_factor(cal, noon_utc) == 0.0  # 4 a.m. in California


def test_surpluses_really_occur_over_a_few_days():
    grid = SyntheticGrid(seed=7)
    surplus = Counter()
    for i in range(288 * 3):
        for r in grid.readings(T0 + i * 300_000):
            if r["curtailment_mw"] or r["price"] < 10:
                surplus[r["zone"]] += 1
    assert len(surplus) >= 2


def test_fleet_composition():
    models = Counter(row[3] for row in FLEET)
    assert models == {"H100": 7, "A100": 8, "RTX 4090": 4, "RTX 3080": 1}
    assert {row[2] for row in FLEET} == {"datacenter", "recycler", "gamer"}
    assert all(row[4] in ZONES for row in FLEET)


def test_fleet_obeys_start_and_reports_until_completion():
    fleet = SimulatedFleet(seed=1, hours_per_second=1.0)
    for reg in fleet.registrations(T0):
        assert validate_registration(reg) == []
        encode("node.registry", reg)
    cmd = {"node_id": "dc-fr-h100-1", "workload_id": "w1", "action": "start", "vram_mb": 20_000, "expected_hours": 2.0,
           "checkpoint_uri": None}  # fmt: skip
    assert [e["type"] for e in fleet.apply_command(cmd, T0)] == ["started"]
    telemetry, events = fleet.tick(T0 + 1000, 1.0)
    busy = next(t for t in telemetry if t["node_id"] == "dc-fr-h100-1")
    assert busy["mem_used_mb"] >= 20_000 and busy["power_w"] > 500
    assert all(validate_telemetry(t) == [] for t in telemetry)
    assert [e["type"] for e in events] == ["progress"] and events[0]["progress_pct"] == 50.0
    _t, events = fleet.tick(T0 + 2000, 1.0)
    assert [e["type"] for e in events] == ["completed"]
    energy_before = busy["energy_j"]
    telemetry, _ = fleet.tick(T0 + 3000, 1.0)
    idle = next(t for t in telemetry if t["node_id"] == "dc-fr-h100-1")
    assert idle["mem_used_mb"] < 1000 and idle["energy_j"] > energy_before


def test_a_start_sent_again_after_its_workload_completed_is_not_carried_out_again():
    """The placement owner's outbox sends a start again, with its command id, after a failover; the workload may
    have completed since (a verifier run: it started a second time and the node then refused two others for VRAM)."""
    fleet = SimulatedFleet(seed=1, hours_per_second=1.0)
    cmd = {"command_id": "d1:start:dc-fr-h100-1", "node_id": "dc-fr-h100-1", "workload_id": "w1", "action": "start",
           "vram_mb": 20_000, "expected_hours": 1.0, "checkpoint_uri": None}  # fmt: skip
    assert [e["type"] for e in fleet.apply_command(cmd, T0)] == ["started"]
    _t, events = fleet.tick(T0 + 1000, 1.0)
    assert [e["type"] for e in events] == ["completed"]
    assert fleet.apply_command(dict(cmd), T0 + 2000) == []
    assert "w1" not in fleet.nodes["dc-fr-h100-1"].running
    again = {**cmd, "command_id": "d2:start:dc-fr-h100-1"}  # a new decision to run it there: carried out
    assert [e["type"] for e in fleet.apply_command(again, T0 + 3000)] == ["started"]


def test_fleet_refuses_a_start_that_does_not_fit():
    fleet = SimulatedFleet(seed=1, hours_per_second=1.0)
    cmd = {"node_id": "gm-es-3080-1", "workload_id": "w", "action": "start", "vram_mb": 20_000, "expected_hours": 1.0}
    assert fleet.apply_command(cmd, T0)[0]["type"] == "failed"
