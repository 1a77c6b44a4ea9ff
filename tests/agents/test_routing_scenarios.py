"""Routing and rerouting scenarios driven through the real agents (issue 4)."""

from __future__ import annotations

import pytest

import streams.agents as agents
from connectors.fleet_sim import SimulatedFleet
from streams.app import settings
from streams.emit import RecordingEmitter
from tests.agents.harness import TABLES, Loop, clear_tables
from tests.builders import now_ms

# three data-centre H100s in three zones, one gamer 4090
FLEET = (
    ("dc-de", "Rhein", "datacenter", "H100", "DE", 1.1, None, None),
    ("dc-fr", "Nord", "datacenter", "H100", "FR", 1.1, None, None),
    ("dc-es", "Sol", "datacenter", "H100", "ES", 1.1, None, None),
    ("gm-fr", "camille", "gamer", "RTX 4090", "FR", 1.0, None, None),
)
CALM = {"DE": 100.0, "FR": 300.0, "ES": 320.0}


@pytest.fixture
def loop(monkeypatch):
    clear_tables(TABLES)
    rec = RecordingEmitter()
    monkeypatch.setattr(agents, "emitter", rec)
    monkeypatch.setattr(settings.migration, "rescore_min_interval_s", 0.0)
    return Loop(rec, SimulatedFleet(seed=1, hours_per_second=0.001, rows=FLEET))


async def test_a_carbon_spike_moves_the_workload_by_checkpoint_and_restart(loop):
    await loop.setup(CALM)
    await loop.submit("w1")
    assert loop.where("w1") == "dc-de" and loop.state("w1") == "running"
    await loop.telemetry()
    await loop.grid({**CALM, "DE": 600.0})  # DE turns dirty: FR is now far cleaner
    reroute = loop.decisions("w1", "reroute")[0]
    assert reroute["from_node_id"] == "dc-de" and reroute["chosen_node_id"] == "dc-fr"
    assert reroute["score_gain"] >= 0.25 and reroute["saved_gco2"] > 0 and reroute["move_cost_s"] > 0
    commands = [(c["action"], c["node_id"]) for c in loop.rec.on("node.commands")]
    assert commands == [("start", "dc-de"), ("checkpoint", "dc-de"), ("stop", "dc-de"), ("resume", "dc-fr")]
    resume = loop.rec.on("node.commands")[-1]
    assert resume["checkpoint_uri"].startswith("ckpt://dc-de/w1/")
    emitted = [e["type"] for e in loop.rec.on("workload.events") if e["workload_id"] == "w1"]
    assert emitted == ["routed", "rescore", "migrating"]  # checkpointed and resumed come from the nodes
    assert agents.workload_state_table["w1"].applied_event_ids[-1].startswith("sim:dc-fr:w1:resumed")
    assert loop.where("w1") == "dc-fr" and loop.state("w1") == "running"
    assert agents.workload_state_table["w1"].moves == 1
    assert "w1" not in agents.node_reservation_table["dc-de"] and "w1" in agents.node_reservation_table["dc-fr"]


async def test_an_oscillating_signal_does_not_make_it_flap(loop):
    await loop.setup(CALM)
    await loop.submit("w1")
    for de in (110, 95, 120, 90, 115, 100):  # wobbles smaller than the 25 % needed
        await loop.grid({**CALM, "DE": de})
    assert loop.decisions("w1", "reroute") == []
    for de, fr in ((600, 300), (100, 600), (600, 100), (100, 600)):  # large swings, inside the dwell time
        await loop.grid({"DE": de, "FR": fr, "ES": 320.0})
    assert len(loop.decisions("w1", "reroute")) == 1
    no_moves = loop.decisions("w1", "no_move")
    assert any("dwell" in d["reason"] for d in no_moves)


async def test_the_fifth_move_is_the_last(loop, monkeypatch):
    monkeypatch.setattr(settings.migration, "min_dwell_s", 0.0)
    await loop.setup(CALM)
    await loop.submit("w1")
    for i in range(8):
        dirty_de = i % 2 == 0
        await loop.grid({"DE": 600.0 if dirty_de else 100.0, "FR": 100.0 if dirty_de else 600.0, "ES": 900.0})
    assert len(loop.decisions("w1", "reroute")) == 5
    assert agents.workload_state_table["w1"].moves == 5
    assert any("already moved 5 times" in d["reason"] for d in loop.decisions("w1", "no_move"))


