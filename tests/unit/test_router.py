"""The router's handling of workload events: routing a submission, following the lifecycle, idempotency."""

from toogreen.domain.router import decision_id_for, handle_workload_event, queue_entry, retry_order
from toogreen.domain.views import NodeView, ZoneView
from toogreen.settings import Settings
from toogreen.submission import submission_event
from toogreen.topics import NODE_COMMANDS, ROUTING_DECISIONS, WORKLOAD_EVENTS

NOW = 1_800_000_000_000
S = Settings()
ZONES = {"FR": ZoneView("FR", 50.0, 80.0, 40.0, False, 0.0, NOW - 60_000, NOW)}
NODES = [NodeView("dc-1", "datacenter", "H100", "FR", 1.2, 81_920, 81_920, 5.0, "healthy", NOW)]
REQUEST = {"name": "job", "workload_type": "training", "image": "img", "vram_mb": 16_000, "expected_hours": 1.0}


def _event(kind, wid="w1", **extra):
    return {"event_id": f"{wid}:{kind}:{extra.pop('n', 0)}", "workload_id": wid, "ts_ms": NOW, "type": kind,
            "node_id": extra.get("node_id"), "progress_pct": None, "checkpoint_uri": None, "decision_id": None,
            "reason": None, "request": None}  # fmt: skip


def test_submission_is_routed_with_a_decision_an_event_and_a_start_command():
    sub = submission_event(REQUEST, "w1", NOW)
    result = handle_workload_event(sub, None, NODES, ZONES, S)
    topics = [e.topic for e in result.emits]
    assert topics == [ROUTING_DECISIONS.name, WORKLOAD_EVENTS.name, NODE_COMMANDS.name]
    decision, routed, command = (e.record for e in result.emits)
    assert decision["decision_id"] == decision_id_for("w1", 1, "initial")
    assert decision["chosen_node_id"] == "dc-1" and decision["alternatives"][0]["eligible"]
    assert decision["grid_windows"][0]["zone"] == "FR"
    assert routed["type"] == "routed" and command["action"] == "start" and command["vram_mb"] == 16_000
    assert result.state["state"] == "routed" and result.reserve == [("dc-1", {"vram_mb": 16_000, "mig_profile": None})]


def test_a_workload_no_node_could_ever_hold_is_rejected_with_the_reason():
    big = submission_event({**REQUEST, "vram_mb": 200_000}, "w2", NOW)
    result = handle_workload_event(big, None, NODES, ZONES, S)
    decision, rejected = (e.record for e in result.emits)
    assert decision["type"] == "rejected" and "no node has 200000 MiB" in decision["reason"]
    assert rejected["type"] == "rejected" and result.state["state"] == "rejected"


def test_own_echo_and_redeliveries_are_ignored():
    sub = submission_event(REQUEST, "w1", NOW)
    state = handle_workload_event(sub, None, NODES, ZONES, S).state
    routed_echo = {**_event("routed"), "event_id": f"{decision_id_for('w1', 1, 'initial')}:routed"}
    assert handle_workload_event(routed_echo, state, [], {}, S).state is None
    assert handle_workload_event(sub, state, NODES, ZONES, S).state is None  # the same submission again


def test_illegal_event_is_rejected_and_terminal_releases_the_node():
    state = handle_workload_event(submission_event(REQUEST, "w1", NOW), None, NODES, ZONES, S).state
    illegal = handle_workload_event(_event("completed"), state, [], {}, S)
    assert "illegal" in illegal.rejected_reason and illegal.state is None
    running = handle_workload_event(_event("started", node_id="dc-1"), state, [], {}, S).state
    done = handle_workload_event(_event("completed", node_id="dc-1"), running, [], {}, S)
    assert done.state["state"] == "completed" and done.release == ["dc-1"] and done.settle


def test_the_queue_is_retried_most_urgent_first():
    queue = {
        "late-deadline": {"queued_ms": 1, "deadline_ms": 9_000},
        "no-deadline-old": {"queued_ms": 0, "deadline_ms": None},
        "early-deadline": {"queued_ms": 5, "deadline_ms": 3_000},
        "no-deadline-new": {"queued_ms": 7, "deadline_ms": None},
        "early-deadline-b": {"queued_ms": 5, "deadline_ms": 3_000},
    }
    assert retry_order(queue) == ["early-deadline", "early-deadline-b", "late-deadline", "no-deadline-old",
                                  "no-deadline-new"]  # fmt: skip
    state = {"request": {"deadline_ms": 42}}
    assert queue_entry(state, 7) == {"queued_ms": 7, "deadline_ms": 42}
