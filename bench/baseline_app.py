"""The throughput baselines, one Faust app: ``BASELINE=naive`` is the naive per-event pattern (one table write and
one awaited send per event); ``BASELINE=nothing`` takes every event and does nothing with it (Faust's ceiling)."""

from __future__ import annotations

import os

import faust

from toogreen.codec import decode

BASELINE = os.environ.get("BASELINE", "naive")

app = faust.App(
    os.environ.get("BASELINE_APP_ID", f"{BASELINE}-bench"),
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
out = app.topic("naive.out", key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
latest = app.Table("naive-latest", default=None)


async def naive(stream):
    async for event in stream.events():
        record = decode(event.message.topic, event.message.value)
        key = record.get("zone") or record.get("node_id")
        latest[key] = record["ts_ms"]
        await out.send(key=key.encode(), value=b"1")


async def nothing(stream):
    async for _event in stream.events():
        pass


app.agent(topics, name=BASELINE)({"naive": naive, "nothing": nothing}[BASELINE])
