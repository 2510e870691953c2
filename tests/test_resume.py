"""`kill -9` in the middle of a stage, then `kk-train --resume`.

The resumed run must lose at most the steps since the last checkpoint (they are redone,
their records dropped once) and end with the same number of steps as an uninterrupted run
of the same config (3 stages x 3 steps = 9; test_train_smoke checks the uninterrupted run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from kill_harness import train_cmd

from curriculum import run_records as rr

STEPS = 3
TOTAL = 3 * STEPS
OVERRIDES = [f"stages.{name}.steps={STEPS}" for name in ("warmup", "explore", "anneal")] + [
    "eval.enabled=false"
]

pytestmark = pytest.mark.slow


def _cmd(bin_dir, repo_root, out, *extra):
    return train_cmd(bin_dir, repo_root, out, *extra, overrides=OVERRIDES)


def _checkpoint_step(out):
    state = rr.read_state(out) or {}
    last = state.get("last_checkpoint")
    if not last:
        return None
    ts = out / last / "trainer_state.json"
    return json.loads(ts.read_text())["global_step"] if ts.is_file() else None


def test_kill_then_resume(tmp_path, bin_dir, repo_root):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _cmd(bin_dir, repo_root, out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=repo_root,
        start_new_session=True,
    )
    # Kill once a mid-stage step checkpoint exists and at least one later step is logged:
    # checkpoint_every=2 in micro.yaml gives step-4 inside the explore stage (steps 4-6).
    deadline = time.monotonic() + 300
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        ckpt = _checkpoint_step(out)
        logged = len(rr.read_metrics(out)) if (out / rr.METRICS_FILE).exists() else 0
        if ckpt is not None and ckpt >= 4 and logged > ckpt:
            os.killpg(proc.pid, signal.SIGKILL)
            killed_at = (ckpt, logged)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished or stalled before it could be killed"
    # What the killed process left behind (it may have got a little further than we saw).
    ckpt_step = _checkpoint_step(out)
    logged = len(rr.read_metrics(out))
    assert ckpt_step >= killed_at[0] and logged < TOTAL

    resumed = subprocess.run(
        _cmd(bin_dir, repo_root, out, "--resume"),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=repo_root,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    metrics = rr.read_metrics(out)
    # Same number of steps as an uninterrupted run, each step recorded exactly once.
    assert [m.global_step for m in metrics] == list(range(1, TOTAL + 1))
    assert [m.stage for m in metrics] == ["warmup"] * 3 + ["explore"] * 3 + ["anneal"] * 3
    state = rr.read_state(out)
    assert state["global_step"] == TOTAL
    assert state["completed_stages"] == ["warmup", "explore", "anneal"]

    resume_events = [e for e in rr.read_events(out) if e.kind == "resume"]
    assert len(resume_events) == 1
    ev = resume_events[0]
    # It restarted from the last checkpoint and lost exactly the steps logged after it.
    assert ev.global_step == ckpt_step
    assert ev.data["dropped_steps"] == logged - ckpt_step
    completions = rr.read_completions(out)
    assert sorted({c.global_step for c in completions}) == list(range(1, TOTAL + 1))
    assert len(completions) == TOTAL  # samples_per_step = 1 in micro.yaml: no duplicates


def test_resume_without_run_is_a_user_error(tmp_path, bin_dir, repo_root):
    res = subprocess.run(
        _cmd(bin_dir, repo_root, tmp_path / "nothing", "--resume"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo_root,
    )
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "no run" in res.stderr


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, bin_dir, repo_root):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _cmd(bin_dir, repo_root, out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=repo_root,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / rr.METRICS_FILE).exists() and rr.read_metrics(out):
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "--resume" in err
    steps = [m.global_step for m in rr.read_metrics(out)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < TOTAL
    # The checkpoint is at the last recorded step: nothing done is lost.
    assert _checkpoint_step(out) == steps[-1]
    assert [e.kind for e in rr.read_events(out)][-1] == "interrupt"
