"""A node presumed lost: its workloads re-queued to resume from their last periodic checkpoint (from scratch when
there is none) on another node through the router's normal placement; a returning node told to stop them."""

from __future__ import annotations

from tests.builders import NOW_MS, node_view, running_entry, submission, telemetry, workload_event, zone_view
from toogreen.domain.lifecycle import WorkloadState
from toogreen.domain.lost_nodes import requeue_off_lost_node, silent_nodes, stop_on_return
from toogreen.domain.node_state import apply_telemetry
from toogreen.domain.records import EventKind, NodeAction, NodeCommand, Workload
from toogreen.domain.router import handle_workload_event
from toogreen.settings import LostNodeSettings, Settings

S = Settings()
LOST = LostNodeSettings(node_lost_after_s=30.0)
ZONES = {"FR": zone_view("FR", 50.0), "DE": zone_view("DE", 400.0)}


def running_on_fr(*events: tuple[str, dict]) -> Workload:
    nodes = [node_view("dc-fr", "FR"), node_view("dc-de", "DE")]
    state = handle_workload_event(submission(), None, nodes, ZONES, S).state
    assert state is not None and state.node_id == "dc-fr"
    for n, (kind, fields) in enumerate((("started", {"node_id": "dc-fr"}), *events)):
        state = handle_workload_event(workload_event(kind, n=n, **fields), state, [], {}, S).state
        assert state is not None
    return state


def test_a_node_is_silent_once_its_telemetry_is_older_than_the_setting_and_something_runs_there():
    nodes = {"old": apply_telemetry(None, telemetry("old", NOW_MS - 31_000)),
             "new": apply_telemetry(None, telemetry("new", NOW_MS - 29_000))}  # fmt: skip
    running = {"w1": running_entry("old"), "w2": running_entry("new"), "w3": running_entry("never")}
    assert silent_nodes(nodes, running, NOW_MS, LOST) == ["never", "old"]
    assert silent_nodes(nodes, running, NOW_MS, LOST, presumed_lost={"old"}) == ["never"]
    assert silent_nodes(nodes, {"w2": running_entry("new")}, NOW_MS, LOST) == []
    assert silent_nodes({"old": nodes["old"]}, {}, NOW_MS, LOST) == []  # nothing runs there: nothing to re-queue


def test_a_lost_nodes_workload_resumes_from_its_last_periodic_checkpoint_elsewhere_and_the_node_is_told_to_stop():
    uri = "file:///ckpt/w1/dc-fr-1-step.tar#sha256=ab"
    state = running_on_fr(
        ("progress", {"progress_pct": 20.0, "checkpoint_uri": uri}), ("progress", {"progress_pct": 30.0})
    )
    assert state.last_checkpoint_uri == uri

    lost = requeue_off_lost_node(state, "dc-fr", 31.0, NOW_MS)
    assert lost.state is not None and lost.state.state is WorkloadState.QUEUED and lost.state.node_id is None
    assert lost.state.resume_from == uri and lost.release == ["dc-fr"] and lost.queued is True
    decision = lost.emits[0].record
    assert decision.type == "queued" and decision.from_node_id == "dc-fr"
    assert "presumed lost" in decision.reason and f"resume from its last checkpoint {uri}" in decision.reason
    queued = lost.emits[1].record
    assert queued.type is EventKind.QUEUED and handle_workload_event(queued, lost.state, [], {}, S).state is None

    # the router's normal placement, elsewhere, by a resume
    nodes = [node_view("dc-fr", "FR"), node_view("dc-de", "DE")]  # not back onto the lost node, even if it looks fresh
    placed = handle_workload_event(workload_event("retry"), lost.state, nodes, ZONES, S)
    command = next(e.record for e in placed.emits if isinstance(e.record, NodeCommand))
    assert (command.action, command.node_id, command.checkpoint_uri) == (NodeAction.RESUME, "dc-de", uri)
    assert placed.state is not None
    resumed = handle_workload_event(workload_event("resumed", node_id="dc-de"), placed.state, [], {}, S)
    assert resumed.state is not None and resumed.state.state is WorkloadState.RUNNING
    assert resumed.state.node_id == "dc-de" and resumed.state.resume_from is None and resumed.running_on is not None

    # the old node comes back: it is told to stop the workload, once
    stops, forgotten = stop_on_return("dc-fr", [resumed.state], NOW_MS + 90_000)
    assert [(c.action, c.node_id, c.workload_id) for c in stops] == [(NodeAction.STOP, "dc-fr", "w1")]
    assert stop_on_return("dc-fr", forgotten, NOW_MS + 91_000) == ([], [])
    assert stop_on_return("dc-de", [resumed.state], NOW_MS) == ([], [])


def test_without_a_checkpoint_it_starts_from_scratch_and_says_so():
    state = running_on_fr(("progress", {"progress_pct": 40.0}))
    lost = requeue_off_lost_node(state, "dc-fr", 45.0, NOW_MS)
    assert lost.state is not None and lost.state.resume_from is None and lost.state.progress_pct == 0.0
    assert "from scratch: it reported no checkpoint" in lost.emits[0].record.reason
    placed = handle_workload_event(workload_event("retry"), lost.state, [node_view("dc-de", "DE")], ZONES, S)
    command = next(e.record for e in placed.emits if isinstance(e.record, NodeCommand))
    assert (command.action, command.node_id, command.checkpoint_uri) == (NodeAction.START, "dc-de", None)


def test_only_a_workload_on_that_node_and_not_moving_is_re_queued():
    state = running_on_fr()
    assert requeue_off_lost_node(state, "dc-de", 60.0, NOW_MS).state is None
    done = handle_workload_event(workload_event("completed", node_id="dc-fr"), state, [], {}, S).state
    assert done is not None and requeue_off_lost_node(done, "dc-fr", 60.0, NOW_MS).state is None
