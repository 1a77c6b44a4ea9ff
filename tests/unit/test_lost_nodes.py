"""A node presumed lost: its workloads re-queued to resume from their last periodic checkpoint (from scratch when
there is none) on another node through the router's normal placement; a returning node told to stop them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.builders import NOW_MS, node_view, running_entry, submission, telemetry, workload_event, zone_view
from toogreen.domain.lifecycle import WorkloadState
from toogreen.domain.lost_nodes import PresumedLost, check_lost_nodes, lost_node_rescores, silent_nodes
from toogreen.domain.node_state import apply_telemetry
from toogreen.domain.records import DecisionKind, EventKind, NodeAction, NodeCommand, RoutingDecision, Workload
from toogreen.domain.router import RouterResult, handle_workload_event
from toogreen.settings import LostNodeSettings, Settings

S = Settings()
LOST = LostNodeSettings(node_lost_after_s=30.0)
ZONES = {"FR": zone_view("FR", 50.0), "DE": zone_view("DE", 400.0)}
NODES = [node_view("dc-fr", "FR"), node_view("dc-de", "DE")]


def running_on_fr(*events: tuple[str, dict]) -> Workload:
    state = handle_workload_event(submission(), None, NODES, ZONES, S).state
    assert state is not None and state.node_id == "dc-fr"
    for n, (kind, fields) in enumerate((("started", {}), *events)):
        state = handle_workload_event(workload_event(kind, n=n, node_id="dc-fr", **fields), state, [], {}, S).state
        assert state is not None
    return state


def presumed_lost(state: Workload, node_id: str = "dc-fr", seen_ms: int | None = NOW_MS - 31_000) -> RouterResult:
    (rescore,) = lost_node_rescores(node_id, seen_ms, [state.workload_id], NOW_MS)
    return handle_workload_event(rescore, state, NODES, ZONES, S)


def decision(result: RouterResult) -> RoutingDecision:
    return next(e.record for e in result.emits if isinstance(e.record, RoutingDecision))


def command(result: RouterResult) -> NodeCommand:
    return next(e.record for e in result.emits if isinstance(e.record, NodeCommand))


def test_a_node_is_silent_once_its_telemetry_is_older_than_the_setting_and_something_runs_there():
    nodes = {"old": apply_telemetry(None, telemetry("old", NOW_MS - 32_000)),
             "new": apply_telemetry(None, telemetry("new", NOW_MS - 1_000))}  # fmt: skip
    running = {"w1": running_entry("old"), "w2": running_entry("new"), "w3": running_entry("never")}
    assert silent_nodes(nodes, running, NOW_MS, LOST) == ["never", "old"]
    assert silent_nodes(nodes, running, NOW_MS, LOST, presumed_lost={"old"}) == ["never"]
    assert silent_nodes(nodes, {"w2": running_entry("new")}, NOW_MS, LOST) == []
    assert silent_nodes({"old": nodes["old"]}, {}, NOW_MS, LOST) == []  # nothing runs there: nothing to re-queue


def test_a_stalled_pipeline_presumes_no_node_lost():
    """Every node 40 s behind the clock, but each within the setting of the newest: the pipeline stalled (a broker
    down, the worker catching up), the nodes did not."""
    nodes = {"a": apply_telemetry(None, telemetry("a", NOW_MS - 40_000)),
             "b": apply_telemetry(None, telemetry("b", NOW_MS - 45_000))}  # fmt: skip
    running = {"w1": running_entry("a"), "w2": running_entry("b")}
    assert silent_nodes(nodes, running, NOW_MS, LOST) == []
    assert silent_nodes(nodes, running, NOW_MS + 40_000, LOST) == []
    behind = {**nodes, "b": apply_telemetry(None, telemetry("b", NOW_MS - 71_000))}  # b 31 s behind a: b is silent
    assert silent_nodes(behind, running, NOW_MS, LOST) == ["b"]


@given(lag_s=st.floats(min_value=11.0, max_value=600.0), behind_s=st.floats(min_value=31.0, max_value=600.0))
def test_a_node_whose_partition_replays_a_backlog_is_not_presumed_lost(lag_s: float, behind_s: float):
    """Node b's newest sample is ``behind_s`` older than a's, but the worker applied it ``lag_s`` after it was taken
    (its telemetry partition is being read again after a rebalance): what b sent since is not read yet, so b is not
    silent. Once b's partition is caught up (a sample applied as it came) and b still lags a, it is."""
    a = apply_telemetry(None, telemetry("a", NOW_MS - 1_000), ingested_ms=NOW_MS - 900)
    taken_ms = NOW_MS - 1_000 - int(behind_s * 1000)
    replayed = apply_telemetry(None, telemetry("b", taken_ms), ingested_ms=taken_ms + int(lag_s * 1000))
    running = {"w1": running_entry("a"), "w2": running_entry("b")}
    applied_recently = taken_ms + int(lag_s * 1000) >= NOW_MS - 1_000 - 30_000
    assert silent_nodes({"a": a, "b": replayed}, running, NOW_MS, LOST) == ([] if applied_recently else ["b"])
    caught_up = apply_telemetry(None, telemetry("b", taken_ms), ingested_ms=taken_ms + 500)
    assert silent_nodes({"a": a, "b": caught_up}, running, NOW_MS, LOST) == ["b"]


