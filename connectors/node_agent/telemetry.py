"""The node agent's telemetry: real NVML where the machine has a GPU, else a replay of a real NVML trace.

Both give ``node.telemetry`` records through :func:`connectors.nvml.to_telemetry`. The replay (labelled
``replay:h100_trace`` or ``replay:h200_trace`` in every record's ``source``) plays the samples of the trace's loaded
phase (its steady part, at least 90 % SM utilisation) while a workload runs and of its idle phase otherwise, so what
the node reports follows what it does; its energy counter integrates the replayed power over the agent's own clock,
and its memory in use is the trace's idle figure plus the VRAM of the workloads running here. The traces are the
shared H100 capture (``shared/data/nvml/h100_trace.jsonl``) and the H200 capture of ``bench-results/nvml/``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from connectors.nvml import MIB, NvmlReader, NvmlUnavailable, RawSample, read_trace, to_telemetry
from toogreen import PROJECT_ROOT

BUSY_PHASES = ("full_load", "load")
IDLE_PHASES = ("idle",)


@dataclass(frozen=True)
class GpuFacts:
    """What a node registers about its GPU."""

    name: str
    gpu_model: str
    vram_mb: int
    max_power_w: float
    mig_capable: bool


@dataclass(frozen=True)
class ReplayTrace:
    label: str
    trace: Path
    static: Path


def replay_traces(data_dir: Path) -> dict[str, ReplayTrace]:
    """The real traces on this machine, by GPU model."""
    nvml = data_dir / "nvml"
    h200 = PROJECT_ROOT / "bench-results" / "nvml"
    return {
        "H100": ReplayTrace("replay:h100_trace", nvml / "h100_trace.jsonl", nvml / "h100_static.json"),
        "H200": ReplayTrace("replay:h200_trace", h200 / "nvml_live_trace.jsonl", h200 / "nvml_live_static.json"),
    }


def gpu_model_of(name: str, known: list[str]) -> str:
    """The price table's model name in an NVML device name (``NVIDIA H100 80GB HBM3`` → ``H100``)."""
    for model in sorted(known, key=len, reverse=True):
        if model.lower() in name.lower():
            return model
    return name.removeprefix("NVIDIA ").strip()


class TelemetrySource(Protocol):
    facts: GpuFacts

    def sample(self, busy: bool, used_vram_mb: int) -> dict[str, Any]: ...

    def close(self) -> None: ...


class NvmlTelemetry:
    """One GPU of this machine, read through NVML."""

    def __init__(self, node_id: str, index: int, known_models: list[str]) -> None:
        self.node_id = node_id
        self.index = index
        self.reader = NvmlReader()
        if index >= len(self.reader.handles):
            self.reader.close()
            raise NvmlUnavailable(f"GPU index {index}: this machine has {len(self.reader.handles)} GPU(s)")
        d = self.reader.describe(index)
        self.facts = GpuFacts(
            name=d["name"], gpu_model=gpu_model_of(d["name"], known_models),
            vram_mb=d["memory_total_bytes"] // MIB, max_power_w=d["power_limit_w"], mig_capable=d["mig_capable"],
        )  # fmt: skip

    def sample(self, busy: bool, used_vram_mb: int) -> dict[str, Any]:
        return to_telemetry(self.node_id, self.reader.sample(self.index), "nvml")

    def close(self) -> None:
        self.reader.close()


class ReplayTelemetry:
    """A real NVML trace replayed as this node's telemetry (labelled as such)."""

    def __init__(self, node_id: str, trace: ReplayTrace, known_models: list[str]) -> None:
        static = json.loads(trace.static.read_text())
        total = int(static["memory_total_bytes"])
        limit_w = static.get("power_limit_w") or static.get("power_limit_mw", 0) / 1000
        self.node_id = node_id
        self.label = trace.label
        mig = bool(static.get("mig_capable") or static.get("gpu_instance_profiles"))
        self.facts = GpuFacts(
            name=static["name"], gpu_model=gpu_model_of(static["name"], known_models), vram_mb=total // MIB,
            max_power_w=float(limit_w), mig_capable=mig,
        )  # fmt: skip
        samples = read_trace(trace.trace, total)
        with trace.trace.open() as fh:
            phases = [json.loads(line)["phase"] for line in fh if line.strip()]
        # the steady part of each phase: a loaded phase begins with its ramp, which is not what a busy GPU draws
        self.busy = [s for s, p in zip(samples, phases, strict=True) if p in BUSY_PHASES and s.sm_util_pct >= 90]
        self.idle = [s for s, p in zip(samples, phases, strict=True) if p in IDLE_PHASES and s.sm_util_pct == 0]
        if not self.busy or not self.idle:
            raise ValueError(f"{trace.trace}: needs samples of an idle and a loaded phase")
        self.idle_mem_bytes = min(s.mem_used_bytes for s in self.idle)
        self.energy_mj = float(self.idle[0].energy_mj or 0.0)
        self._cursor = {"busy": 0, "idle": 0}
        self._last_mono: float | None = None

    def sample(self, busy: bool, used_vram_mb: int) -> dict[str, Any]:
        kind = "busy" if busy else "idle"
        pool = self.busy if busy else self.idle
        raw = pool[self._cursor[kind] % len(pool)]
        self._cursor[kind] += 1
        now = time.monotonic()
        if self._last_mono is not None:
            self.energy_mj += raw.power_mw * (now - self._last_mono)  # mW × s = mJ
        self._last_mono = now
        shifted: RawSample = replace(
            raw, ts_ns=time.time_ns(), energy_mj=round(self.energy_mj, 3),
            mem_used_bytes=min(raw.mem_total_bytes, self.idle_mem_bytes + used_vram_mb * MIB),
        )  # fmt: skip
        return to_telemetry(self.node_id, shifted, self.label)

    def close(self) -> None:
        pass


def open_telemetry(kind: str, node_id: str, gpu_model: str | None, gpu_index: int, data_dir: Path,
                   known_models: list[str]) -> TelemetrySource:  # fmt: skip
    """``nvml`` (this machine's GPU ``gpu_index``) or ``replay`` (the real trace of ``gpu_model``, H100 by default)."""
    if kind == "nvml":
        return NvmlTelemetry(node_id, gpu_index, known_models)
    if kind != "replay":
        raise ValueError(f"unknown telemetry {kind!r}: nvml or replay")
    traces = replay_traces(data_dir)
    trace = traces.get(gpu_model or "H100", traces["H100"])
    if not trace.trace.exists():
        raise FileNotFoundError(f"no NVML trace at {trace.trace} to replay")
    return ReplayTelemetry(node_id, trace, known_models)


def nvml_present() -> bool:
    try:
        NvmlReader().close()
    except NvmlUnavailable:
        return False
    return True
