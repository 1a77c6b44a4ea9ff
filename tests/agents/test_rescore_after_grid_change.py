"""A grid change re-scores the running workloads it affects at the end of the owner's run of zone views, however
the run ended: by its last event, or by the checkpoint's timer (which before re-scored nothing, so grid-driven
moves depended on load)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

import streams.agents as agents
from streams import faust_private
from streams.app import running_workload_table, settings, zone_view_table
from streams.emit import RecordingEmitter
from tests.agents.harness import TABLES, clear_tables
from tests.builders import now_ms, zone_view
from toogreen.domain.records import RunningEntry


@pytest.fixture
def recorder(monkeypatch):
    clear_tables(TABLES)
    rec = RecordingEmitter()
    monkeypatch.setattr(agents, "emitter", rec)
    monkeypatch.setattr(settings.migration, "rescore_min_interval_s", 0.0)
    return rec


def rescores(rec: RecordingEmitter) -> list[tuple[str, str]]:
    return [(e["workload_id"], e["reason"]) for e in rec.on("workload.events") if e["type"] == "rescore"]


@pytest.mark.parametrize("delay_ms", [0.0, 150.0])  # every view a run of its own; a run only the timer ends
async def test_a_zone_change_re_scores_what_it_affects_however_the_run_ends(recorder, monkeypatch, delay_ms):
    monkeypatch.setattr(settings.worker, "router_coalesce_max_delay_ms", delay_ms)
    data = faust_private.table_data(running_workload_table)
    data["w1"] = RunningEntry(node_id="dc-de", zone="DE", carbon_gco2_per_kwh=100.0, last_rescore_ms=0)
    data["w2"] = RunningEntry(node_id="dc-fr", zone="FR", carbon_gco2_per_kwh=50.0, last_rescore_ms=0)
    view = zone_view("DE", 600.0, at_ms=now_ms())
    async with agents.zone_views.test_context() as agent:
        await agent.put(msgspec.json.encode(view), key=b"DE")
        if delay_ms:
            assert rescores(recorder) == []  # the run is still open
            await asyncio.sleep(3 * delay_ms / 1000)  # no further view: the checkpoint's timer ends it
    assert rescores(recorder) == [("w1", "zone DE window changed")]  # its own zone; FR's w2 is not affected
    assert zone_view_table["DE"] == view and running_workload_table["w1"].last_rescore_ms > 0
