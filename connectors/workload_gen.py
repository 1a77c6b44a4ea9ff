"""A trickle of demo workloads (a simulator): varied AI jobs with a seeded RNG."""

from __future__ import annotations

import random
from typing import Any

KINDS: tuple[tuple[str, str, tuple[int, ...], tuple[float, float]], ...] = (
    # workload_type, image, VRAM choices (MiB), expected hours range
    ("inference", "ghcr.io/toogreen/llama-serve:3.1", (8192, 16384, 24576), (0.2, 1.0)),
    ("training", "ghcr.io/toogreen/trainer:2.4", (40960, 65536, 78000), (2.0, 8.0)),
    ("fine_tune", "ghcr.io/toogreen/lora-tune:1.2", (20480, 40960), (0.5, 3.0)),
    ("embedding", "ghcr.io/toogreen/embedder:0.9", (4096, 8192), (0.1, 0.6)),
    ("batch_inference", "ghcr.io/toogreen/batch-infer:1.0", (16384, 24576, 40960), (0.5, 2.5)),
)


REFERENCE_COMMAND = "python -m toogreen.workloads.reference --steps {steps} --step-ms {step_ms:g}"


class WorkloadGenerator:
    """Demo requests. With ``hours_per_second`` each also carries a command, the reference workload sized to last
    as long on a node agent as the simulated fleet takes for its expected hours, so wherever the router places it,
    a simulated node simulates it and a real node agent really runs it (and can move it)."""

    def __init__(self, seed: int, hours_per_second: float | None = None, reference_step_ms: float = 50.0) -> None:
        self._rng = random.Random(seed)
        self._n = 0
        self._hours_per_second = hours_per_second
        self._step_ms = reference_step_ms

    def reference_command(self, expected_hours: float) -> str | None:
        if not self._hours_per_second:
            return None
        seconds = expected_hours / self._hours_per_second
        return REFERENCE_COMMAND.format(steps=max(1, round(seconds * 1000 / self._step_ms)), step_ms=self._step_ms)

    def next_request(self) -> dict[str, Any]:
        self._n += 1
        kind, image, vrams, (lo, hi) = self._rng.choice(KINDS)
        green_only = self._rng.random() < 0.3
        hours = round(self._rng.uniform(lo, hi), 2)
        return {
            "name": f"demo-{kind}-{self._n}",
            "workload_type": kind,
            "image": image,
            "command": self.reference_command(hours),
            "vram_mb": self._rng.choice(vrams),
            "expected_hours": hours,
            "priority": self._rng.choice(("urgent", "normal", "normal", "async")),
            "green_only": green_only,
            "max_carbon_gco2_kwh": 300.0 if self._rng.random() < 0.2 else None,
            "budget_eur": None,
            "submitter": "demo",
        }
