"""The Faust ceiling, as a baseline: an agent that takes every event and does nothing with it."""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ.get("CEILING_APP_ID", "ceiling-bench"),
    broker=f"kafka://{os.environ['TOOGREEN_BROKER__BOOTSTRAP']}",
    store="memory://",
    broker_rebalance_timeout=4,
    broker_session_timeout=4,
    broker_heartbeat_interval=1,
    web_enabled=False,
    topic_partitions=int(os.environ.get("TOOGREEN_BROKER__TOPIC_PARTITIONS", "4")),
)
topics = app.topic(
    "grid.readings", "node.telemetry", key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)


@app.agent(topics)
async def nothing(stream):
    async for _event in stream.events():
        pass
