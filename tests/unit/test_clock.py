"""The one clock: the system's for the agents, a fixed one for tests."""

from __future__ import annotations

import time

from toogreen.domain.clock import SYSTEM_CLOCK, FixedClock
from toogreen.submission import submission_event


def test_the_system_clock_is_wall_time_and_a_fixed_one_moves_only_when_told():
    assert abs(SYSTEM_CLOCK.now_ms() - time.time() * 1000) < 1_000
    clock = FixedClock(1_000)
    assert (clock.now_ms(), clock.monotonic_s()) == (1_000, 1.0)
    clock.advance(500)
    assert clock.now_ms() == 1_500


def test_a_submission_is_stamped_by_the_clock_it_is_given():
    request = {"name": "j", "workload_type": "training", "vram_mb": 1, "expected_hours": 1.0}
    assert submission_event(request, "w", clock=FixedClock(42))["ts_ms"] == 42
