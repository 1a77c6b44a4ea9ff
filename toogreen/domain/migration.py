"""What moving a running workload costs (checkpoint → transfer → restore), grounded in checkpoints measured on a
real H100 (``shared/data/nvml/h100_checkpoint_costs.json``): about 12 bytes of checkpoint per parameter, about
1.9 s to save and 0.8 s to restore per GB, and about 145 W drawn meanwhile; and whether a move is worth it."""

from __future__ import annotations

from dataclasses import dataclass

from toogreen.settings import MigrationSettings


def checkpoint_gb(vram_mb: int, declared_gb: float | None, settings: MigrationSettings) -> float:
    """The declared size, else an estimate from the VRAM request (training state ≈ 16 B/param in VRAM,
    checkpoint 12 B/param)."""
    if declared_gb:
        return declared_gb
    return vram_mb / 1024 * settings.checkpoint_bytes_per_param / settings.vram_bytes_per_param


@dataclass(frozen=True)
class MoveCost:
    seconds: float  # time the workload does not run
    kwh: float  # energy spent checkpointing, transferring, restoring (facility, PUE included)
    gco2: float
    eur: float  # the paid GPU time lost


def move_cost(
    ckpt_gb: float,
    source_carbon_gco2_per_kwh: float,
    target_carbon_gco2_per_kwh: float,
    target_price_eur_per_hour: float,
    settings: MigrationSettings,
) -> MoveCost:
    save_s = ckpt_gb * settings.save_s_per_gb
    transfer_s = ckpt_gb * 8 / settings.link_gbps
    restore_s = ckpt_gb * settings.restore_s_per_gb + settings.first_step_s
    save_kwh = settings.checkpoint_power_w * save_s / 3.6e6
    restore_kwh = settings.checkpoint_power_w * (transfer_s + restore_s) / 3.6e6  # the target waits, then loads
    seconds = save_s + transfer_s + restore_s
    return MoveCost(
        seconds=seconds,
        kwh=save_kwh + restore_kwh,
        gco2=save_kwh * source_carbon_gco2_per_kwh + restore_kwh * target_carbon_gco2_per_kwh,
        eur=target_price_eur_per_hour * seconds / 3600,
    )


@dataclass(frozen=True)
class MoveVerdict:
    move: bool
    reason: str
    gain: float  # relative improvement of the alternative's carbon intensity
    saved_gco2: float
    cost: MoveCost | None


def judge_move(
    current_carbon: float,
    alternative_carbon: float,
    remaining_kwh: float,
    cost: MoveCost,
    moves_so_far: int,
    since_last_move_s: float | None,
    settings: MigrationSettings,
) -> MoveVerdict:
    """Move only if the alternative is ≥ ``min_gain`` better, the carbon saved over the remaining run exceeds the
    move's own, the dwell time has passed, and the workload has moves left."""
    gain = 0.0 if current_carbon <= 0 else (current_carbon - alternative_carbon) / current_carbon
    saved = (current_carbon - alternative_carbon) * remaining_kwh - cost.gco2
    if moves_so_far >= settings.max_moves:
        return MoveVerdict(False, f"already moved {moves_so_far} times (max {settings.max_moves})", gain, saved, cost)
    if since_last_move_s is not None and since_last_move_s < settings.min_dwell_s:
        return MoveVerdict(
            False, f"moved {since_last_move_s:.0f} s ago (dwell {settings.min_dwell_s:.0f} s)", gain, saved, cost
        )
    if gain < settings.min_gain:
        return MoveVerdict(
            False, f"best alternative only {gain:.0%} better (needs {settings.min_gain:.0%})", gain, saved, cost
        )
    if saved <= 0:
        return MoveVerdict(
            False, f"saving over the remaining run does not cover the move ({cost.gco2:.1f} gCO2)", gain, saved, cost
        )
    return MoveVerdict(
        True, f"{gain:.0%} cleaner; saves {saved:.1f} gCO2 net of a {cost.seconds:.0f} s move", gain, saved, cost
    )
