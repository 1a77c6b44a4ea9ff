"""A drained node: an operator's drain holds it unroutable (excluded with the reason "drained") through the node's
own re-registrations and telemetry, until an operator undrains it."""

from __future__ import annotations

from tests.builders import NOW_MS, node_view, registration, telemetry, zone_view
from toogreen.domain.fleet import Fleet
from toogreen.domain.node_state import apply_registration, apply_telemetry, to_node_view
from toogreen.domain.scoring import route
from toogreen.domain.views import WorkloadSpec
from toogreen.settings import PricingSettings, ScoringSettings

WORK = WorkloadSpec("w1", vram_mb=16_000, expected_hours=1.0)


def test_a_drain_holds_through_the_nodes_own_registrations_and_telemetry_until_an_undrain():
    state = apply_telemetry(apply_registration(None, registration()), telemetry(ts_ms=NOW_MS))
    assert not state.drained
    drained = apply_registration(state, registration(drained=True))
    assert drained.drained and to_node_view(drained, {}).drained  # type: ignore[union-attr]
    again = apply_telemetry(apply_registration(drained, registration(zone="DE")), telemetry(ts_ms=NOW_MS + 1))
    assert again.drained and again.registration is not None and again.registration.zone == "DE"
    undrained = apply_registration(again, registration(drained=False))
    assert not undrained.drained and not to_node_view(undrained, {}).drained  # type: ignore[union-attr]


def test_routing_excludes_a_drained_node_with_the_reason_drained():
    nodes = [node_view("dc-a", drained=True, util_pct=0.0), node_view("dc-b", util_pct=90.0)]
    decision = route(WORK, nodes, {"FR": zone_view()}, NOW_MS, ScoringSettings(), PricingSettings())
    assert decision.chosen is not None and decision.chosen.node_id == "dc-b"
    drained = next(c for c in decision.alternatives if c.node_id == "dc-a")
    assert not drained.eligible and drained.excluded_reason == "drained"
    assert ("drained", 1) in decision.exclusions
    only_drained = route(WORK, Fleet.of(nodes[:1]), {"FR": zone_view()}, NOW_MS, ScoringSettings(), PricingSettings())
    assert only_drained.chosen is None and "drained" in only_drained.reason


def test_a_fleet_row_follows_its_nodes_drain():
    fleet = Fleet.of([node_view("dc-a", drained=True)])
    assert bool(fleet.column("drained")[0])
    fleet.upsert(node_view("dc-a"))
    assert not bool(fleet.column("drained")[0])
