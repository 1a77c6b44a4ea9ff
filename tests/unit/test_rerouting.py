"""Which running workloads a grid, node or capacity change makes worth re-scoring."""

from __future__ import annotations

from tests.builders import running_entry, zone_view
from toogreen.domain.rerouting import workloads_on_node, workloads_to_rescore, workloads_to_rescore_on_capacity
from toogreen.settings import MigrationSettings

S = MigrationSettings()
NOW = 10_000_000
RECENT = NOW - 1  # re-scored a moment ago


def test_a_zone_change_rescored_its_own_workloads_and_those_it_could_clean_up():
    running = {
        "here": running_entry("n1", "FR", 300.0),
        "dirty-elsewhere": running_entry("n2", "DE", 500.0),
        "clean-elsewhere": running_entry("n3", "ES", 55.0),
    }
    # FR at 50 g: its own workload, and DE's (50 ≤ 500 × (1 - min_gain)); ES's 55 g is not enough cleaner
    assert workloads_to_rescore(zone_view("FR", 50.0), running, NOW, S) == ["dirty-elsewhere", "here"]


def test_a_zone_in_surplus_draws_every_workload():
    running = {"a": running_entry("n1", "DE", 10.0), "b": running_entry("n2", "ES", 10.0)}
    assert workloads_to_rescore(zone_view("FR", 400.0, surplus=True), running, NOW, S) == ["a", "b"]
    assert workloads_to_rescore(zone_view("FR", 400.0), running, NOW, S) == []


def test_a_workload_is_rescored_at_most_once_per_interval():
    running = {"just-now": running_entry("n1", "FR", last_rescore_ms=RECENT), "long-ago": running_entry("n2", "FR")}
    assert workloads_to_rescore(zone_view("FR"), running, NOW, S) == ["long-ago"]
    assert workloads_to_rescore_on_capacity("n9", running, NOW, S) == ["long-ago"]


def test_a_node_change_finds_its_workloads_and_freed_capacity_the_others():
    running = {"b": running_entry("n1"), "a": running_entry("n1"), "c": running_entry("n2")}
    assert workloads_on_node("n1", running) == ["a", "b"]
    assert workloads_to_rescore_on_capacity("n1", running, NOW, S) == ["c"]
