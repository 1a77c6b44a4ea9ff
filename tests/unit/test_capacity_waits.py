"""Waiting for capacity in a cleaner zone: a window in a zone starts no earlier than a node there is expected to be
free (the expected end of what it holds), never past the latest start; the router waits for a busy clean node
rather than placing in a dirty zone now, and plans again when the window came without the capacity."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW_MS, REQUEST, node_view, submission, zone_view
from toogreen.domain.deferral import decide_deferral, latest_start_ms
from toogreen.domain.fleet import Fleet
from toogreen.domain.forecast import HOUR_MS, Forecast, ForecastPoint
from toogreen.domain.node_state import expected_free_ms
from toogreen.domain.records import DecisionKind, EventKind, Hold, RoutingDecision, WorkloadEvent
from toogreen.domain.router import available_from_ms, handle_workload_event, workload_spec
from toogreen.domain.scoring import route
from toogreen.settings import DeferralSettings, ForecastSettings, Settings

T0 = NOW_MS - NOW_MS % HOUR_MS
ON = DeferralSettings(enabled=True)
S_ON = Settings(forecast=ForecastSettings(deferral=ON))


def flat(zone: str, value: float, hours: int = 36) -> Forecast:
    points = tuple(ForecastPoint(T0 + i * HOUR_MS, value, value - 5, value + 5) for i in range(hours))
    return Forecast(zone, T0, HOUR_MS, points, "ets", "statsmodels", 0.8)


FORECASTS = {"FR": flat("FR", 60.0), "GB": flat("GB", 250.0)}


def test_expected_free_is_the_latest_end_of_the_holds_and_unknown_when_one_is():
    assert expected_free_ms([]) is None
    assert expected_free_ms([Hold(vram_mb=1, expected_end_ms=5), Hold(vram_mb=1, expected_end_ms=9)]) == 9
    assert expected_free_ms([Hold(vram_mb=1, expected_end_ms=5), Hold(vram_mb=1)]) is None


def test_a_full_clean_zone_is_waited_for_until_its_node_is_expected_free():
    free_at = T0 + 3 * HOUR_MS
    d = decide_deferral(NOW_MS, 2.0, NOW_MS + 20 * HOUR_MS, "GB", 250.0, FORECASTS, ["GB", "FR"], ON,
                        available_from_ms={"GB": NOW_MS, "FR": free_at})  # fmt: skip
    assert d.defer and d.zone == "FR" and d.until_ms == free_at
    assert "FR has no node free for it before" in d.reason and "(expected)" in d.reason


def test_no_wait_when_the_clean_zone_frees_only_after_the_latest_start():
    deadline = NOW_MS + 6 * HOUR_MS
    latest = latest_start_ms(NOW_MS, 2.0, deadline, ON)
    d = decide_deferral(NOW_MS, 2.0, deadline, "GB", 250.0, FORECASTS, ["GB", "FR"], ON,
                        available_from_ms={"GB": NOW_MS, "FR": latest + HOUR_MS})  # fmt: skip
    assert not d.defer


def test_a_window_that_came_without_its_capacity_is_planned_again():
    now = T0 + 3 * HOUR_MS  # the window planned for FR came, but FR's node runs late: expected free in 2 h more
    available = {"GB": now, "FR": now + 2 * HOUR_MS}
    d = decide_deferral(now, 2.0, T0 + 20 * HOUR_MS, "GB", 250.0, FORECASTS, ["GB", "FR"], ON, waiting_since_ms=T0,
                        waiting_until_ms=now, available_from_ms=available, waiting_zone="FR")  # fmt: skip
    assert d.defer and d.zone == "FR" and d.until_ms == now + 2 * HOUR_MS
    # placed now when placing now runs it in the zone it waited for
    d = decide_deferral(now, 2.0, T0 + 20 * HOUR_MS, "FR", 60.0, FORECASTS, ["FR"], ON, waiting_since_ms=T0,
                        waiting_until_ms=now, available_from_ms={"FR": now}, waiting_zone="FR")  # fmt: skip
    assert not d.defer and "has come" in d.reason


@given(
    hours=st.floats(0.5, 12.0),
    deadline_h=st.floats(0.5, 48.0),
    free_h=st.dictionaries(st.sampled_from(["FR", "GB", "DE"]), st.floats(0.0, 40.0), min_size=1),
    values=st.dictionaries(st.sampled_from(["FR", "GB", "DE"]), st.floats(10.0, 500.0), min_size=1),
    now_carbon=st.floats(10.0, 500.0),
    waiting=st.none() | st.tuples(st.floats(0.0, 10.0), st.sampled_from(["FR", "GB", "DE"])),
)
@settings(max_examples=300, deadline=None)
def test_a_capacity_wait_respects_capacity_and_never_passes_the_latest_start(
    hours, deadline_h, free_h, values, now_carbon, waiting
):
    now = T0 + HOUR_MS // 2
    deadline = now + int(deadline_h * HOUR_MS)
    forecasts = {z: flat(z, v, 60) for z, v in values.items()}
    available = {z: now + int(h * HOUR_MS) for z, h in free_h.items()}
    until, zone = (None, None) if waiting is None else (now - int(waiting[0] * HOUR_MS), waiting[1])
    d = decide_deferral(now, hours, deadline, "GB", now_carbon, forecasts, sorted(available), ON,
                        waiting_since_ms=None if until is None else until - HOUR_MS, waiting_until_ms=until,
                        available_from_ms=available, waiting_zone=zone)  # fmt: skip
    if d.defer:
        assert d.until_ms is not None and d.zone is not None
        assert d.until_ms <= latest_start_ms(now, hours, deadline, ON)  # the deadline placing now meets holds
        assert d.until_ms >= available[d.zone]  # a node there is expected free by then
        assert now + (d.until_ms - now) + hours * HOUR_MS <= deadline


def _busy(node_id: str, zone: str, free_ms: int | None, **extra) -> object:
    return node_view(node_id, zone, whole_tenants=1, vram_free_mb=0, expected_free_ms=free_ms, **extra)


def test_available_from_counts_free_and_busy_nodes_and_skips_unknown_unhealthy_and_worse_tiers():
    zones = {"FR": zone_view("FR", 60.0, renewable_pct=20.0), "GB": zone_view("GB", 250.0, renewable_pct=20.0),
             "DE": zone_view("DE", 300.0, renewable_pct=20.0)}  # fmt: skip
    fleet = [node_view("gb-1", "GB"), _busy("fr-1", "FR", NOW_MS + HOUR_MS), _busy("fr-2", "FR", NOW_MS + 3 * HOUR_MS),
             _busy("de-1", "DE", None), _busy("de-2", "DE", NOW_MS + HOUR_MS, health="unhealthy")]  # fmt: skip
    spec = workload_spec("w1", submission({**REQUEST, "expected_hours": 2.0}).request)  # type: ignore[arg-type]
    decision = route(spec, fleet, zones, NOW_MS, S_ON.scoring, S_ON.pricing)
    assert decision.chosen is not None and decision.chosen.zone == "GB"
    got = available_from_ms(spec, decision.chosen, Fleet.of(fleet), zones, NOW_MS, S_ON)
    assert got == {"GB": NOW_MS, "FR": NOW_MS + HOUR_MS}


def test_the_router_waits_for_a_busy_clean_node_and_says_why():
    zones = {"FR": zone_view("FR", 60.0, renewable_pct=20.0), "GB": zone_view("GB", 250.0, renewable_pct=20.0)}
    free_at = T0 + 3 * HOUR_MS
    fleet = [node_view("gb-1", "GB"), _busy("fr-1", "FR", free_at)]
    job = {**REQUEST, "expected_hours": 2.0, "deadline_ms": NOW_MS + 20 * HOUR_MS}
    result = handle_workload_event(submission(job), None, fleet, zones, S_ON, FORECASTS)
    decisions = [e.record for e in result.emits if isinstance(e.record, RoutingDecision)]
    assert [d.type for d in decisions] == [DecisionKind.DEFERRED]
    assert decisions[0].deferral is not None and decisions[0].deferral.until_ms == free_at
    assert decisions[0].deferral.zone == "FR" and decisions[0].reason.startswith("deferred until")
    assert result.state is not None and result.state.deferred_zone == "FR" and result.queued is True
    # at the window, fr-1 is still busy (its workload runs late): the plan is made again, not placed in GB
    late = T0 + 4 * HOUR_MS
    fleet = [node_view("gb-1", "GB", at_ms=late), _busy("fr-1", "FR", late + HOUR_MS, at_ms=late)]
    zones = {"FR": zone_view("FR", 60.0, at_ms=late, renewable_pct=20.0),
             "GB": zone_view("GB", 250.0, at_ms=late, renewable_pct=20.0)}  # fmt: skip
    again = WorkloadEvent(event_id="retry:1", workload_id="w1", ts_ms=late, type=EventKind.RETRY)
    result = handle_workload_event(again, result.state, fleet, zones, S_ON, FORECASTS)
    assert result.state is not None and result.state.deferred_until_ms == late + HOUR_MS and result.queued is True
