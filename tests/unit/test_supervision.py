"""Supervision without a broker: the supervisor restarts a child that died, with growing back-off and a log line;
the DuckDB sink thread restarts its loop and then ends its process loudly; the fleet agent's state survives it."""

import threading
import time

import pytest

from connectors.fleet_sim import SimulatedFleet
from connectors.runners import FleetStateFile
from sinks.duckdb_store import Store
from sinks.kafka_sink import BrokerUnavailable, DuckDBSink
from toogreen.app.demo import Stack
from toogreen.lifespan import watch_lifetime
from toogreen.settings import Settings, SupervisionSettings

T0 = 1_800_000_000_000
START = {"node_id": "dc-fr-h100-1", "workload_id": "w1", "action": "start", "vram_mb": 20_000, "expected_hours": 2.0,
         "checkpoint_uri": None}  # fmt: skip


def fast_settings(tmp_path, **supervision) -> Settings:
    return Settings(
        supervision=SupervisionSettings(restart_backoff_min_s=0.05, restart_backoff_max_s=0.2, **supervision),
        broker={"bootstrap": "127.0.0.1:1"},  # nothing listens there
    )


def test_a_child_that_dies_is_restarted_with_growing_back_off_and_a_log_line(tmp_path):
    stack = Stack(fast_settings(tmp_path), tmp_path, supervised=True)
    stack.spawn("short-lived", "--help")  # exits at once, every time
    deadline = time.monotonic() + 30
    child = stack.managed[0]
    backoffs = []
    while child.restarts < 3 and time.monotonic() < deadline:
        stack.supervise()
        if child.restart_at is not None and (not backoffs or backoffs[-1] != child.backoff_s):
            backoffs.append(child.backoff_s)
        time.sleep(0.01)
    stack.stop()
    assert child.restarts == 3
    assert backoffs[:3] == [0.05, 0.1, 0.2]
    log = (tmp_path / "supervisor.log").read_text()
    assert log.count("short-lived exited with code 0") == 3 and log.count("short-lived restarted") == 3


def test_an_unsupervised_stack_fails_at_once(tmp_path):
    stack = Stack(fast_settings(tmp_path), tmp_path)
    stack.spawn("short-lived", "--help").wait()
    with pytest.raises(RuntimeError, match="short-lived exited with code 0"):
        stack.check_alive()


def test_a_retired_child_is_not_restarted(tmp_path):
    stack = Stack(fast_settings(tmp_path), tmp_path, supervised=True)
    stack.spawn("sleeper", "demo", "--help")
    stack.retire("sleeper")
    stack.supervise()
    assert stack.managed == []


def test_the_sink_restarts_its_loop_then_ends_its_process_loudly(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    fatal: list[BaseException] = []
    sink = DuckDBSink(fast_settings(tmp_path, sink_max_failures=3), store, on_fatal=fatal.append)
    calls = []

    def broken() -> None:
        calls.append(time.monotonic())
        raise RuntimeError("disk on fire")

    sink._consume_until_stopped_or_moved = broken
    sink.start_thread()
    sink.join(10)
    store.close()
    assert not sink.alive
    assert len(calls) == 3 and sink.restarts == 3 and sink.failures_in_a_row == 3
    assert [str(e) for e in fatal] == ["disk on fire"]
    assert sink.last_error == "RuntimeError: disk on fire"


def test_a_broker_that_does_not_answer_is_waited_for_not_counted_as_a_failure(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    fatal: list[BaseException] = []
    sink = DuckDBSink(fast_settings(tmp_path, sink_max_failures=2), store, on_fatal=fatal.append)
    calls = []

    def unreachable() -> None:
        calls.append(1)
        raise BrokerUnavailable("connection refused")

    sink._consume_until_stopped_or_moved = unreachable
    sink.start_thread()
    time.sleep(1.5)
    sink.stop()
    sink.join(5)
    store.close()
    assert len(calls) >= 2 and fatal == [] and sink.failures_in_a_row == 0 and not sink.broker_reachable


def test_the_fleet_agent_carries_on_after_a_restart_and_obeys_a_command_once(tmp_path):
    state = FleetStateFile(tmp_path / "fleet.json", "L1")
    fleet = SimulatedFleet(seed=1, hours_per_second=1.0)
    assert [e["type"] for e in fleet.apply_command(START, T0)] == ["started"]
    fleet.tick(T0 + 500, 0.5)
    state.save(fleet, {0: 42})

    again = SimulatedFleet(seed=1, hours_per_second=1.0)
    saved, positions = state.load()
    again.restore(saved)
    assert positions == {0: 42}
    assert again.apply_command(START, T0 + 600) == []  # read again after the restart: it runs already
    _telemetry, events = again.tick(T0 + 1500, 1.0)
    assert [(e["type"], e["progress_pct"]) for e in events] == [("progress", 75.0)]  # 25 % before, 50 % since


def test_fleet_state_of_another_log_lifetime_is_not_restored(tmp_path):
    fleet = SimulatedFleet(seed=1, hours_per_second=1.0)
    fleet.apply_command(START, T0)
    FleetStateFile(tmp_path / "fleet.json", "L1").save(fleet, {0: 42})
    assert FleetStateFile(tmp_path / "fleet.json", "L2").load() == (None, {})


def test_the_lifetime_watch_reports_a_new_log_and_ignores_an_unreachable_broker():
    answers = iter(["L1", "down", "L1", "L2"])
    changed = threading.Event()
    seen: list[tuple[str, str]] = []

    def current() -> str:
        value = next(answers)
        if value == "down":
            raise ConnectionError("no broker")
        return value

    def on_change(old: str, new: str) -> None:
        seen.append((old, new))
        changed.set()

    watch_lifetime(current, "L1", 0.01, on_change)
    assert changed.wait(5)
    assert seen == [("L1", "L2")]
