"""kill -9 a micro ``kk-train`` run at chosen points, resume it, and check what survived.

Shared by tests/test_kill_resume.py (3 points, CI) and benchmarks/bench_kill_resume.py
(10 points). The run: configs/micro.yaml with 3 steps per stage and a warm-up promotion
rule that always holds from stage step 2 (``accuracy_at_least: 0.0``, window 1), so an
uninterrupted run promotes warmup at global step 2 and has 2 + 3 + 3 = 8 steps; a lost
promotion would give 9. With ``checkpoint_every: 2`` it writes step-2 (renamed to
stage-warmup: the promotion step), step-4, stage-explore (5), step-6 and stage-anneal (8).

A kill point is "once this process has logged global step ``after_steps`` (0: once state.json
exists), wait ``delay`` seconds", so the points fall on steps, checkpoint saves and stage
hand-overs alike, not mostly on start-up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curriculum import run_records as rr

STAGES = ("warmup", "explore", "anneal")
STEPS_PER_STAGE = 3
OVERRIDES = [f"stages.{s}.steps={STEPS_PER_STAGE}" for s in STAGES] + [
    "stages.warmup.promotion.accuracy_at_least=0.0",
    "stages.warmup.promotion.window=1",
    "stages.warmup.promotion.min_steps=2",
]
# Hand-computed from the rule above: warmup ends at its step 2, the others run 3 steps.
STAGE_ENDS = {"warmup": 2, "explore": 5, "anneal": 8}
TOTAL = STAGE_ENDS["anneal"]
EXPECTED_STAGE_OF_STEP = ["warmup"] * 2 + ["explore"] * 3 + ["anneal"] * 3


def train_cmd(
    bin_dir: Path,
    repo_root: Path,
    out: Path,
    *extra: str,
    resume: bool = False,
    overrides: Sequence[str] = OVERRIDES,
) -> list[str]:
    """``kk-train`` on configs/micro.yaml into ``out`` (no dashboard) with ``overrides``."""
    return [
        str(bin_dir / "kk-train"),
        "--config",
        str(repo_root / "configs" / "micro.yaml"),
        "--output-dir",
        str(out),
        "--no-dashboard",
        *(["--resume"] if resume else []),
        *extra,
        *overrides,
    ]


@dataclass
class KillPoint:
    after_steps: int  # global step this process must have logged first (0: none)
    delay: float  # then this many seconds


@dataclass
class Killed:
    """What a killed run left: None fields when it finished before the kill point."""

    point: KillPoint
    killed: bool
    seconds: float  # from the start of the process to the kill
    steps_logged: int = 0
    last_checkpoint: str | None = None
    stage_ends: dict[str, int] = field(default_factory=dict)
    completed_metrics: list[str] = field(default_factory=list)  # lines of completed stages


def _logged(out: Path) -> int:
    return len(rr.read_metrics(out)) if (out / rr.METRICS_FILE).exists() else 0


def _reached(out: Path, step: int, since: float) -> bool:
    """Whether a process started at wall time ``since`` has logged global step ``step``."""
    if not (out / rr.STATE_FILE).is_file():
        return False
    return step <= 0 or any(m.global_step >= step and m.time >= since for m in rr.read_metrics(out))


def run_and_kill(cmd: list[str], out: Path, point: KillPoint, *, cwd: Path) -> Killed:
    """Start ``cmd``, SIGKILL its process group at ``point`` (once state.json exists, so
    there is a run to resume), and snapshot what it left."""
    t0, since = time.monotonic(), time.time()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        start_new_session=True,
    )
    deadline = t0 + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if _reached(out, point.after_steps, since):
            break
        time.sleep(0.02)
    if proc.poll() is None:
        time.sleep(point.delay)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    seconds = time.monotonic() - t0
    state = rr.read_state(out) or {}
    ends = {str(k): int(v) for k, v in (state.get("stage_ends") or {}).items()}
    last_end = max(ends.values(), default=0)
    lines = []
    if (out / rr.METRICS_FILE).exists():
        text = (out / rr.METRICS_FILE).read_text(encoding="utf-8")
        lines = [ln for ln in text.splitlines(keepends=True) if ln.endswith("\n")]
    return Killed(
        point=point,
        killed=killed,
        seconds=seconds,
        steps_logged=_logged(out),
        last_checkpoint=state.get("last_checkpoint"),
        stage_ends=ends,
        completed_metrics=lines[:last_end],
    )


def resume(cmd: list[str], *, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd)
    return res, time.monotonic() - t0


def problems_after(out: Path, kills: list[Killed], resumes: int) -> list[str]:
    """Everything wrong with the finished run in ``out`` after ``kills`` and ``resumes``
    ``--resume`` runs (empty = fine)."""
    found: list[str] = []
    metrics = rr.read_metrics(out)
    steps = [m.global_step for m in metrics]
    if steps != list(range(1, TOTAL + 1)):
        found.append(f"metrics steps {steps}, expected 1..{TOTAL} once each")
    if [m.stage for m in metrics] != EXPECTED_STAGE_OF_STEP:
        found.append(f"stages of the steps: {[m.stage for m in metrics]}")
    state: dict[str, Any] = rr.read_state(out) or {}
    if state.get("global_step") != TOTAL or state.get("stage") is not None:
        found.append(f"state: global_step {state.get('global_step')}, stage {state.get('stage')}")
    if state.get("stage_ends") != STAGE_ENDS or state.get("completed_stages") != list(STAGES):
        found.append(f"state: ends {state.get('stage_ends')}, done {state.get('completed_stages')}")
    promos = [(p["stage"], p["global_step"]) for p in state.get("promotions", [])]
    if promos != [("warmup", STAGE_ENDS["warmup"])]:
        found.append(f"state promotions {promos}")
    text = (out / rr.METRICS_FILE).read_text(encoding="utf-8")
    for k in kills:
        for stage, end in k.stage_ends.items():
            if STAGE_ENDS.get(stage) != end:
                found.append(f"stage {stage} ended at {end} before a kill, {STAGE_ENDS[stage]} now")
        if not text.startswith("".join(k.completed_metrics)):
            found.append("a completed stage's step records were rewritten after a kill")
    events = rr.read_events(out)
    for kind in ("stage_start", "stage_end"):
        got = [e.stage for e in events if e.kind == kind]
        if got != list(STAGES):
            found.append(f"{kind} events {got}")
    for kind in ("promotion", "run_end"):
        if sum(e.kind == kind for e in events) != 1:
            found.append(f"{sum(e.kind == kind for e in events)} {kind} events, expected 1")
    # A resume killed during start-up writes no resume event; the last one always does.
    n_resume = sum(e.kind == "resume" for e in events)
    if not (resumes == 0 or 1 <= n_resume <= resumes):
        found.append(f"{n_resume} resume events after {resumes} resumes")
    if len(rr.read_completions(out)) != TOTAL:
        found.append(f"{len(rr.read_completions(out))} completion samples, expected {TOTAL}")
    root = out / rr.CHECKPOINTS_DIR
    for stage, end in STAGE_ENDS.items():
        ts = root / f"stage-{stage}" / "trainer_state.json"
        if not ts.is_file() or f'"global_step": {end}' not in ts.read_text(encoding="utf-8"):
            found.append(f"checkpoints/stage-{stage} missing or not at step {end}")
    leftovers = sorted(
        p.name for p in root.iterdir() if p.name.startswith(".") and p.name != ".trainer"
    )
    if leftovers:
        found.append(f"leftover folders in checkpoints/: {leftovers}")
    for label in ("base", "stage-anneal"):
        if not (out / "eval" / f"{label}.json").is_file():
            found.append(f"eval/{label}.json missing")
    if not (out / rr.REPORT_FILE).is_file():
        found.append("report.md missing")
    return found
