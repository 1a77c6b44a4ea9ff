"""The reference workload: a run stopped and resumed anywhere, any number of times, ends with the same bytes."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from toogreen.workloads.reference import (
    RunConfig,
    initial_state,
    load_checkpoint,
    parameter_count,
    save_checkpoint,
    synthetic_data,
    train_step,
    write_result,
)

CONFIG = RunConfig(steps=30, hidden=16, seed=3)
X, Y = synthetic_data(CONFIG.seed)


def _result_bytes(state, tmp: Path) -> bytes:
    out = tmp / "result.npy"
    write_result(state, out)
    return out.read_bytes()


def _unmoved(tmp: Path) -> bytes:
    state = initial_state(CONFIG)
    while state.step < CONFIG.steps:
        train_step(state, X, Y)
    return _result_bytes(state, tmp)


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(0, CONFIG.steps), max_size=4).map(sorted))
def test_checkpoint_and_resume_at_any_steps_gives_the_unmoved_result(tmp_path_factory, cuts):
    tmp = tmp_path_factory.mktemp("ref")
    state = initial_state(CONFIG)
    for i, cut in enumerate(cuts):
        while state.step < cut:
            train_step(state, X, Y)
        written = save_checkpoint(state, CONFIG, tmp / f"ckpt-{i}")
        state = load_checkpoint(written, CONFIG)  # a fresh state object, as in a new process
    while state.step < CONFIG.steps:
        train_step(state, X, Y)
    assert _result_bytes(state, tmp) == _unmoved(tmp_path_factory.mktemp("unmoved"))


def test_the_checkpoint_holds_weights_and_both_adam_moments_in_float32(tmp_path):
    state = initial_state(CONFIG)
    train_step(state, X, Y)
    written = save_checkpoint(state, CONFIG, tmp_path)
    arrays = sum(p.stat().st_size for p in written.glob("*.npy"))
    assert (tmp_path / "LATEST").read_text() == written.name
    assert 12 * parameter_count(CONFIG.hidden) <= arrays < 12 * parameter_count(CONFIG.hidden) + 12 * 128 * 12


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    written = save_checkpoint(initial_state(CONFIG), CONFIG, tmp_path)
    try:
        load_checkpoint(written, RunConfig(CONFIG.steps, CONFIG.hidden + 1, CONFIG.seed))
    except SystemExit as exc:
        assert "hidden=16" in str(exc)
    else:
        raise AssertionError("a checkpoint of another model shape was loaded")


def _run(tmp: Path, *args: str, resume_from: Path | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TOOGREEN_CHECKPOINT_DIR": str(tmp / "ckpt"), "TOOGREEN_OUTPUT": str(tmp / "out.npy"),
           "TOOGREEN_PROGRESS": str(tmp / "progress.json")}  # fmt: skip
    env.pop("TOOGREEN_RESUME_FROM", None)
    if resume_from:
        env["TOOGREEN_RESUME_FROM"] = str(resume_from)
    argv = [sys.executable, "-m", "toogreen.workloads.reference", "--steps", "120", "--hidden", "32", *args]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for_progress(tmp: Path, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not (tmp / "progress.json").exists():
        assert time.monotonic() < deadline, "no progress reported"
        time.sleep(0.02)


def test_signals_move_a_real_process_twice_and_step_padding_changes_nothing(tmp_path):
    plain = _run(tmp_path / "plain")
    assert plain.wait(30) == 0
    expected = hashlib.sha256((tmp_path / "plain" / "out.npy").read_bytes()).hexdigest()

    moved = tmp_path / "moved"
    resume_from = None
    for _stint in range(2):
        (moved / "progress.json").unlink(missing_ok=True)
        proc = _run(moved, "--step-ms", "10", resume_from=resume_from)
        _wait_for_progress(moved)
        proc.send_signal(signal.SIGUSR1)  # a periodic checkpoint: it goes on
        time.sleep(0.2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)  # a move: checkpoint and exit 0
        assert proc.wait(30) == 0
        assert not (moved / "out.npy").exists()
        resume_from = moved / "ckpt" / (moved / "ckpt" / "LATEST").read_text()
        step = int(resume_from.name.split("-")[1])
        assert 0 < step < 120
    last = _run(moved, resume_from=resume_from)
    assert last.wait(30) == 0
    assert hashlib.sha256((moved / "out.npy").read_bytes()).hexdigest() == expected
