"""What makes ``/healthz`` a 503: the pure judgement of the monitor's figures."""

from toogreen.kafka.health import Observation, judge
from toogreen.settings import Settings

SETTINGS = Settings()
START = 1_800_000_000_000
LATER = START + 60_000  # past the start-up grace


def sink(**changes):
    return {"alive": True, "broker_reachable": True, "lifetime_id": "L1", "lag_records": 0,
            "last_batch_ms": LATER - 1000, "restarts": 0, "last_error": None, **changes}  # fmt: skip


def healthy(**changes) -> Observation:
    fields = {"at_ms": LATER, "broker_ok": True, "lifetime_id": "L1", "worker_lag_records": 0,
              "worker_committed_total": 100, "worker_last_progress_ms": LATER, "sink": sink()}  # fmt: skip
    return Observation(**{**fields, **changes})


def test_all_well_is_healthy():
    verdict = judge(healthy(), SETTINGS, START)
    assert verdict.ok and verdict.problems == []
    assert verdict.checks["sink"]["last_batch_age_s"] == 1.0


def test_no_broker_is_degraded_at_once():
    verdict = judge(healthy(broker_ok=False, broker_error="connection refused"), SETTINGS, LATER - 1000)
    assert not verdict.ok and verdict.problems[0].startswith("broker: no answer")


def test_a_worker_that_commits_nothing_while_records_wait_is_degraded():
    stalled = healthy(worker_lag_records=40, worker_last_progress_ms=LATER - 11_000)
    assert "no live worker" in judge(stalled, SETTINGS, START).problems[0]
    # the same figures during the start-up grace, or with nothing waiting, are fine
    assert judge(stalled, SETTINGS, LATER - 5000).ok
    assert judge(healthy(worker_lag_records=0, worker_last_progress_ms=LATER - 60_000), SETTINGS, START).ok


def test_a_worker_far_behind_is_degraded():
    verdict = judge(healthy(worker_lag_records=SETTINGS.health.max_lag_records + 1), SETTINGS, START)
    assert "records behind" in verdict.problems[0]


def test_a_dead_stuck_or_stale_sink_is_degraded():
    dead = judge(healthy(sink=sink(alive=False, last_error="IOException: disk full")), SETTINGS, START)
    assert dead.problems == ["sink: its thread is not running (last error: IOException: disk full)"]
    stuck = judge(healthy(sink=sink(lag_records=500, last_batch_ms=LATER - 30_000)), SETTINGS, START)
    assert stuck.problems == ["sink: 500 records waiting, last batch 30 s ago"]
    old_log = judge(healthy(lifetime_id="L2"), SETTINGS, START)
    assert old_log.problems == ["sink: still on log lifetime L1, the broker's is L2"]


def test_an_api_without_a_sink_judges_the_rest():
    assert judge(healthy(sink=None), SETTINGS, START).ok


def test_records_waiting_in_a_log_the_worker_has_committed_nothing_in_is_degraded_at_once():
    # right after a new broker: the worker restarts and recovers while producers already write
    fresh = healthy(worker_lag_records=120, worker_committed_any=False)
    verdict = judge(fresh, SETTINGS, LATER - 1000)  # even during the start-up grace
    assert verdict.problems == [
        "worker: 120 records waiting and nothing committed in this log yet (no worker consuming: not started, "
        "or still recovering)"
    ]
    assert judge(healthy(worker_lag_records=0, worker_committed_any=False), SETTINGS, LATER - 1000).ok
