"""MIG slices (SPEC §7): the GPU-instance profile tables NVML reports, and choosing a slice for a request.

The H100 80GB table is the one NVML reported on a real card (``shared/data/nvml/h100_static.json``), the H200
141GB one the one NVML reported on a real card through ``bench/nvml_check.py`` (``bench-results/nvml/``); the A100
80GB one follows NVIDIA's published profiles. A slice is never larger than its card; a GPU has 7 compute slices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

COMPUTE_SLICES = 7


@dataclass(frozen=True)
class MigProfile:
    name: str
    slices: int
    instances: int  # how many of this profile fit on one GPU
    sms: int
    memory_mb: int


MIG_PROFILES: dict[str, tuple[MigProfile, ...]] = {
    "H100": (
        MigProfile("1g.10gb", 1, 7, 16, 9984),
        MigProfile("1g.20gb", 1, 4, 26, 20096),
        MigProfile("2g.20gb", 2, 3, 32, 20096),
        MigProfile("3g.40gb", 3, 2, 60, 40448),
        MigProfile("4g.40gb", 4, 1, 64, 40448),
        MigProfile("7g.80gb", 7, 1, 132, 81152),
    ),
    "H200": (
        MigProfile("1g.18gb", 1, 7, 16, 16384),
        MigProfile("1g.35gb", 1, 4, 26, 33280),
        MigProfile("2g.35gb", 2, 3, 32, 33280),
        MigProfile("3g.71gb", 3, 2, 60, 71424),
        MigProfile("4g.71gb", 4, 1, 64, 71424),
        MigProfile("7g.141gb", 7, 1, 132, 143360),
    ),
    "A100": (
        MigProfile("1g.10gb", 1, 7, 14, 9728),
        MigProfile("1g.20gb", 1, 4, 14, 19968),
        MigProfile("2g.20gb", 2, 3, 28, 19968),
        MigProfile("3g.40gb", 3, 2, 42, 39424),
        MigProfile("4g.40gb", 4, 1, 56, 39424),
        MigProfile("7g.80gb", 7, 1, 98, 80384),
    ),
}
TOTAL_SMS = {"H100": 132, "H200": 132, "A100": 98}


def compute_fraction(gpu_model: str, profile: MigProfile) -> float:
    """The share of the card's SMs the slice has: its share of the price and of the card's energy."""
    return profile.sms / TOTAL_SMS[gpu_model]


def profile_by_name(gpu_model: str, name: str) -> MigProfile:
    return next(p for p in MIG_PROFILES[gpu_model] if p.name == name)


def choose_profile(gpu_model: str, vram_mb: int, used: Mapping[str, int]) -> MigProfile | None:
    """The smallest profile (fewest slices, then least memory) holding ``vram_mb`` that still fits beside the
    slices in ``used`` ({profile name: count}); None when none does."""
    profiles = MIG_PROFILES.get(gpu_model)
    if not profiles:
        return None
    used_slices = sum(profile_by_name(gpu_model, n).slices * c for n, c in used.items())
    for p in sorted(profiles, key=lambda p: (p.slices, p.memory_mb)):
        if p.memory_mb >= vram_mb and used_slices + p.slices <= COMPUTE_SLICES and used.get(p.name, 0) < p.instances:
            return p
    return None
