"""A node's state from its registrations and telemetry, and the view routing takes of it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from tests.builders import NOW_MS, registration, telemetry
from toogreen.domain.kinds import NodeHealth, NodeKind
from toogreen.domain.node_state import UTIL_SMOOTHING, apply_registration, apply_telemetry, merge_view, to_node_view
from toogreen.domain.records import Hold, NodeState


def test_a_node_is_routable_only_once_it_has_registered_and_reported():
    assert to_node_view(apply_registration(None, registration()), {}) is None
    assert to_node_view(apply_telemetry(None, telemetry()), {}) is None
    view = to_node_view(apply_telemetry(apply_registration(None, registration()), telemetry()), {})
    assert view is not None and view.node_type is NodeKind.DATACENTER and view.health is NodeHealth.HEALTHY
    assert view.vram_free_mb == 81_920 - 1_000 and view.util_pct == 50.0 and view.max_power_w == 700.0


def test_a_re_registration_keeps_the_telemetry_and_an_older_sample_changes_nothing():
    state = apply_telemetry(apply_registration(None, registration()), telemetry(ts_ms=NOW_MS))
    moved = apply_registration(state, registration(zone="DE"))
    assert moved.telemetry == state.telemetry and moved.registration is not None and moved.registration.zone == "DE"
    assert apply_telemetry(state, telemetry(ts_ms=NOW_MS, util=99.0)) is state  # not newer: ignored
    assert apply_telemetry(state, telemetry(ts_ms=NOW_MS - 1, util=99.0)) is state


def test_utilisation_is_smoothed_and_the_newest_sample_kept():
    state = apply_telemetry(None, telemetry(ts_ms=1, util=0.0))
    state = apply_telemetry(state, telemetry(ts_ms=2, util=100.0, health="degraded", energy_j=5.0))
    assert state.telemetry is not None
    assert state.telemetry.util_rolling_pct == pytest.approx(100.0 * UTIL_SMOOTHING)
    assert (state.telemetry.util_pct, state.telemetry.health, state.telemetry.energy_j) == (100.0, "degraded", 5.0)


def test_the_routers_holds_cover_memory_the_node_has_not_reported_yet_and_count_mig_slices():
    state = apply_telemetry(apply_registration(None, registration(mig_capable=True)), telemetry(mem_used_mb=1_000))
    holds = {"a": Hold(vram_mb=40_000), "b": Hold(vram_mb=10_000, mig_profile="1g.10gb"),
             "c": Hold(vram_mb=10_000, mig_profile="1g.10gb")}  # fmt: skip
    view = to_node_view(state, holds)
    assert view is not None and view.vram_free_mb == 81_920 - 60_000
    assert view.whole_tenants == 1 and view.mig_used == (("1g.10gb", 2),) and view.mig_capable


def test_a_state_in_its_wire_form_gives_the_same_view():
    state = apply_telemetry(apply_registration(None, registration()), telemetry())
    holds = {"a": Hold(vram_mb=2_000)}
    wire_holds = {w: h.to_wire() for w, h in holds.items()}
    assert to_node_view(state.to_wire(), wire_holds) == to_node_view(state, holds)
    assert NodeState.from_wire(state.to_wire()) == state


@given(st.lists(st.floats(0, 100), min_size=1, max_size=30))
def test_the_rolling_utilisation_stays_within_the_samples(utils):
    state = None
    for i, util in enumerate(utils):
        state = apply_telemetry(state, telemetry(ts_ms=i + 1, util=util))
    assert state is not None and state.telemetry is not None
    assert min(utils) - 1e-3 <= state.telemetry.util_rolling_pct <= max(utils) + 1e-3


@given(held_ms=st.integers(0, 10**6), incoming_ms=st.integers(0, 10**6), drained=st.booleans())
def test_the_owners_view_of_a_node_never_takes_older_telemetry(held_ms: int, incoming_ms: int, drained: bool):
    """A replayed view (older telemetry) keeps the telemetry held; the rest of the view (here a drain) is taken."""
    held = apply_telemetry(apply_registration(None, registration()), telemetry(ts_ms=held_ms + 1))
    incoming = apply_telemetry(apply_registration(None, registration()), telemetry(ts_ms=incoming_ms + 1))
    incoming = replace(incoming, drained=drained)
    merged = merge_view(held, incoming)
    assert merged.drained is drained
    assert merged.telemetry is not None
    assert merged.telemetry.last_seen_ms == max(held_ms, incoming_ms) + 1
    assert merge_view(None, incoming) is incoming
