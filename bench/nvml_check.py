"""The NVML connector on a real GPU: record a trace through ``NvmlReader`` while the card idles, runs a matrix
load and cools down, and check what the pipeline relies on. Run it on a machine with an NVIDIA GPU and PyTorch:

    python -m bench.nvml_check --out DIR

It writes ``DIR/nvml_live_trace.jsonl`` (the layout of ``shared/data/nvml/h100_trace.jsonl``, readable by
``connectors.nvml.read_trace``), ``DIR/nvml_live_static.json`` (device facts and the GPU-instance profile table)
and ``DIR/nvml_live_check.json`` (the figures), and exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

from connectors.nvml import NvmlReader, RawSample, to_telemetry
from toogreen.codec import decode, encode
from toogreen.domain.accounting import energy_between_j
from toogreen.domain.validation import validate_telemetry

LOAD = """
import sys, time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.monotonic() + float(sys.argv[1])
n = 0
while time.monotonic() < end:
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    n += 20
print(f"load: {n} matmuls of 8192^3 bf16", flush=True)
"""


def record(reader: NvmlReader, seconds: float, hz: float, phase: str, rows: list[dict]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        raw = reader.sample(0)
        rows.append({"phase": phase, **trace_row(raw)})
        time.sleep(1.0 / hz)


def trace_row(raw: RawSample) -> dict:
    return {
        "ts_ns": raw.ts_ns, "sm_util_pct": raw.sm_util_pct, "mem_used_bytes": raw.mem_used_bytes,
        "temp_c": raw.temp_c, "power_mw": raw.power_mw, "energy_mj": raw.energy_mj,
        "sm_clock_mhz": raw.sm_clock_mhz, "mem_clock_mhz": raw.mem_clock_mhz,
    }  # fmt: skip


def profile_table(reader: NvmlReader) -> list[dict]:
    n, h = reader.nvml, reader.handles[0]
    out = []
    for profile in range(n.NVML_GPU_INSTANCE_PROFILE_COUNT):
        try:
            info = n.nvmlDeviceGetGpuInstanceProfileInfo(h, profile)
        except n.NVMLError:
            continue
        out.append({
            "profile": profile, "id": info.id, "slice_count": info.sliceCount, "instance_count": info.instanceCount,
            "multiprocessor_count": info.multiprocessorCount, "memory_mb": info.memorySizeMB,
        })  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--idle-s", type=float, default=4.0)
    parser.add_argument("--load-s", type=float, default=12.0)
    parser.add_argument("--cool-s", type=float, default=4.0)
    parser.add_argument("--hz", type=float, default=10.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    reader = NvmlReader()
    static = {**reader.describe(0), "gpu_instance_profiles": profile_table(reader)}
    static["driver"] = reader.nvml.nvmlSystemGetDriverVersion()
    rows: list[dict] = []
    record(reader, args.idle_s, args.hz, "idle", rows)
    load = subprocess.Popen([sys.executable, "-c", LOAD, str(args.load_s)])
    t0 = time.monotonic()
    while load.poll() is None:
        record(reader, 0.5, args.hz, "load", rows)
    load_wall_s = time.monotonic() - t0
    record(reader, args.cool_s, args.hz, "cooldown", rows)
    reader.close()

    with (args.out / "nvml_live_trace.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    (args.out / "nvml_live_static.json").write_text(json.dumps(static, indent=1))

    telemetry = [
        to_telemetry("gpu-0", RawSample(mem_total_bytes=static["memory_total_bytes"], **_raw(r)), "nvml") for r in rows
    ]
    problems = [p for t in telemetry for p in validate_telemetry(t)]
    round_trip = all(decode("node.telemetry", encode("node.telemetry", t)) == t for t in telemetry)
    counter_j = sum(energy_between_j(a, b)[0] for a, b in itertools.pairwise(telemetry))
    integrated_j = sum(
        energy_between_j({**a, "energy_j": None}, {**b, "energy_j": None})[0] for a, b in itertools.pairwise(telemetry)
    )
    by_phase = {
        phase: {
            "samples": len(ts),
            "power_w_median": sorted(t["power_w"] for t in ts)[len(ts) // 2],
            "sm_util_pct_max": max(t["sm_util_pct"] for t in ts),
        }
        for phase in ("idle", "load", "cooldown")
        if (ts := [t for t, r in zip(telemetry, rows, strict=True) if r["phase"] == phase])
    }
    checks = {
        "every sample validates": not problems,
        "every sample round-trips through the Avro codec": round_trip,
        "the energy counter never goes backwards": all(
            b["energy_j"] >= a["energy_j"] for a, b in itertools.pairwise(telemetry)
        ),
        "load draws more power than idle": (
            by_phase["load"]["power_w_median"] > 1.5 * by_phase["idle"]["power_w_median"]
        ),
        "load shows SM utilisation": by_phase["load"]["sm_util_pct_max"] >= 90,
        "counter and integrated power agree within 5 %": abs(counter_j - integrated_j) <= 0.05 * counter_j,
    }
    result = {
        "device": static["name"], "driver": static["driver"], "samples": len(rows), "load_wall_s": load_wall_s,
        "energy_counter_j": counter_j, "integrated_power_j": integrated_j, "phases": by_phase,
        "problems": problems[:10], "checks": checks,
    }  # fmt: skip
    (args.out / "nvml_live_check.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0 if all(checks.values()) else 1


def _raw(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "phase"}


if __name__ == "__main__":
    sys.exit(main())
