"""Agent tests see each event's effects at once: every event is a run of its own (no coalescing delay), and its end
is waited for (its effects are sent before the next event is taken)."""

import os

os.environ.setdefault("TOOGREEN_WORKER__COALESCE_MAX_DELAY_MS", "0")
os.environ.setdefault("TOOGREEN_WORKER__ROUTER_COALESCE_MAX_DELAY_MS", "0")
os.environ.setdefault("TOOGREEN_CHECKPOINT__MAX_RUNS_IN_FLIGHT", "0")  # a run's effects are sent before the next event

from collections.abc import Iterator
from typing import Any

import pytest
from faust.agents.agent import AgentTestWrapper

# Each test context numbers its events from offset 0, as if every context read a fresh log; a stamped table value
# (streams/checkpoint.py) would then take them for redeliveries. A broker's offsets only grow: so do these, per
# topic-partition, across contexts and tests. A test rewinds a partition (``LOG_END[tp] = n``) to redeliver.
LOG_END: dict[tuple[str, int], int] = {}


@pytest.fixture(autouse=True)
def offsets_as_a_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[tuple[str, int], int]]:
    original = AgentTestWrapper.to_message

    def to_message(self: AgentTestWrapper, key: Any, value: Any, **kwargs: Any) -> Any:
        message = original(self, key, value, **kwargs)
        tp = (message.topic, message.partition)
        message.offset = LOG_END.get(tp, 0)
        LOG_END[tp] = message.offset + 1
        return message

    monkeypatch.setattr(AgentTestWrapper, "to_message", to_message)
    yield LOG_END


@pytest.fixture(autouse=True)
def changelog_records_are_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    """No broker here: a changelog record the checkpoint publishes is queued as Faust's own write would queue it."""
    from streams import faust_private

    async def queue(table: Any, partition: int, key: Any, value: Any) -> Any:
        return faust_private.send_changelog(table, partition, key, value)

    monkeypatch.setattr(faust_private, "publish_changelog", queue)
