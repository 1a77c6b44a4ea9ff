"""An operator's move (``move_requested``): to a named node or the best other, refused with the reason otherwise;
the same checkpoint → stop → resume as a reroute, without the gain, dwell or move-limit tests."""

from __future__ import annotations

from tests.builders import node_view, submission, workload_event, zone_view
from toogreen.domain.records import NodeAction, NodeCommand, RoutingDecision, Workload
from toogreen.domain.router import handle_workload_event
from toogreen.settings import Settings

S = Settings()
ZONES = {"FR": zone_view("FR", 50.0), "DE": zone_view("DE", 400.0)}  # DE is dirtier: no reroute would go there
NODES = [node_view("dc-fr", "FR"), node_view("dc-de", "DE"), node_view("dc-de-2", "DE")]


def running() -> Workload:
    state = handle_workload_event(submission(), None, NODES, ZONES, S).state
    assert state is not None and state.node_id == "dc-fr"
    started = handle_workload_event(workload_event("started", node_id="dc-fr"), state, [], {}, S).state
    assert started is not None
    return started


def test_an_operator_moves_a_workload_to_the_node_it_names_even_a_dirtier_one():
    result = handle_workload_event(workload_event("move_requested", node_id="dc-de-2", reason="maintenance"),
                                   running(), NODES, ZONES, S)  # fmt: skip
    decision = next(e.record.to_wire() for e in result.emits if isinstance(e.record, RoutingDecision))
    command = next(e.record for e in result.emits if isinstance(e.record, NodeCommand))
    assert decision["type"] == "reroute" and decision["chosen_node_id"] == "dc-de-2"
    assert "operator move of w1 from dc-fr to dc-de-2" in decision["reason"] and "maintenance" in decision["reason"]
    assert command.action is NodeAction.CHECKPOINT and command.node_id == "dc-fr"
    assert result.state is not None and result.state.pending_move is not None
    assert result.state.pending_move.target_node == "dc-de-2" and result.reserve[0][0] == "dc-de-2"


def test_without_a_node_the_best_other_is_chosen_and_moves_beyond_the_limit_are_allowed():
    state = running()
    from msgspec.structs import replace

    state = replace(state, moves=S.migration.max_moves, last_move_ms=state.submitted_ms)
    result = handle_workload_event(workload_event("move_requested"), state, NODES, ZONES, S)
    assert result.state is not None and result.state.pending_move is not None
    assert result.state.pending_move.target_node in ("dc-de", "dc-de-2")


def test_a_move_to_an_unknown_or_unfit_node_is_refused_with_the_reason():
    unknown = handle_workload_event(workload_event("move_requested", node_id="nope"), running(), NODES, ZONES, S)
    record = unknown.emits[0].record
    assert isinstance(record, RoutingDecision)
    decision = record.to_wire()
    assert decision["type"] == "no_move"
    assert "no routable node 'nope'" in decision["reason"] and unknown.state is not None
    assert unknown.state.pending_move is None
    small = [*NODES[:2], node_view("dc-de-2", "DE", vram_free_mb=1000)]
    unfit = handle_workload_event(workload_event("move_requested", node_id="dc-de-2"), running(), small, ZONES, S)
    refusal = unfit.emits[0].record
    assert isinstance(refusal, RoutingDecision) and refusal.type == "no_move" and "refused" in (refusal.reason or "")


def test_a_workload_that_is_not_running_is_not_moved():
    state = handle_workload_event(submission(), None, NODES, ZONES, S).state  # routed, not yet started
    assert handle_workload_event(workload_event("move_requested"), state, NODES, ZONES, S).state is None