async def test_a_failed_resume_rolls_back_to_the_origin(loop):
    await loop.setup(CALM)
    await loop.submit("w1")
    loop.fleet.refuse_starts_on.add("dc-fr")
    await loop.grid({**CALM, "DE": 600.0})
    reroutes = loop.decisions("w1", "reroute")
    assert len(reroutes) == 2 and "failed" in reroutes[1]["reason"] and reroutes[1]["chosen_node_id"] == "dc-de"
    assert loop.where("w1") == "dc-de" and loop.state("w1") == "running"
    assert agents.workload_state_table["w1"].moves == 0  # a rollback is not a move
    assert "w1" not in (agents.node_reservation_table.get("dc-fr") or {})


async def test_green_only_waits_in_the_queue_rather_than_land_on_a_dirty_node(loop):
    await loop.setup(CALM, renewable=20.0)  # nothing is green: every node is non-compliant
    await loop.submit("g1", green_only=True, vram_mb=8000)
    assert loop.state("g1") == "queued"
    assert loop.decisions("g1", "queued") and not loop.decisions("g1", "initial")
    await loop.grid(CALM, renewable=80.0)  # the grid turns green: the queue's retry places it
    retry = {"event_id": "retry-1", "workload_id": "g1", "ts_ms": now_ms(), "type": "retry", "node_id": None,
             "progress_pct": None, "checkpoint_uri": None, "decision_id": None, "reason": "t",
             "request": None}  # fmt: skip
    await loop.workload_event(retry)
    placed = loop.decisions("g1", "initial")[0]
    assert placed["tier"] in (1, 2, 3) and loop.state("g1") == "running"


async def test_a_deadline_that_cannot_be_met_is_rejected(loop):
    await loop.setup(CALM)
    await loop.submit("late", expected_hours=5.0, deadline_ms=now_ms() + 3_600_000)
    assert loop.state("late") == "rejected"
    assert "deadline" in loop.decisions("late", "rejected")[0]["reason"]


async def test_mig_slices_when_no_whole_gpu_fits_and_released_at_completion(loop):
    await loop.setup({"DE": 100.0, "FR": 300.0, "ES": 320.0}, renewable=40.0)  # no green premium
    # a budget only a slice meets (whole H100 2.40 €/h, 4090 0.40 €/h, 1g.10gb slice 0.29 €/h)
    await loop.submit("small", vram_mb=8000, expected_hours=1.0, budget_eur=0.35)
    small = loop.decisions("small", "initial")[0]
    assert small["mig_profile"] == "1g.10gb" and small["chosen_node_id"] == "dc-de"
    # fill the other whole GPUs
    await loop.submit("big-fr", vram_mb=70_000)
    await loop.submit("big-es", vram_mb=70_000)
    # 30 GB: more than the free 4090 holds, and no whole H100 is free: a 3g.40gb slice beside the first
    await loop.submit("mid", vram_mb=30_000, expected_hours=1.0)
    mid = loop.decisions("mid", "initial")[0]
    assert mid["mig_profile"] == "3g.40gb" and mid["chosen_node_id"] == "dc-de"
    held = agents.node_reservation_table["dc-de"]
    assert {w: h.mig_profile for w, h in held.items()} == {"small": "1g.10gb", "mid": "3g.40gb"}
    assert agents.node_running_table["dc-de"]["mid"].fraction == pytest.approx(60 / 132, abs=1e-6)
    done = {"event_id": "done-mid", "workload_id": "mid", "ts_ms": now_ms(), "type": "completed", "node_id": "dc-de",
            "progress_pct": 100.0, "checkpoint_uri": None, "decision_id": None, "reason": None,
            "request": None}  # fmt: skip
    await loop.workload_event(done)
    assert set(agents.node_reservation_table["dc-de"]) == {"small"}  # the slice is released


async def test_identical_inputs_give_identical_decisions(monkeypatch):
    runs = []
    for _ in range(2):
        clear_tables(TABLES)
        rec = RecordingEmitter()
        monkeypatch.setattr(agents, "emitter", rec)
        loop = Loop(rec, SimulatedFleet(seed=1, hours_per_second=0.001, rows=FLEET))
        await loop.setup(CALM)
        for i in range(3):
            await loop.submit(f"w{i}", vram_mb=20_000 * (i + 1))
        runs.append([(d["decision_id"], d["chosen_node_id"], d["score"], d["tier"]) for d in loop.decisions()])
    assert runs[0] == runs[1] and len(runs[0]) == 3


