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
    gain: float  # relative improvement of the alternative (carbon, or price where that is the better case)
    saved_gco2: float
    cost: MoveCost | None
    saved_eur: float = 0.0


@dataclass(frozen=True)
class MoveOption:
    """The running workload's place now and its best alternative, per unit of its remaining run."""

    current_carbon: float  # gCO2eq/kWh at the node (PUE included)
    alternative_carbon: float
    remaining_kwh: float  # at the GPU
    current_price: float  # €/h for this workload (slice fraction included)
    alternative_price: float
    remaining_hours: float


def judge_move(
    option: MoveOption,
    cost: MoveCost,
    moves_so_far: int,
    since_last_move_s: float | None,
    settings: MigrationSettings,
) -> MoveVerdict:
    """Move only if the alternative is ≥ ``min_gain`` better in carbon (or in price) and what that saves over
    the remaining run exceeds what the move itself costs; never within the dwell time or past the move limit."""
    o = option
    carbon_gain = 0.0 if o.current_carbon <= 0 else (o.current_carbon - o.alternative_carbon) / o.current_carbon
    price_gain = 0.0 if o.current_price <= 0 else (o.current_price - o.alternative_price) / o.current_price
    saved_g = (o.current_carbon - o.alternative_carbon) * o.remaining_kwh - cost.gco2
    saved_eur = (o.current_price - o.alternative_price) * o.remaining_hours - cost.eur
    gain = max(carbon_gain, price_gain)

    def verdict(move: bool, reason: str) -> MoveVerdict:
        return MoveVerdict(move, reason, gain, saved_g, cost, saved_eur)

    if moves_so_far >= settings.max_moves:
        return verdict(False, f"already moved {moves_so_far} times (max {settings.max_moves})")
    if since_last_move_s is not None and since_last_move_s < settings.min_dwell_s:
        return verdict(False, f"moved {since_last_move_s:.0f} s ago (dwell {settings.min_dwell_s:.0f} s)")
    if carbon_gain >= settings.min_gain and saved_g > 0:
        return verdict(True, f"{carbon_gain:.0%} cleaner; saves {saved_g:.1f} gCO2 net of a {cost.seconds:.0f} s move")
    if price_gain >= settings.min_gain and saved_eur > 0:
        return verdict(True, f"{price_gain:.0%} cheaper; saves {saved_eur:.2f} EUR net of a {cost.seconds:.0f} s move")
    if gain < settings.min_gain:
        return verdict(False, f"best alternative only {gain:.0%} better (needs {settings.min_gain:.0%})")
    return verdict(
        False, f"saving over the remaining run does not cover the move ({cost.gco2:.1f} gCO2, {cost.eur:.2f} EUR)"
    )
