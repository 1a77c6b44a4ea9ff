"""The router's books: one place applies a router result to holds, running shares and entries, and the queue."""

from __future__ import annotations

from tests.builders import NOW_MS, node_view, submission, workload_event, zone_view
from toogreen.domain.placement import Placement
from toogreen.domain.records import QueueEntry, RunningShare
from toogreen.domain.router import RouterResult, handle_workload_event
from toogreen.domain.scoring import node_carbon
from toogreen.settings import Settings

S = Settings()
ZONES = {"FR": zone_view("FR", 50.0)}
NODES = [node_view("dc-1", "FR")]


def _books() -> Placement:
    return Placement(workloads={}, holds={}, shares={}, running={}, queue={})


def test_a_placement_reserves_a_start_records_where_and_completion_releases_it_all():
    books = _books()

    def views():
        return NODES, ZONES

    def apply(event, now_ms=NOW_MS):
        result = handle_workload_event(event, books.workloads.get("w1"), NODES, ZONES, S)
        return books.apply("w1", event.ts_ms, result, views, now_ms)

    assert apply(submission()) == {"dc-1"}
    assert books.holds.keys() == {"dc-1"} and books.holds["dc-1"].keys() == {"w1"} and books.queue == {}
    assert books.holds["dc-1"]["w1"].vram_mb == 16_000 and books.holds["dc-1"]["w1"].mig_profile is None
    assert apply(workload_event("started", node_id="dc-1", ts_ms=NOW_MS + 5)) == set()
    price = books.workloads["w1"].price_eur_per_gpu_hour
    assert price is not None  # what it pays there, for its interim billing records
    assert books.shares == {"dc-1": {"w1": RunningShare(fraction=0.0, since_ms=NOW_MS + 5,
                                                        price_eur_per_gpu_hour=price)}}  # the whole GPU  # fmt: skip
    entry = books.running["w1"]
    assert entry.node_id == "dc-1" and entry.carbon_gco2_per_kwh == node_carbon(NODES[0], ZONES["FR"])
    assert apply(workload_event("completed", node_id="dc-1", ts_ms=NOW_MS + 60_000)) == {"dc-1"}
    assert books.holds == {"dc-1": {}} and books.running == {}
    # its energy up to the stop is its own: the share stays, stopped, until the node's partition hands it over
    assert books.shares["dc-1"]["w1"].until_ms == NOW_MS + 60_000
    books.handed_over("w1", "dc-1")
    assert books.shares == {"dc-1": {}}
    assert books.workloads["w1"].state == "completed"


def test_a_queued_workload_keeps_its_place_until_it_leaves_the_queue():
    books = _books()
    books.apply("w1", 5, RouterResult(state=None, queued=True), lambda: ([], {}), 0)
    assert books.queue == {}  # no state, nothing to queue
    books.workloads["w1"] = handle_workload_event(submission(), None, [], ZONES, S).state  # type: ignore[assignment]
    books.apply("w1", 5, RouterResult(state=None, queued=True), lambda: ([], {}), 0)
    books.apply("w1", 9, RouterResult(state=None, queued=True), lambda: ([], {}), 0)  # a retry: still waiting
    assert books.queue == {"w1": QueueEntry(queued_ms=5, deadline_ms=None)}
    books.apply("w1", 9, RouterResult(state=None, queued=False), lambda: ([], {}), 0)
    assert books.queue == {}


def test_releasing_what_is_not_held_changes_nothing_and_an_unknown_node_gets_no_running_entry():
    books = _books()
    assert books.release("dc-1", "w1") is False and books.holds == {}
    books.start("w1", "dc-9", RunningShare(fraction=0.5, since_ms=1), books._entry("dc-9", lambda: (NODES, ZONES), 0))
    assert books.shares == {"dc-9": {"w1": RunningShare(fraction=0.5, since_ms=1)}} and books.running == {}
    books.stop("w1", "dc-9", 7)
    assert books.shares == {"dc-9": {"w1": RunningShare(fraction=0.5, since_ms=1, until_ms=7)}}
    books.stop("w1", "dc-9", 9)  # stopped once: the first stop counts
    assert books.shares["dc-9"]["w1"].until_ms == 7
    books.start("w1", "dc-9", RunningShare(fraction=0.5, since_ms=20), None)  # back there: a hand-over keeps it
    books.handed_over("w1", "dc-9")
    assert books.shares == {"dc-9": {"w1": RunningShare(fraction=0.5, since_ms=20)}}


def test_a_hand_over_is_taken_once_while_the_share_it_ends_is_on_the_node():
    books = _books()
    books.start("w1", "n1", RunningShare(fraction=0.0, since_ms=0), None)
    books.stop("w1", "n1", 5_000)
    # the first hand-over: the stopped share is still there, whatever the owner holds
    assert not books.is_repeat_hand_over("w1", "n1", held_from_node=False, settled=False)
    books.handed_over("w1", "n1")
    # the node's partition, not yet told, hands the same share over again: not taken
    assert books.is_repeat_hand_over("w1", "n1", held_from_node=True, settled=False)
    assert books.is_repeat_hand_over("w1", "n1", held_from_node=False, settled=True)
    # nothing of it was ever handed over and it is not settled (the owner's own close after a wait): taken
    assert not books.is_repeat_hand_over("w1", "n1", held_from_node=False, settled=False)
    # it runs on the node again: its next hand-over is a new one
    books.start("w1", "n1", RunningShare(fraction=0.0, since_ms=9_000), None)
    assert not books.is_repeat_hand_over("w1", "n1", held_from_node=True, settled=False)
