"""Deferral in the router: a deferred decision, a wait revisited on retries (nothing recorded while the plan
holds), the placement when the window comes, and nothing of it when deferral is off or there are no forecasts."""

from __future__ import annotations

from tests.builders import NOW_MS, REQUEST, node_view, submission, zone_view
from toogreen.domain.forecast import HOUR_MS, Forecast, ForecastPoint
from toogreen.domain.lifecycle import WorkloadState
from toogreen.domain.records import DecisionKind, EventKind, RoutingDecision, WorkloadEvent
from toogreen.domain.router import handle_workload_event
from toogreen.settings import DeferralSettings, ForecastSettings, Settings

ON = Settings(forecast=ForecastSettings(deferral=DeferralSettings(enabled=True)))
T0 = NOW_MS - NOW_MS % HOUR_MS


def nodes(at_ms: int = NOW_MS) -> list:
    return [node_view("dc-1", "GB", at_ms=at_ms)]


NODES = nodes()
JOB = {**REQUEST, "expected_hours": 3.0, "deadline_ms": T0 + 20 * HOUR_MS}


def zones(carbon: float, at_ms: int = NOW_MS) -> dict:
    return {"GB": zone_view("GB", carbon, at_ms=at_ms)}


def gb(values: list[float]) -> dict[str, Forecast]:
    points = tuple(ForecastPoint(T0 + i * HOUR_MS, v, v - 5, v + 5) for i, v in enumerate(values))
    return {"GB": Forecast("GB", T0, HOUR_MS, points, "ets", "statsmodels", 0.8)}


DIP = gb([250.0] * 5 + [90.0] * 6 + [250.0] * 25)


def retry(at_ms: int, n: int) -> WorkloadEvent:
    return WorkloadEvent(event_id=f"retry:{n}", workload_id="w1", ts_ms=at_ms, type=EventKind.RETRY)


def test_a_deferred_submission_waits_and_is_placed_when_its_window_comes():
    first = handle_workload_event(submission(JOB), None, NODES, zones(250.0), ON, DIP)
    decision, queued = (e.record for e in first.emits)
    assert isinstance(decision, RoutingDecision) and decision.type is DecisionKind.DEFERRED
    assert decision.deferral is not None and decision.deferral.until_ms == T0 + 5 * HOUR_MS
    assert decision.deferral.zone == "GB" and decision.reason.startswith("deferred until ")
    assert isinstance(queued, WorkloadEvent) and queued.type == "queued" and first.queued is True
    assert first.reserve == [] and first.state is not None and first.state.state is WorkloadState.QUEUED
    # a retry an hour later: the plan holds, nothing new is recorded
    later = T0 + HOUR_MS
    again = handle_workload_event(retry(later, 1), first.state, nodes(later), zones(250.0, later), ON, DIP)
    assert again.emits == [] and again.queued is True and again.state is not None
    assert again.state.deferred_until_ms == T0 + 5 * HOUR_MS
    # the window has come: placed, the wait cleared
    come = T0 + 5 * HOUR_MS
    placed = handle_workload_event(retry(come, 2), again.state, nodes(come), zones(90.0, come), ON, DIP)
    assert [e.record.type for e in placed.emits if isinstance(e.record, RoutingDecision)] == [DecisionKind.INITIAL]
    assert placed.reserve and placed.state is not None and placed.state.deferred_until_ms is None


def test_a_revisit_places_early_when_the_grid_turns_clean_now():
    first = handle_workload_event(submission(JOB), None, NODES, zones(250.0), ON, DIP)
    clean_now = gb([250.0, 80.0] + [90.0] * 34)
    later = T0 + HOUR_MS
    early = handle_workload_event(retry(later, 1), first.state, nodes(later), zones(80.0, later), ON, clean_now)
    assert early.reserve and early.state is not None and early.state.state is WorkloadState.ROUTED


def test_off_or_without_forecasts_the_router_places_now_as_before():
    off = handle_workload_event(submission(JOB), None, NODES, zones(250.0), Settings(), DIP)
    blind = handle_workload_event(submission(JOB), None, NODES, zones(250.0), ON, None)
    for result in (off, blind):
        decision = result.emits[0].record
        assert result.reserve and isinstance(decision, RoutingDecision) and decision.type is DecisionKind.INITIAL
        assert decision.deferral is None
