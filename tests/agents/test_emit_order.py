"""A routing result's records leave in log order: a node command is sent only once the workload events listed
before it are delivered, so a node's report can never land in ``workload.events`` before the decision that caused
it (the sink, and any new owner, read that log in order)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams import agents
from toogreen.domain.router import Emit
from toogreen.topics import NODE_COMMANDS, ROUTING_DECISIONS, WORKLOAD_EVENTS


class HeldDeliveries:
    """An emitter whose deliveries complete only when the test says so."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.pending: dict[str, asyncio.Future[None]] = {}

    async def emit(self, topic: str, key: str, record: Any) -> asyncio.Future[None]:
        self.sent.append(topic)
        self.pending[topic] = asyncio.get_running_loop().create_future()
        return self.pending[topic]


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_node_command_waits_for_the_workload_event_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    held = HeldDeliveries()
    monkeypatch.setattr(agents, "emitter", held)
    emits = [
        Emit(ROUTING_DECISIONS.name, "wl-1", {}),
        Emit(WORKLOAD_EVENTS.name, "wl-1", {}),
        Emit(NODE_COMMANDS.name, "node-a", {}),
    ]
    sending = asyncio.ensure_future(agents.emit_in_log_order(emits))
    await _settle()
    assert held.sent == [ROUTING_DECISIONS.name, WORKLOAD_EVENTS.name]  # the command waits
    held.pending[WORKLOAD_EVENTS.name].set_result(None)
    await asyncio.wait_for(sending, 1)
    assert held.sent == [ROUTING_DECISIONS.name, WORKLOAD_EVENTS.name, NODE_COMMANDS.name]
    # the decision's own delivery is not waited for: only the log the node reports to has an order to keep
    assert not held.pending[ROUTING_DECISIONS.name].done()


async def test_a_failed_delivery_is_logged_and_the_command_still_goes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the producer gave up on the event: a router that crashed here, or a command never sent, would strand the
    # workload; sending it anyway is what happened before the order was kept
    held = HeldDeliveries()
    monkeypatch.setattr(agents, "emitter", held)
    sending = asyncio.ensure_future(agents.emit_in_log_order(
        [Emit(WORKLOAD_EVENTS.name, "wl-1", {}), Emit(NODE_COMMANDS.name, "node-a", {})]
    ))  # fmt: skip
    await _settle()
    assert NODE_COMMANDS.name not in held.sent
    held.pending[WORKLOAD_EVENTS.name].set_exception(RuntimeError("delivery timed out"))
    await asyncio.wait_for(sending, 1)
    assert held.sent == [WORKLOAD_EVENTS.name, NODE_COMMANDS.name]
    assert "delivery timed out" in caplog.text
