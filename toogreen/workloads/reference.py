"""The reference workload: a small, deterministic training run that honours the node agent's checkpoint contract.

``python -m toogreen.workloads.reference --steps N [--step-ms M] [--hidden H] [--seed S]``

A two-layer MLP (tanh) learns a seeded teacher network's outputs on a synthetic data set with Adam, all in float32.
The data set and the initial weights come from the seed; the mini-batches from a random generator whose state is in
the checkpoint, with the weights and Adam's two moments (12 bytes per parameter, like a real fp32 + AdamW
checkpoint) and the step. So a run stopped and resumed any number of times, at any step, writes the same bytes to
``$TOOGREEN_OUTPUT`` as a run never stopped (on the same platform: the same numpy and BLAS on the same kind of CPU).

The contract (``docs/node-agent.md``):
- ``TOOGREEN_CHECKPOINT_DIR``: checkpoints are written here, each into its own directory made visible by an atomic
  rename, then named in the file ``LATEST`` (also written by rename);
- ``TOOGREEN_RESUME_FROM``: when set, the checkpoint directory to resume from;
- ``TOOGREEN_OUTPUT``: the result (the final weights, one float32 ``.npy`` vector);
- ``TOOGREEN_PROGRESS`` (optional): a JSON file with the step reached, rewritten as it goes;
- SIGUSR1: write a checkpoint at the end of the current step and go on; SIGTERM: the same, then exit 0.

``--step-ms`` pads each step to at least that long (so tests and demos can make a run last); it never changes the
result, and a signal that arrives while padding is answered at once.
"""

from __future__ import annotations

import os

# One BLAS thread: a multi-threaded reduction may sum in a different order on another run; the result must not.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from types import FrameType  # noqa: E402

import numpy as np  # noqa: E402

INPUTS = 32
OUTPUTS = 8
SAMPLES = 2048
BATCH = 64
LEARNING_RATE = 1e-3
BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8
PARAMS = ("w1", "b1", "w2", "b2")
LATEST = "LATEST"
KEEP_CHECKPOINTS = 2
PROGRESS_EVERY_S = 0.25
PAD_POLL_S = 0.005


@dataclass(frozen=True)
class RunConfig:
    steps: int
    hidden: int
    seed: int


@dataclass
class TrainState:
    """Everything a resumed run needs: weights, Adam's moments, the batch generator and the step reached."""

    step: int
    params: dict[str, np.ndarray]
    first_moment: dict[str, np.ndarray]
    second_moment: dict[str, np.ndarray]
    rng: np.random.Generator


def parameter_count(hidden: int) -> int:
    return INPUTS * hidden + hidden + hidden * OUTPUTS + OUTPUTS


def synthetic_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets: a seeded teacher network's outputs plus a little noise (the same for every run)."""
    rng = np.random.default_rng([seed, 0])
    x = rng.standard_normal((SAMPLES, INPUTS), dtype=np.float32)
    teacher_1 = rng.standard_normal((INPUTS, 16), dtype=np.float32) / np.float32(np.sqrt(INPUTS))
    teacher_2 = rng.standard_normal((16, OUTPUTS), dtype=np.float32) / np.float32(4.0)
    y = np.tanh(x @ teacher_1) @ teacher_2 + np.float32(0.01) * rng.standard_normal((SAMPLES, OUTPUTS), np.float32)
    return x, y.astype(np.float32)


def initial_state(config: RunConfig) -> TrainState:
    rng = np.random.default_rng([config.seed, 1])
    h = config.hidden
    params = {
        "w1": rng.standard_normal((INPUTS, h), dtype=np.float32) / np.float32(np.sqrt(INPUTS)),
        "b1": np.zeros(h, np.float32),
        "w2": rng.standard_normal((h, OUTPUTS), dtype=np.float32) / np.float32(np.sqrt(h)),
        "b2": np.zeros(OUTPUTS, np.float32),
    }
    first, second = ({k: np.zeros_like(v) for k, v in params.items()} for _ in range(2))
    return TrainState(0, params, first, second, np.random.default_rng([config.seed, 2]))


def train_step(state: TrainState, x: np.ndarray, y: np.ndarray) -> float:
    """One Adam step on a mini-batch drawn from the state's generator; returns the batch loss (MSE)."""
    p = state.params
    idx = state.rng.integers(0, SAMPLES, size=BATCH)
    xb, yb = x[idx], y[idx]
    hidden = np.tanh(xb @ p["w1"] + p["b1"])
    pred = hidden @ p["w2"] + p["b2"]
    err = pred - yb
    d_pred = (np.float32(2.0 / err.size) * err).astype(np.float32)
    d_hidden = (d_pred @ p["w2"].T) * (np.float32(1.0) - hidden * hidden)
    grads = {"w2": hidden.T @ d_pred, "b2": d_pred.sum(axis=0), "w1": xb.T @ d_hidden, "b1": d_hidden.sum(axis=0)}
    state.step += 1
    t = state.step
    lr_t = np.float32(LEARNING_RATE * np.sqrt(1 - BETA2**t) / (1 - BETA1**t))
    for name in PARAMS:
        g = grads[name].astype(np.float32)
        m = state.first_moment[name] = np.float32(BETA1) * state.first_moment[name] + np.float32(1 - BETA1) * g
        v = state.second_moment[name] = np.float32(BETA2) * state.second_moment[name] + np.float32(1 - BETA2) * g * g
        p[name] = (p[name] - lr_t * m / (np.sqrt(v) + np.float32(EPSILON))).astype(np.float32)
    return float(np.mean(err * err))


