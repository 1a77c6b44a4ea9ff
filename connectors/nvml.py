"""GPU telemetry: real NVML through ``pynvml`` (nvidia-ml-py) where a GPU exists, and a replay of the real H100
trace in ``shared/data/nvml/h100_trace.jsonl`` (at real or accelerated speed, mapped onto any node) where none
does. Both produce ``node.telemetry`` records through the same mapping."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
H100_SLICES = 7


class NvmlUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class RawSample:
    """What NVML reports for one GPU at one instant, in NVML's own units."""

    ts_ns: int
    sm_util_pct: float
    mem_used_bytes: int
    mem_total_bytes: int
    power_mw: float
    energy_mj: float | None
    temp_c: float | None
    sm_clock_mhz: int | None
    mem_clock_mhz: int | None
    mig_enabled: bool = False
    mig_slices_total: int = 0
    mig_slices_used: int = 0
    slowdown_temp_c: float | None = None


def to_telemetry(node_id: str, raw: RawSample, source: str, ts_ms: int | None = None) -> dict[str, Any]:
    """The ``node.telemetry`` record of an NVML sample (mW → W, mJ → J, bytes → MiB)."""
    hot = raw.slowdown_temp_c is not None and raw.temp_c is not None and raw.temp_c >= raw.slowdown_temp_c
    return {
        "node_id": node_id,
        "ts_ms": ts_ms if ts_ms is not None else raw.ts_ns // 1_000_000,
        "sm_util_pct": float(raw.sm_util_pct),
        "mem_used_mb": raw.mem_used_bytes // MIB,
        "mem_total_mb": raw.mem_total_bytes // MIB,
        "power_w": raw.power_mw / 1000.0,
        "energy_j": None if raw.energy_mj is None else raw.energy_mj / 1000.0,
        "temperature_c": None if raw.temp_c is None else float(raw.temp_c),
        "sm_clock_mhz": raw.sm_clock_mhz,
        "mem_clock_mhz": raw.mem_clock_mhz,
        "mig_enabled": raw.mig_enabled,
        "mig_slices_total": raw.mig_slices_total,
        "mig_slices_free": max(0, raw.mig_slices_total - raw.mig_slices_used),
        "health": "degraded" if hot else "healthy",
        "source": source,
    }


class NvmlReader:
    """Reads every GPU of this machine through NVML."""

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise NvmlUnavailable("pynvml (nvidia-ml-py) is not installed") from exc
        self.nvml = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise NvmlUnavailable(
                f"NVML is not available on this machine ({exc}): use the trace replay instead"
            ) from exc
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]

    def close(self) -> None:
        self.nvml.nvmlShutdown()

    def describe(self, index: int) -> dict[str, Any]:
        n, h = self.nvml, self.handles[index]
        mig_capable = True
        try:
            n.nvmlDeviceGetMigMode(h)
        except n.NVMLError:
            mig_capable = False
        return {
            "name": n.nvmlDeviceGetName(h),
            "uuid": n.nvmlDeviceGetUUID(h),
            "memory_total_bytes": n.nvmlDeviceGetMemoryInfo(h).total,
            "power_limit_w": n.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,
            "mig_capable": mig_capable,
        }

    def _optional(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self.nvml.NVMLError:
            return None

    def sample(self, index: int) -> RawSample:
        n, h = self.nvml, self.handles[index]
        mem = n.nvmlDeviceGetMemoryInfo(h)
        mig = self._optional(n.nvmlDeviceGetMigMode, h)
        mig_enabled = bool(mig and mig[0] == n.NVML_DEVICE_MIG_ENABLE)
        used_slices = 0
        if mig_enabled:
            for profile in range(n.NVML_GPU_INSTANCE_PROFILE_COUNT):
                info = self._optional(n.nvmlDeviceGetGpuInstanceProfileInfo, h, profile)
                if info is None:
                    continue
                instances = self._optional(n.nvmlDeviceGetGpuInstances, h, info.id) or []
                used_slices += info.sliceCount * len(instances)
        return RawSample(
            ts_ns=time.time_ns(),
            sm_util_pct=n.nvmlDeviceGetUtilizationRates(h).gpu,
            mem_used_bytes=mem.used,
            mem_total_bytes=mem.total,
            power_mw=n.nvmlDeviceGetPowerUsage(h),
            energy_mj=self._optional(n.nvmlDeviceGetTotalEnergyConsumption, h),
            temp_c=self._optional(n.nvmlDeviceGetTemperature, h, n.NVML_TEMPERATURE_GPU),
            sm_clock_mhz=self._optional(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_SM),
            mem_clock_mhz=self._optional(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_MEM),
            mig_enabled=mig_enabled,
            mig_slices_total=H100_SLICES if mig_enabled else 0,
            mig_slices_used=used_slices,
            slowdown_temp_c=self._optional(
                n.nvmlDeviceGetTemperatureThreshold, h, n.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
            ),
        )


def read_trace(path: Path, memory_total_bytes: int = 85_520_809_984) -> list[RawSample]:
    """The samples of an NVML trace file (``h100_trace.jsonl`` layout)."""
    samples = []
    with path.open() as fh:
        for line in fh:
            if not line.strip():
                continue
            s = json.loads(line)
            samples.append(
                RawSample(
                    ts_ns=s["ts_ns"], sm_util_pct=s["sm_util_pct"], mem_used_bytes=s["mem_used_bytes"],
                    mem_total_bytes=memory_total_bytes, power_mw=s["power_mw"], energy_mj=s.get("energy_mj"),
                    temp_c=s.get("temp_c"), sm_clock_mhz=s.get("sm_clock_mhz"), mem_clock_mhz=s.get("mem_clock_mhz"),
                )
            )  # fmt: skip
    return samples


def replay(samples: list[RawSample], node_id: str, speed: float, start_ms: int, loops: int = 1) -> Iterator[dict]:
    """Telemetry of ``samples`` re-stamped from ``start_ms``, ``speed`` times faster than recorded; with several
    loops the energy counter keeps rising across them, as a real counter would."""
    if not samples:
        return
    first, span_ns = samples[0].ts_ns, samples[-1].ts_ns - samples[0].ts_ns
    energy_span = (samples[-1].energy_mj or 0) - (samples[0].energy_mj or 0)
    for loop in range(loops):
        for raw in samples:
            offset_ns = loop * (span_ns + 100_000_000) + raw.ts_ns - first
            energy = None if raw.energy_mj is None else raw.energy_mj + loop * energy_span
            shifted = RawSample(**{**raw.__dict__, "energy_mj": energy})
            yield to_telemetry(node_id, shifted, "replay:h100_trace", start_ms + int(offset_ns / 1e6 / speed))
