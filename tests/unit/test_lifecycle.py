"""The workload state machine."""

import pytest

from toogreen.domain.lifecycle import TRANSITIONS, IllegalTransition, WorkloadState, next_state

HAPPY = ["submitted", "routed", "started", "progress", "checkpointed", "migrating", "resumed", "progress", "completed"]


def test_happy_path_with_a_move():
    state = None
    for event in HAPPY:
        state = next_state(state, event)
    assert state is WorkloadState.COMPLETED


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (None, "started"),
        (WorkloadState.SUBMITTED, "completed"),
        (WorkloadState.COMPLETED, "progress"),
        (WorkloadState.REJECTED, "routed"),
        (WorkloadState.RUNNING, "submitted"),
        (WorkloadState.RUNNING, "resumed"),
    ],
)
def test_illegal_events_are_refused_with_the_rule(state, event):
    with pytest.raises(IllegalTransition, match="illegal"):
        next_state(state, event)


def test_unknown_event_type():
    with pytest.raises(IllegalTransition, match="unknown"):
        next_state(None, "exploded")


def test_terminal_states_accept_nothing():
    for terminal in (WorkloadState.COMPLETED, WorkloadState.FAILED, WorkloadState.CANCELLED, WorkloadState.REJECTED):
        for event in TRANSITIONS:
            with pytest.raises(IllegalTransition):
                next_state(terminal, event)