def test_a_lost_nodes_workload_resumes_from_its_last_periodic_checkpoint_elsewhere():
    uri = "file:///ckpt/w1/dc-fr-1-step.tar#sha256=ab"
    state = running_on_fr(
        ("progress", {"progress_pct": 20.0, "checkpoint_uri": uri}), ("progress", {"progress_pct": 30.0})
    )
    assert state.last_checkpoint_uri == uri

    lost = presumed_lost(state)
    assert lost.state is not None and lost.state.state is WorkloadState.QUEUED and lost.state.node_id is None
    assert lost.state.resume_from == uri and lost.state.lost_node == "dc-fr"
    assert lost.release == ["dc-fr"] and lost.stopped_on == "dc-fr" and lost.queued is True
    why = decision(lost)
    assert why.type == DecisionKind.QUEUED and why.from_node_id == "dc-fr"
    assert "node dc-fr sent no telemetry for 31 s and is presumed lost" in why.reason
    assert f"re-queued to resume from its last checkpoint {uri}" in why.reason
    queued = next(e.record for e in lost.emits if e.topic == "workload.events")
    assert queued.type is EventKind.QUEUED and queued.node_id == "dc-fr" and queued.decision_id == why.decision_id
    assert handle_workload_event(queued, lost.state, [], {}, S).state is None  # its own event: applied already
    assert presumed_lost(lost.state).state is None  # the same presumption again (a new owner): a no-op

    # the router's normal placement, elsewhere, by a resume (never back onto the lost node, even if it looks fresh)
    placed = handle_workload_event(workload_event("retry"), lost.state, NODES, ZONES, S)
    assert (command(placed).action, command(placed).node_id, command(placed).checkpoint_uri) == (
        NodeAction.RESUME, "dc-de", uri)  # fmt: skip
    moved = decision(placed)  # a move off the lost node (the API lists it with the moves), not a second start
    assert (moved.type, moved.from_node_id, moved.chosen_node_id) == (DecisionKind.REROUTE, "dc-fr", "dc-de")
    assert moved.reason.startswith("resumed off dc-fr, presumed lost, from its last checkpoint")
    assert placed.state is not None
    resumed = handle_workload_event(workload_event("resumed", node_id="dc-de"), placed.state, [], {}, S)
    assert resumed.state is not None and resumed.state.state is WorkloadState.RUNNING
    assert resumed.state.node_id == "dc-de" and resumed.state.resume_from is None and resumed.running_on is not None


def test_without_a_checkpoint_it_starts_from_scratch_and_says_so():
    lost = presumed_lost(running_on_fr(("progress", {"progress_pct": 40.0})))
    assert lost.state is not None and lost.state.resume_from is None and lost.state.progress_pct == 0.0
    assert "re-queued from scratch: it reported no checkpoint" in decision(lost).reason
    placed = handle_workload_event(workload_event("retry"), lost.state, [node_view("dc-de", "DE")], ZONES, S)
    assert (command(placed).action, command(placed).node_id, command(placed).checkpoint_uri) == (
        NodeAction.START, "dc-de", None)  # fmt: skip
    assert decision(placed).type == DecisionKind.INITIAL  # a new start: from scratch


