"""The router's handling of workload events: routing a submission, following the lifecycle, idempotency."""

from msgspec.structs import replace

from tests.builders import NOW_MS, REQUEST, node_view, submission, workload_event, zone_view
from toogreen.domain.lifecycle import WorkloadState
from toogreen.domain.records import (
    Hold,
    NodeAction,
    NodeCommand,
    QueueEntry,
    RoutingDecision,
    Workload,
    WorkloadEvent,
    WorkloadRequest,
)
from toogreen.domain.router import decision_id_for, handle_workload_event, queue_entry, retry_order
from toogreen.settings import Settings
from toogreen.topics import NODE_COMMANDS, ROUTING_DECISIONS, WORKLOAD_EVENTS

S = Settings()
ZONES = {"FR": zone_view("FR", 50.0)}
NODES = [node_view("dc-1", "FR")]


def test_submission_is_routed_with_a_decision_an_event_and_a_start_command():
    result = handle_workload_event(submission(), None, NODES, ZONES, S)
    topics = [e.topic for e in result.emits]
    assert topics == [ROUTING_DECISIONS.name, WORKLOAD_EVENTS.name, NODE_COMMANDS.name]
    decision, routed, command = (e.record for e in result.emits)
    assert isinstance(decision, RoutingDecision) and isinstance(routed, WorkloadEvent)
    assert isinstance(command, NodeCommand)
    assert decision.decision_id == decision_id_for("w1", 1, "initial")
    assert decision.chosen_node_id == "dc-1" and decision.alternatives[0].eligible
    assert decision.grid_windows[0].zone == "FR"
    assert routed.type == "routed" and command.action is NodeAction.START and command.vram_mb == 16_000
    assert result.state is not None and result.state.state is WorkloadState.ROUTED
    sub = submission()
    assert sub.request is not None
    # held until it is expected to be done: the submission's time plus its expected hours
    end = sub.ts_ms + int(sub.request.expected_hours * 3_600_000)
    assert result.reserve == [("dc-1", Hold(vram_mb=16_000, mig_profile=None, expected_end_ms=end))]


def test_a_workload_no_node_could_ever_hold_is_rejected_with_the_reason():
    result = handle_workload_event(submission({**REQUEST, "vram_mb": 200_000}, "w2"), None, NODES, ZONES, S)
    decision, rejected = (e.record for e in result.emits)
    assert isinstance(decision, RoutingDecision) and isinstance(rejected, WorkloadEvent)
    assert decision.type == "rejected" and "no node has 200000 MiB" in decision.reason
    assert rejected.type == "rejected" and result.state is not None and result.state.state == "rejected"


def test_own_echo_and_redeliveries_are_ignored():
    sub = submission()
    state = handle_workload_event(sub, None, NODES, ZONES, S).state
    routed_echo = WorkloadEvent.from_wire(
        {**workload_event("routed").to_wire(), "event_id": f"{decision_id_for('w1', 1, 'initial')}:routed"}
    )
    assert handle_workload_event(routed_echo, state, [], {}, S).state is None
    assert handle_workload_event(sub, state, NODES, ZONES, S).state is None  # the same submission again


def test_illegal_event_is_rejected_and_terminal_releases_the_node():
    state = handle_workload_event(submission(), None, NODES, ZONES, S).state
    illegal = handle_workload_event(workload_event("completed"), state, [], {}, S)
    assert illegal.rejected_reason and "illegal" in illegal.rejected_reason and illegal.state is None
    running = handle_workload_event(workload_event("started", node_id="dc-1"), state, [], {}, S).state
    done = handle_workload_event(workload_event("completed", node_id="dc-1"), running, [], {}, S)
    assert done.state is not None and done.state.state == "completed" and done.release == ["dc-1"] and done.settle


def test_the_queue_is_retried_green_only_first_then_most_urgent_first():
    queue = {
        "late-deadline": QueueEntry(queued_ms=1, deadline_ms=9_000),
        "no-deadline-old": QueueEntry(queued_ms=0, deadline_ms=None),
        "early-deadline": QueueEntry(queued_ms=5, deadline_ms=3_000),
        "no-deadline-new": QueueEntry(queued_ms=7, deadline_ms=None),
        "early-deadline-b": QueueEntry(queued_ms=5, deadline_ms=3_000),
        "green-late": QueueEntry(queued_ms=9, deadline_ms=20_000, green_only=True),
        "green-none": QueueEntry(queued_ms=8, deadline_ms=None, green_only=True),
    }
    assert retry_order(queue) == ["green-late", "green-none", "early-deadline", "early-deadline-b", "late-deadline",
                                  "no-deadline-old", "no-deadline-new"]  # fmt: skip
    request = WorkloadRequest(name="j", workload_type="training", vram_mb=1, expected_hours=1.0, deadline_ms=42)
    state = Workload(workload_id="w", state=WorkloadState.QUEUED, request=request)
    assert queue_entry(state, 7) == QueueEntry(queued_ms=7, deadline_ms=42)
    green = Workload(workload_id="g", state=WorkloadState.QUEUED, request=replace(request, green_only=True))
    assert queue_entry(green, 7) == QueueEntry(queued_ms=7, deadline_ms=42, green_only=True)


def test_a_state_survives_its_wire_form():
    state = handle_workload_event(submission(ts_ms=NOW_MS), None, NODES, ZONES, S).state
    assert state is not None and Workload.from_wire(state.to_wire()) == state


def test_a_move_may_go_to_another_gpu_model_unless_the_settings_keep_it():
    """Placement takes the expected hours to hold on any GPU the workload fits, so a move may go to another model:
    H100 work in a dirty zone moves to a free A100 in a clean one; with ``keep_gpu_model`` it stays (no H100 free)."""
    zones = {"FR": zone_view("FR", 50.0), "DE": zone_view("DE", 400.0)}
    h100_de = node_view("dc-de-h100", "DE", max_power_w=700.0)
    state = handle_workload_event(submission(), None, [h100_de], zones, S).state
    started = workload_event("started", node_id="dc-de-h100")
    state = handle_workload_event(started, state, [h100_de], zones, S).state
    assert state is not None and state.state is WorkloadState.RUNNING
    fleet = [node_view("dc-de-h100", "DE", max_power_w=700.0, vram_free_mb=0, whole_tenants=1),
             node_view("dc-fr-a100", "FR", gpu_model="A100", max_power_w=400.0)]  # fmt: skip
    rescore = workload_event("rescore", ts_ms=NOW_MS + 30_000)
    moved = handle_workload_event(rescore, state, fleet, zones, S)
    commands = [e.record for e in moved.emits if isinstance(e.record, NodeCommand)]
    assert [(c.node_id, c.action) for c in commands] == [("dc-de-h100", NodeAction.CHECKPOINT)]
    assert moved.state is not None and moved.state.pending_move is not None
    assert moved.state.pending_move.target_node == "dc-fr-a100"
    keep = S.model_copy(update={"migration": S.migration.model_copy(update={"keep_gpu_model": True})})
    stays = handle_workload_event(rescore, state, fleet, zones, keep)
    assert not any(isinstance(e.record, NodeCommand) for e in stays.emits)
    assert stays.state is None or stays.state.pending_move is None
