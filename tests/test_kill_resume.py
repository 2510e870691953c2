"""kill -9 at three points of one micro run (a kill, a resume killed again, ...), then
``--resume`` to the end: the same final step, stage ends and promotion as an uninterrupted
run, no completed stage redone. tests/kill_harness.py has the run and the checks;
benchmarks/bench_kill_resume.py runs ten independent points."""

from __future__ import annotations

import random

import pytest
from kill_harness import KillPoint, problems_after, resume, run_and_kill, train_cmd

pytestmark = pytest.mark.slow


def test_three_kills_then_resume_end_where_an_uninterrupted_run_ends(tmp_path, bin_dir, repo_root):
    rng = random.Random(13)  # fixed points, spread over the run's 8 steps
    points = [KillPoint(after_steps=s, delay=rng.uniform(0.0, 0.4)) for s in (1, 4, 6)]
    out = tmp_path / "run"
    kills = []
    for i, point in enumerate(points):
        kills.append(
            run_and_kill(
                train_cmd(bin_dir, repo_root, out, resume=i > 0), out, point, cwd=repo_root
            )
        )
    assert all(k.killed for k in kills), [k.steps_logged for k in kills]
    res, _ = resume(train_cmd(bin_dir, repo_root, out, resume=True), cwd=repo_root)
    assert res.returncode == 0, res.stderr[-3000:]
    assert problems_after(out, kills, resumes=len(points)) == []