def test_a_workload_elsewhere_by_now_or_moving_or_ended_is_left_as_it_is():
    state = running_on_fr()
    elsewhere = presumed_lost(state, "dc-de")
    assert elsewhere.emits == [] and elsewhere.release == [] and not elsewhere.queued
    assert elsewhere.state is not None and (elsewhere.state.state, elsewhere.state.node_id) == (
        WorkloadState.RUNNING, "dc-fr")  # fmt: skip
    done = handle_workload_event(workload_event("completed", node_id="dc-fr"), state, [], {}, S).state
    assert done is not None and presumed_lost(done).state is None and presumed_lost(done).emits == []


@given(kind=st.sampled_from(["progress", "completed", "failed", "checkpointed"]))
def test_what_the_lost_node_reports_afterwards_is_answered_by_a_stop_and_not_applied(kind: str):
    uri = "file:///ckpt/w1/a.tar#sha256=ab"
    lost = presumed_lost(running_on_fr(("progress", {"progress_pct": 20.0, "checkpoint_uri": uri})))
    placed = handle_workload_event(workload_event("retry"), lost.state, NODES, ZONES, S)
    resumed = handle_workload_event(workload_event("resumed", node_id="dc-de"), placed.state, [], {}, S).state
    for state in (lost.state, resumed):  # still queued, or running elsewhere
        assert state is not None
        late = handle_workload_event(workload_event(kind, n=9, node_id="dc-fr"), state, [], {}, S)
        assert late.rejected_reason is None and late.state is not None
        assert (late.state.state, late.state.node_id) == (state.state, state.node_id)
        assert late.release == [] and late.running_on is None and not late.settle
        stop = command(late)
        assert (stop.action, stop.node_id, stop.workload_id) == (NodeAction.STOP, "dc-fr", "w1")
    # the node it runs on now reports as usual
    assert resumed is not None
    fine = handle_workload_event(workload_event("completed", n=9, node_id="dc-de"), resumed, [], {}, S)
    assert fine.state is not None and fine.state.state is WorkloadState.COMPLETED and fine.settle


def test_the_owners_check_re_queues_once_and_stops_what_a_returning_node_still_runs():
    silent_since = NOW_MS - 32_000
    nodes = {"dc-fr": apply_telemetry(None, telemetry("dc-fr", silent_since)),
             "dc-de": apply_telemetry(None, telemetry("dc-de", NOW_MS - 1_000))}  # fmt: skip
    running = {"w1": running_entry("dc-fr"), "w2": running_entry("dc-fr"), "w3": running_entry("dc-de")}
    first = check_lost_nodes(nodes, running, {}, {}, NOW_MS, LOST)
    assert [(e.type, e.workload_id, e.node_id) for e in first.rescores] == [
        (EventKind.RESCORE, "w1", "dc-fr"), (EventKind.RESCORE, "w2", "dc-fr")]  # fmt: skip
    assert first.presumed == {"dc-fr": PresumedLost(last_seen_ms=silent_since, workload_ids=("w1", "w2"))}
    assert first.stops == [] and first.returned == []
    # the router has not applied them yet: the next tick sends nothing again
    again = check_lost_nodes(nodes, running, {}, first.presumed, NOW_MS + 2_000, LOST)
    assert again.rescores == [] and again.presumed == first.presumed

    # the node reports again: a stop for each workload re-queued off it that does not run there now
    state = running_on_fr(("progress", {"progress_pct": 20.0, "checkpoint_uri": "file:///c#sha256=ab"}))
    requeued = presumed_lost(state).state
    assert requeued is not None
    back = {node: apply_telemetry(nodes[node], telemetry(node, NOW_MS + 60_000)) for node in nodes}
    workloads = {"w1": requeued, "w2": Workload(workload_id="w2", state=WorkloadState.COMPLETED)}
    returned = check_lost_nodes(back, {"w3": running_entry("dc-de")}, workloads, first.presumed, NOW_MS + 61_000,
                                LOST)  # fmt: skip
    assert [(c.action, c.node_id, c.workload_id) for c in returned.stops] == [(NodeAction.STOP, "dc-fr", "w1")]
    assert returned.returned == ["dc-fr"] and returned.presumed == {} and returned.rescores == []
