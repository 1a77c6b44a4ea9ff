"""The forecaster on a real broker: 2020 GB readings replayed onto grid.readings come back as forecasts on
grid.forecasts, one per zone per issue boundary, each from the readings before it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.replay import load_readings
from tests.integration.conftest import free_port
from toogreen.codec import decode
from toogreen.domain.forecast import HOUR_MS, Forecast
from toogreen.kafka.broker import EmbeddedBroker, ensure_topics
from toogreen.kafka.producer import RecordProducer
from toogreen.settings import Settings
from toogreen.topics import GRID_FORECASTS, GRID_READINGS

pytestmark = pytest.mark.integration


def test_replayed_readings_become_forecasts_on_the_topic(data_dir, tmp_path):
    settings = Settings()
    start = datetime(2020, 6, 1, tzinfo=UTC)
    readings = load_readings("GB", data_dir / "grid" / "entsoe-2020" / "gb_ci.csv", settings.grid, start,
                             start + timedelta(days=3, hours=1))  # fmt: skip
    with EmbeddedBroker("127.0.0.1", free_port(), tmp_path / "broker.log") as broker:
        ensure_topics(broker.bootstrap, 2)
        producer = RecordProducer(broker.bootstrap)
        for r in readings:
            producer.send(GRID_READINGS.name, r["zone"], r, timestamp_ms=r["ts_ms"])
        assert producer.flush().delivered == len(readings)
        env = {
            **os.environ,
            "TOOGREEN_BROKER__BOOTSTRAP": broker.bootstrap,
            "TOOGREEN_FORECAST__ISSUE_INTERVAL_H": "12",
        }
        env.pop("TOOGREEN_GRID__ELECTRICITYMAPS_TOKEN", None)
        done = subprocess.run([sys.executable, "-m", "toogreen.app.cli", "produce", "forecasts", "--idle-exit-s", "4"],
                              env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "t", "enable.auto.commit": False})
        meta = consumer.list_topics(GRID_FORECASTS.name, timeout=10)
        consumer.assign([TopicPartition(GRID_FORECASTS.name, p, OFFSET_BEGINNING)
                         for p in meta.topics[GRID_FORECASTS.name].partitions])  # fmt: skip
        got: list[Forecast] = []
        for _ in range(40):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(Forecast.from_record(decode(GRID_FORECASTS.name, msg.value())))
            elif len(got) >= 3:
                break
        consumer.close()
    first = int(start.timestamp() * 1000)
    # boundaries every 12 h; the first two days are too little history; the last boundary (day 3 + 0 h) is passed
    assert [f.issued_ms for f in got] == [first + 48 * HOUR_MS, first + 60 * HOUR_MS, first + 72 * HOUR_MS]
    assert all(f.zone == "GB" and f.model == "ets" and len(f.points) == settings.forecast.horizon_h for f in got)
    assert "issued 3, delivered 3" in done.stdout.replace("\n", " ") + done.stderr
