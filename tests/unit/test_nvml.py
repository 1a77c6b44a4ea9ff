"""NVML telemetry: the mapping from NVML units, the replay of the real H100 trace, and the real reader."""

import itertools
import json
from pathlib import Path

import pytest

from connectors.nvml import NvmlReader, NvmlUnavailable, read_trace, replay, to_telemetry
from toogreen.codec import encode
from toogreen.domain.accounting import energy_between_j
from toogreen.domain.validation import validate_telemetry


@pytest.fixture(scope="module")
def trace(data_dir):
    return read_trace(data_dir / "nvml" / "h100_trace.jsonl")


def test_trace_maps_to_valid_telemetry(trace):
    assert len(trace) == 684
    records = [to_telemetry("h100-a", s, "replay:h100_trace") for s in trace]
    for r in records:
        assert validate_telemetry(r) == []
        encode("node.telemetry", r)
    idle, full = records[10], max(records, key=lambda r: r["power_w"])
    assert 60 < idle["power_w"] < 140 and full["power_w"] > 650 and full["sm_util_pct"] == 100
    assert records[0]["mem_total_mb"] == 81559


def test_replay_restamps_at_speed_and_keeps_the_counter_rising(trace):
    records = list(replay(trace, "n1", speed=10.0, start_ms=1_000_000, loops=2))
    assert len(records) == 2 * len(trace)
    span_ms = (trace[-1].ts_ns - trace[0].ts_ns) / 1e6
    assert records[len(trace) - 1]["ts_ms"] - records[0]["ts_ms"] == pytest.approx(span_ms / 10, abs=1)
    energies = [r["energy_j"] for r in records]
    assert all(b >= a for a, b in itertools.pairwise(energies))
    assert {r["node_id"] for r in records} == {"n1"}


def test_reader_without_a_gpu_says_so():
    try:
        reader = NvmlReader()
    except NvmlUnavailable as exc:
        assert "trace replay" in str(exc)
        return
    try:  # a machine with a GPU: read it for real
        raw = reader.sample(0)
        record = to_telemetry("gpu-0", raw, "nvml")
        assert validate_telemetry(record) == []
        assert record["mem_total_mb"] > 0 and record["power_w"] > 0
        encode("node.telemetry", record)
    finally:
        reader.close()


LIVE = Path(__file__).resolve().parents[2] / "bench-results" / "nvml"


def test_live_h200_trace_read_through_nvml_reader_settles_like_the_counter():
    """The trace ``bench/nvml_check.py`` recorded through ``NvmlReader`` on a real H200 (idle, bf16 matmul
    load, cooldown): valid telemetry, and energy from integrated power within 1 % of the hardware counter."""
    static = json.loads((LIVE / "nvml_live_static.json").read_text())
    samples = read_trace(LIVE / "nvml_live_trace.jsonl", memory_total_bytes=static["memory_total_bytes"])
    records = [to_telemetry("h200-live", s, "nvml") for s in samples]
    assert all(validate_telemetry(r) == [] for r in records)
    assert records[0]["mem_total_mb"] == 143771
    counter = sum(energy_between_j(a, b)[0] for a, b in itertools.pairwise(records))
    integrated = sum(
        energy_between_j({**a, "energy_j": None}, {**b, "energy_j": None})[0] for a, b in itertools.pairwise(records)
    )
    assert counter == pytest.approx(integrated, rel=0.01)
    assert max(r["power_w"] for r in records) > 600 > 150 > records[0]["power_w"]