def save_checkpoint(state: TrainState, config: RunConfig, checkpoint_dir: Path) -> Path:
    """Write the state into ``step-NNNNNNNNN`` (by rename, so it is whole or absent), point ``LATEST`` at it (a
    new file every time, also by rename: the agent sees that a checkpoint was written) and drop all but the newest
    few."""
    name = f"step-{state.step:09d}"
    final = checkpoint_dir / name
    if not final.exists():  # asked twice at the same step, it is there already: only the pointer is rewritten
        tmp = checkpoint_dir / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for prefix, arrays in (("param", state.params), ("m", state.first_moment), ("v", state.second_moment)):
            for key, value in arrays.items():
                np.save(tmp / f"{prefix}_{key}.npy", value)
        meta = {"step": state.step, "steps": config.steps, "hidden": config.hidden, "seed": config.seed,
                "rng": state.rng.bit_generator.state}  # fmt: skip
        (tmp / "state.json").write_text(json.dumps(meta, sort_keys=True))
        os.rename(tmp, final)
    pointer = checkpoint_dir / f"{LATEST}.tmp"
    pointer.write_text(name)
    os.rename(pointer, checkpoint_dir / LATEST)
    done = sorted(p for p in checkpoint_dir.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
    for old in done[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, config: RunConfig) -> TrainState:
    meta = json.loads((path / "state.json").read_text())
    if (meta["hidden"], meta["seed"]) != (config.hidden, config.seed):
        raise SystemExit(
            f"checkpoint {path} is of a run with hidden={meta['hidden']} seed={meta['seed']}, "
            f"not hidden={config.hidden} seed={config.seed}"
        )

    def arrays(prefix: str) -> dict[str, np.ndarray]:
        return {k: np.load(path / f"{prefix}_{k}.npy") for k in PARAMS}

    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng"]
    return TrainState(int(meta["step"]), arrays("param"), arrays("m"), arrays("v"), rng)


def write_result(state: TrainState, output: Path) -> None:
    """The final weights as one float32 vector in ``.npy`` format (its bytes depend on the weights alone)."""
    flat = np.concatenate([state.params[k].ravel() for k in PARAMS]).astype(np.float32)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    with tmp.open("wb") as fh:
        np.save(fh, flat)
    os.replace(tmp, output)


def write_progress(path: Path, step: int, steps: int, loss: float) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"step": step, "steps": steps, "progress_pct": 100.0 * step / steps, "loss": loss}))
    os.replace(tmp, path)


class Signals:
    """SIGUSR1 and SIGTERM only set flags; the training loop answers them between steps."""

    def __init__(self) -> None:
        self.checkpoint = False
        self.stop = False
        signal.signal(signal.SIGUSR1, self._on_usr1)
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_usr1(self, _sig: int, _frame: FrameType | None) -> None:
        self.checkpoint = True

    def _on_term(self, _sig: int, _frame: FrameType | None) -> None:
        self.stop = True

    def pending(self) -> bool:
        return self.checkpoint or self.stop


def _env_path(name: str, default: Path | None = None) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else default


def run(config: RunConfig, step_ms: float) -> int:
    """Train to ``config.steps``, answering the contract's signals; returns the exit code."""
    signals = Signals()
    checkpoint_dir = _env_path("TOOGREEN_CHECKPOINT_DIR", Path("checkpoints"))
    output = _env_path("TOOGREEN_OUTPUT", Path("output.npy"))
    progress = _env_path("TOOGREEN_PROGRESS")
    resume_from = _env_path("TOOGREEN_RESUME_FROM")
    assert checkpoint_dir is not None and output is not None
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    x, y = synthetic_data(config.seed)
    state = load_checkpoint(resume_from, config) if resume_from else initial_state(config)
    print(f"reference: {parameter_count(config.hidden)} parameters, from step {state.step} of {config.steps}"
          f"{f' (resumed from {resume_from})' if resume_from else ''}", flush=True)  # fmt: skip
    last_progress = float("-inf")
    loss = float("nan")
    while True:
        if signals.pending():
            save_checkpoint(state, config, checkpoint_dir)
            print(f"reference: checkpoint at step {state.step}", flush=True)
            signals.checkpoint = False
            if signals.stop:
                return 0
        if state.step >= config.steps:
            break
        started = time.monotonic()
        loss = train_step(state, x, y)
        now = time.monotonic()
        if progress and (now - last_progress >= PROGRESS_EVERY_S or state.step == config.steps):
            write_progress(progress, state.step, config.steps, loss)
            last_progress = now
        deadline = started + step_ms / 1000
        while not signals.pending() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, PAD_POLL_S))
    write_result(state, output)
    # done: a checkpoint now is of no use, and a signal during the interpreter's exit (which puts the default
    # handlers back) would kill it; exit 0 with the result written is a completion
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if progress:
        write_progress(progress, state.step, config.steps, loss)
    print(f"reference: done at step {state.step}, loss {loss:.6f}, weights in {output}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toogreen.workloads.reference", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, required=True, help="training steps in all")
    parser.add_argument("--step-ms", type=float, default=0.0, help="pad each step to at least this long (ms)")
    parser.add_argument("--hidden", type=int, default=256, help="hidden units (sets the checkpoint size)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.hidden < 1 or args.step_ms < 0:
        parser.error("--steps and --hidden must be at least 1, --step-ms not negative")
    return run(RunConfig(args.steps, args.hidden, args.seed), args.step_ms)


if __name__ == "__main__":
    sys.exit(main())