async def test_a_declared_surplus_draws_a_running_workload_to_the_discounted_zone(loop):
    """Equal carbon everywhere: only the surplus (curtailment → up to 40 % off) makes the other zone better."""
    from toogreen.codec import encode
    from toogreen.domain.admin import surplus_event_readings

    flat = {"DE": 300.0, "FR": 300.0, "ES": 300.0}
    await loop.setup(flat)
    await loop.submit("w1")
    here = loop.where("w1")
    target_zone = "ES" if here != "dc-es" else "FR"
    loop.grid_ts += 300_000
    admin = surplus_event_readings(target_zone, None, 300.0, 2500.0, 0.0, loop.grid_ts, 30.0)[0]
    async with agents.zone_windows.test_context() as agent:
        for zone, carbon in flat.items():
            r = admin if zone == target_zone else {**admin, "zone": zone, "curtailment_mw": None, "source": "test"}
            r = {**r, "carbon_intensity_gco2_per_kwh": carbon, "renewable_pct": 60.0, "price": 50.0}
            await agent.put(encode("grid.readings", r), key=zone.encode())
    await loop.drain()
    assert agents.zone_view_table[target_zone].surplus is True
    move = loop.decisions("w1", "reroute")[0]
    assert move["chosen_zone"] == target_zone and "cheaper" in move["reason"]
    assert loop.where("w1") == move["chosen_node_id"]


async def test_a_rerouted_workloads_receipt_covers_both_nodes_and_zones(loop):
    await loop.setup(CALM)
    await loop.submit("w1")
    for _ in range(3):
        await loop.telemetry()  # energy drawn on dc-de
    await loop.grid({**CALM, "DE": 600.0})
    assert loop.where("w1") == "dc-fr"
    for _ in range(3):
        await loop.telemetry()  # energy drawn on dc-fr
    done = {"event_id": "done-w1", "workload_id": "w1", "ts_ms": now_ms(), "type": "completed", "node_id": "dc-fr",
            "progress_pct": 100.0, "checkpoint_uri": None, "decision_id": None, "reason": None,
            "request": None}  # fmt: skip
    await loop.workload_event(done)
    await loop.telemetry()  # the node's next sample hands over what the workload drew there
    receipt = loop.rec.on("settlement.receipts")[0]
    where = [(i["node_id"], i["zone"]) for i in receipt["intervals"]]
    assert ("dc-de", "DE") in where and ("dc-fr", "FR") in where
    de = [i for i in receipt["intervals"] if i["zone"] == "DE"]
    fr = [i for i in receipt["intervals"] if i["zone"] == "FR"]
    assert all(i["carbon_gco2_per_kwh"] in (100.0, 600.0) for i in de) and all(
        i["carbon_gco2_per_kwh"] == 300.0 for i in fr
    )
    assert max(i["end_ms"] for i in de) <= min(i["start_ms"] for i in fr)  # its own intervals, in order
    assert receipt["kwh"] == pytest.approx(sum(i["kwh"] for i in receipt["intervals"]), abs=1e-5)


async def test_a_freed_cleaner_node_draws_a_running_workload(loop):
    await loop.setup({"DE": 600.0, "FR": 100.0, "ES": 650.0})
    await loop.submit("first")
    await loop.submit("second")
    assert loop.where("first") == "dc-fr" and loop.where("second") == "dc-de"
    done = {"event_id": "done-first", "workload_id": "first", "ts_ms": now_ms(), "type": "completed",
            "node_id": "dc-fr", "progress_pct": 100.0, "checkpoint_uri": None, "decision_id": None, "reason": None,
            "request": None}  # fmt: skip
    loop.fleet.nodes["dc-fr"].running.pop("first")  # the node finished it
    await loop.workload_event(done)  # no grid change: only the freed capacity
    move = loop.decisions("second", "reroute")[0]
    assert move["from_node_id"] == "dc-de" and move["chosen_node_id"] == "dc-fr"
    assert loop.where("second") == "dc-fr"


async def _register(loop: Loop, node_id: str, **fields: object) -> None:
    from toogreen.codec import encode

    reg = next(r for r in loop.fleet.registrations(now_ms()) if r["node_id"] == node_id)
    async with agents.node_registrations.test_context() as agent:
        await agent.put(encode("node.registry", {**reg, **fields}), key=node_id.encode())
    await loop.drain()


async def test_a_drained_node_gets_no_new_work_through_its_own_re_registrations_until_undrained(loop):
    await loop.setup(CALM)
    await _register(loop, "dc-de", drained=True)  # the admin API's drain
    await loop.submit("w1")
    assert loop.where("w1") != "dc-de"
    excluded = {a["node_id"]: a["excluded_reason"] for a in loop.decisions("w1", "initial")[0]["alternatives"]}
    assert excluded["dc-de"] == "drained"
    await _register(loop, "dc-de")  # the node re-registers by itself: still drained
    await loop.telemetry()
    await loop.submit("w2")
    assert loop.where("w2") not in (None, "dc-de")
    await _register(loop, "dc-de", drained=False)  # the admin API's undrain
    await loop.submit("w3")
    assert loop.where("w3") == "dc-de"
