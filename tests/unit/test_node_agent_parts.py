"""The node agent's checkpoint store, its replayed telemetry and its identity, without Kafka."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connectors.node_agent.agent import NodeIdentity, commands_partition
from connectors.node_agent.store import CheckpointError, ChecksumMismatch, FileCheckpointStore, open_store, split_uri
from connectors.node_agent.telemetry import ReplayTelemetry, gpu_model_of, replay_traces
from toogreen.domain.validation import validate_registration, validate_telemetry
from toogreen.settings import Settings

KNOWN = list(Settings().pricing.base_eur_per_gpu_hour)


def _checkpoint(folder: Path, payload: bytes) -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(payload)
    (folder / "sub" / "state.json").write_text('{"step": 3}')
    return folder


def test_the_same_checkpoint_contents_store_with_the_same_sha256(tmp_path):
    store = FileCheckpointStore(tmp_path / "store")
    first = store.put_checkpoint("wl", "one", _checkpoint(tmp_path / "a", b"x" * 5000), {"reason": "move"})
    time.sleep(0.01)
    second = store.put_checkpoint("wl", "two", _checkpoint(tmp_path / "b", b"x" * 5000), {})
    assert first.sha256 == second.sha256 and first.size_bytes == second.size_bytes > 5000
    assert split_uri(first.uri) == (first.uri.partition("#")[0], first.sha256)
    fetched = store.fetch_checkpoint(first.uri, tmp_path / "restore" / "one")
    assert (fetched.path / "weights.bin").read_bytes() == b"x" * 5000
    assert (fetched.path / "sub" / "state.json").read_text() == '{"step": 3}'
    assert fetched.manifest["reason"] == "move" and fetched.manifest["sha256"] == first.sha256


def test_a_wrong_sha256_or_a_location_outside_the_store_is_refused(tmp_path):
    store = FileCheckpointStore(tmp_path / "store")
    stored = store.put_checkpoint("wl", "one", _checkpoint(tmp_path / "a", b"abc"), {})
    with pytest.raises(ChecksumMismatch, match="not the 00"):
        store.fetch_checkpoint(stored.uri.partition("#")[0] + "#sha256=" + "0" * 64, tmp_path / "r1")
    outside = tmp_path / "elsewhere.tar"
    outside.write_bytes(b"")
    with pytest.raises(CheckpointError, match="outside the checkpoint store"):
        store.fetch_checkpoint(outside.as_uri() + "#sha256=" + stored.sha256, tmp_path / "r2")
    with pytest.raises(CheckpointError, match="not in this store"):
        store.fetch_checkpoint("s3://bucket/x.tar", tmp_path / "r3")
    with pytest.raises(CheckpointError, match="only file://"):
        open_store("s3://bucket/checkpoints")
    assert isinstance(open_store(str(tmp_path / "plain")), FileCheckpointStore)


def test_gpu_models_are_read_from_nvml_names():
    assert gpu_model_of("NVIDIA H100 80GB HBM3", KNOWN) == "H100"
    assert gpu_model_of("NVIDIA H200", KNOWN) == "H200"
    assert gpu_model_of("NVIDIA GeForce RTX 4090", KNOWN) == "RTX 4090"
    assert gpu_model_of("NVIDIA B200", KNOWN) == "B200"


@pytest.mark.parametrize("model", ["H100", "H200"])
def test_the_replay_follows_what_the_node_does_and_says_it_is_a_replay(model, data_dir):
    trace = replay_traces(data_dir)[model]
    if not trace.trace.exists():
        pytest.skip(f"no trace at {trace.trace}")
    replay = ReplayTelemetry("n1", trace, KNOWN)
    assert replay.facts.gpu_model == model and replay.facts.max_power_w == 700.0
    idle = [replay.sample(False, 0) for _ in range(5)]
    time.sleep(0.05)
    busy = [replay.sample(True, 20_000) for _ in range(5)]
    assert all(s["source"] == f"replay:{model.lower()}_trace" for s in idle + busy)
    assert all(validate_telemetry(s) == [] for s in idle + busy)
    assert max(s["power_w"] for s in idle) < 200 < min(s["power_w"] for s in busy)
    assert min(s["sm_util_pct"] for s in busy) > 90
    energies = [s["energy_j"] for s in idle + busy]
    assert energies == sorted(energies) and energies[-1] > energies[0]
    assert busy[0]["mem_used_mb"] - idle[0]["mem_used_mb"] == 20_000


def test_a_registration_validates_and_partitions_spread_nodes():
    reg = NodeIdentity("n1", "p", "gamer", "H100", 81_559, "FR", 1.0, 700.0, wallet="w").registration(1)
    assert validate_registration(reg) == []
    assert {commands_partition(f"node-{i}", 4) for i in range(40)} == {0, 1, 2, 3}
    assert commands_partition("node-1", 4) == commands_partition("node-1", 4)


def test_the_command_line_says_what_is_wrong_with_its_options():
    from typer.testing import CliRunner

    from toogreen.app.cli import app

    runner = CliRunner()
    bad_zone = runner.invoke(app, ["node-agent", "--zone", "XX", "--telemetry", "replay"])
    assert bad_zone.exit_code == 2 and "unknown zone 'XX'" in bad_zone.output
    bad_type = runner.invoke(app, ["node-agent", "--zone", "FR", "--node-type", "miner"])
    assert bad_type.exit_code == 2 and "datacenter, recycler or gamer" in bad_type.output
    bad_pue = runner.invoke(app, ["node-agent", "--zone", "FR", "--pue", "0.5"])
    assert bad_pue.exit_code == 2 and "below 1" in bad_pue.output


def test_demo_workloads_carry_the_reference_workload_sized_to_the_simulated_time():
    from connectors.workload_gen import WorkloadGenerator

    request = WorkloadGenerator(7, hours_per_second=1 / 60, reference_step_ms=50).next_request()
    steps = round(request["expected_hours"] * 60 * 1000 / 50)
    assert request["command"] == f"python -m toogreen.workloads.reference --steps {steps} --step-ms 50"
    assert request["image"]  # a simulated node still sees its image
    assert WorkloadGenerator(7).next_request()["command"] is None
