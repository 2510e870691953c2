"""`kk-train --stage all` on micro settings with dynamic sampling in the warm-up.

The micro model's completions all get -3 from the two Logic-RL rewards; a length-shaped
reward gives some groups reward spread, so some are dropped and refilled. One uninterrupted
run (module fixture); then the same run stopped by Ctrl-C in the middle of the warm-up
and resumed must record every step exactly as the uninterrupted one did.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from curriculum import run_records as rr

WARMUP = 6
TOTAL = WARMUP + 2 + 2  # explore and anneal keep micro.yaml's 2 steps each
OVERRIDES = [
    "stages.warmup.dynamic_sampling.enabled=true",
    f"stages.warmup.steps={WARMUP}",
    "rewards=[{name: logic_rl_format}, {name: logic_rl_answer}, {name: cosine_length, weight: 0.5}]",
    "eval.enabled=false",
]
# kk-train, with a Ctrl-C sent to itself at the end of global step 3 (mid warm-up).
INTERRUPT_AT_STEP_3 = """
import os, signal, sys
from stages import callbacks
from stages.cli import main
step_end = callbacks.KKRunCallback.on_step_end
def on_step_end(self, args, state, control, **kwargs):
    if state.global_step == 3:
        os.kill(os.getpid(), signal.SIGINT)
    return step_end(self, args, state, control, **kwargs)
callbacks.KKRunCallback.on_step_end = on_step_end
sys.exit(main(sys.argv[1:]))
"""

pytestmark = pytest.mark.slow


def _args(repo_root, out, *extra):
    config = str(repo_root / "configs" / "micro.yaml")
    where = ["--config", config, "--output-dir", str(out), "--no-dashboard"]
    return ["--stage", "all", *where, *extra, *OVERRIDES]


def _run(cmd, repo_root):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=repo_root)


@pytest.fixture(scope="module")
def run(tmp_path_factory, bin_dir, repo_root):
    out = tmp_path_factory.mktemp("dynamic") / "run"
    proc = _run([str(bin_dir / "kk-train"), *_args(repo_root, out)], repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    return out, proc


def test_warmup_drops_and_refills_zero_std_groups(run):
    out, proc = run
    metrics = rr.read_metrics(out)
    assert [m.global_step for m in metrics] == list(range(1, TOTAL + 1))
    warmup = [m for m in metrics if m.stage == "warmup"]
    assert len(warmup) == WARMUP
    assert sum(m.zero_std_groups_dropped for m in warmup) > 0
    assert max(m.generation_rounds for m in warmup) > 1
    for m in warmup:
        assert m.batch_filled is not None and 1 <= m.generation_rounds <= 3
        assert m.groups_generated >= 2  # prompts_per_step, plus the refills
        assert m.zero_std_groups_generated >= m.zero_std_groups_dropped
        if m.batch_filled:
            assert m.frac_zero_std_groups == 0.0  # trained on groups with spread only
        else:
            assert m.generation_rounds == 3 and m.frac_zero_std_groups > 0
    for m in metrics[WARMUP:]:  # explore and anneal: dynamic sampling off
        assert (m.batch_filled, m.generation_rounds, m.zero_std_groups_dropped) == (None, 1, 0)
        assert m.groups_generated == 2
    assert "zero-std seen" in proc.stdout and "Traceback" not in proc.stderr
    unfilled = [m.global_step for m in warmup if m.batch_filled is False]
    alerted = [
        e.global_step
        for e in rr.read_events(out)
        if e.kind == "alert" and e.data.get("key") == "unfilled_batch"
    ]
    assert bool(alerted) == bool(unfilled) and set(alerted) <= set(unfilled)


def test_extra_rounds_leave_the_lr_curve_and_the_steps_alone(run):
    from curriculum.config import from_yaml_text
    from curriculum.schedules import run_learning_rate

    out = run[0]
    config = from_yaml_text((out / rr.CONFIG_FILE).read_text())
    for m in rr.read_metrics(out):
        assert m.learning_rate == pytest.approx(run_learning_rate(config, m.global_step), rel=1e-6)
    assert rr.read_state(out)["global_step"] == TOTAL


def test_kk_analyze_reports_dynamic_sampling(run):
    from analysis.report import markdown
    from analysis.runs import analyse_run

    analysis = analyse_run(run[0])
    [warmup] = analysis.dynamic_sampling
    metrics = [m for m in rr.read_metrics(run[0]) if m.stage == "warmup"]
    assert warmup["zero_std_dropped"] == sum(m.zero_std_groups_dropped for m in metrics)
    assert "## Dynamic sampling" in markdown([analysis], {}, run[0])


def test_resume_mid_stage_records_the_same_steps(run, tmp_path, bin_dir, repo_root):
    out = tmp_path / "run"
    stopped = _run([sys.executable, "-c", INTERRUPT_AT_STEP_3, *_args(repo_root, out)], repo_root)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert [m.global_step for m in rr.read_metrics(out)] == [1, 2, 3]
    resumed = _run([str(bin_dir / "kk-train"), *_args(repo_root, out, "--resume")], repo_root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    def facts(run_dir):
        timing = {"time", "step_seconds", "tokens_per_second"}
        return [
            {k: v for k, v in dataclasses.asdict(m).items() if k not in timing}
            for m in rr.read_metrics(run_dir)
        ]

    # The same prompts, refills, completions, rewards and losses: the resumed steps 4-10
    # continue the RNG stream of the uninterrupted run.
    assert facts(out) == facts(run[0])
    assert [c.completion for c in rr.read_completions(out)] == [
        c.completion for c in rr.read_completions(run[0])
    ]
