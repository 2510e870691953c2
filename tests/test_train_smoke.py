"""Subprocess smoke run of `kk-train --stage all` on micro settings, read back with run_records.

One run (module fixture) of 3 stages x 3 steps; the tests check the run directory, the
stage chaining (one global step, one LR curve, AdamW state carried across stages), the
temperature schedule and the report.
"""

from __future__ import annotations

import json
import math
import subprocess

import pytest

from curriculum import run_records as rr

STEPS = 3
# A length-shaped reward gives the random micro model reward spread (so gradients, so AdamW
# moments to carry across stages); the two Logic-RL rewards alone give every group -3.
REWARDS = (
    "rewards=[{name: logic_rl_format}, {name: logic_rl_answer}, {name: cosine_length, weight: 0.5}]"
)
# Warm-up is planned for 4 steps but its promotion rule (accuracy >= 0 over 1 step, from
# stage step 3) always holds, so it is promoted at step 3 and every stage runs 3 steps.
PROMOTION = [
    "stages.warmup.steps=4",
    "stages.warmup.promotion.accuracy_at_least=0.0",
    "stages.warmup.promotion.format_error_below=null",
    "stages.warmup.promotion.window=1",
    "stages.warmup.promotion.min_steps=3",
]
OVERRIDES = [f"stages.{name}.steps={STEPS}" for name in ("explore", "anneal")] + [
    REWARDS,
    *PROMOTION,
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, bin_dir, repo_root):
    out = tmp_path_factory.mktemp("smoke") / "run"
    cmd = [
        str(bin_dir / "kk-train"),
        "--stage",
        "all",
        "--config",
        str(repo_root / "configs" / "micro.yaml"),
        "--output-dir",
        str(out),
        "--no-dashboard",
        *OVERRIDES,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    return out, proc


@pytest.fixture(scope="module")
def config(run):
    from curriculum.config import from_yaml_text

    return from_yaml_text((run[0] / rr.CONFIG_FILE).read_text())


def test_run_directory_contents(run):
    out, proc = run
    for name in (
        rr.CONFIG_FILE,
        rr.RUN_INFO_FILE,
        rr.STATE_FILE,
        rr.METRICS_FILE,
        rr.COMPLETIONS_FILE,
        rr.EVENTS_FILE,
        rr.REPORT_FILE,
        "eval/base.json",
        "eval/stage-anneal.json",
        "eval/heldout.jsonl",
    ):
        assert (out / name).is_file(), name
    ckpts = sorted(
        p.name for p in (out / rr.CHECKPOINTS_DIR).iterdir() if not p.name.startswith(".")
    )
    # Stage ends, plus the last keep_checkpoints=2 of the every-2-steps checkpoints.
    assert set(ckpts) == {"stage-warmup", "stage-explore", "stage-anneal", "step-4", "step-8"}
    assert not [c for c in ckpts if c.startswith("checkpoint-")]  # all adopted
    assert "run finished" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_metrics_one_global_step(run, config):
    metrics = rr.read_metrics(run[0])
    assert [m.global_step for m in metrics] == list(range(1, 3 * STEPS + 1))
    assert [m.stage_step for m in metrics] == list(range(1, STEPS + 1)) * 3
    assert [m.stage for m in metrics] == ["warmup"] * STEPS + ["explore"] * STEPS + [
        "anneal"
    ] * STEPS
    for m in metrics:
        stage = config.stages[m.stage]
        assert m.num_generations == stage.num_generations
        for ratio in (m.format_error_ratio, m.all_correct_ratio, m.frac_zero_std_groups):
            assert 0.0 <= ratio <= 1.0
        total = m.format_error_ratio + m.all_correct_ratio + m.wrong_answer_ratio + m.unparsed_ratio
        assert total == pytest.approx(1.0)
        assert m.exact_format_ratio == pytest.approx(1.0 - m.format_error_ratio)
        assert m.completion_length_min <= m.completion_length_mean <= m.completion_length_max
        assert m.step_seconds > 0 and m.tokens_per_second > 0
        assert set(m.rewards) == {"logic_rl_format", "logic_rl_answer", "cosine_length"}
        assert m.kl is not None and m.kl >= 0  # beta > 0 in micro.yaml: the KL is measured


def test_learning_rate_curve_is_continuous(run, config):
    from curriculum.config import apply_overrides
    from curriculum.schedules import run_learning_rate

    metrics = rr.read_metrics(run[0])
    # After the promotion the run is the 3+3+3 plan: the curve is recomputed over it.
    actual = apply_overrides(config, ["stages.warmup.steps=3"])
    for m in metrics:
        assert m.learning_rate == pytest.approx(run_learning_rate(actual, m.global_step), rel=1e-6)
    # Hand values: warm-up 1 step at 1e-4, peak until the anneal stage (steps 7-9), then
    # cosine from 1e-4 to the 1e-5 floor over 3 steps.
    lr = {m.global_step: m.learning_rate for m in metrics}
    assert lr[1] == pytest.approx(1e-4)
    assert lr[6] == pytest.approx(1e-4)
    assert lr[7] == pytest.approx(1e-5 + 9e-5 * 0.5 * (1 + math.cos(math.pi / 3)))
    assert lr[8] == pytest.approx(1e-5 + 9e-5 * 0.5 * (1 + math.cos(2 * math.pi / 3)))
    assert lr[9] == pytest.approx(1e-5)


def test_temperature_schedule(run, config):
    from curriculum.schedules import temperature_at

    for m in rr.read_metrics(run[0]):
        want = temperature_at(config.stages[m.stage], m.stage_step, STEPS)
        assert m.temperature == pytest.approx(want)
    anneal = [m.temperature for m in rr.read_metrics(run[0]) if m.stage == "anneal"]
    assert anneal == pytest.approx([1.2, 1.05, 0.9])


def test_optimizer_and_scheduler_state_carry_across_stages(run):
    torch = pytest.importorskip("torch")
    out = run[0] / rr.CHECKPOINTS_DIR
    for stage, step in (("warmup", STEPS), ("explore", 2 * STEPS), ("anneal", 3 * STEPS)):
        opt = torch.load(out / f"stage-{stage}" / "optimizer.pt", weights_only=False)
        steps = {int(s["step"]) for s in opt["state"].values()}
        # AdamW's per-parameter step counter counts every step of the run, not of the stage.
        assert steps == {step}, (stage, steps)
        sched = torch.load(out / f"stage-{stage}" / "scheduler.pt", weights_only=False)
        assert sched["last_epoch"] == step
        state = json.loads((out / f"stage-{stage}" / "trainer_state.json").read_text())
        assert state["global_step"] == step
    # AdamW's second moments live in the same per-parameter state as the step counter above,
    # so they were restored with it. They are non-zero exactly when some step of the run so
    # far had a group whose rewards differ (a GRPO gradient; beta's KL term is zero while the
    # policy equals the reference): the micro model's warm-up may score every completion alike.
    metrics = rr.read_metrics(run[0])
    for stage, step in (("warmup", STEPS), ("explore", 2 * STEPS), ("anneal", 3 * STEPS)):
        w = torch.load(out / f"stage-{stage}" / "optimizer.pt", weights_only=False)["state"]
        moments = any(float(s["exp_avg_sq"].abs().sum()) > 0 for s in w.values())
        signal = any(m.frac_zero_std_groups < 1.0 for m in metrics if m.global_step <= step)
        assert moments == signal, (stage, moments, signal)


def test_state_events_and_completions(run):
    out = run[0]
    state = rr.read_state(out)
    assert state["completed_stages"] == ["warmup", "explore", "anneal"]
    assert state["global_step"] == 3 * STEPS
    assert state["last_checkpoint"] == "checkpoints/stage-anneal"
    assert state["stage"] is None
    assert [b[1:] for b in state["stage_bounds"]] == [[1, 3], [4, 6], [7, 9]]
    assert [(p["stage"], p["global_step"]) for p in state["promotions"]] == [("warmup", 3)]
    kinds = [e.kind for e in rr.read_events(out)]
    assert kinds.count("promotion") == 1
    assert kinds.count("stage_start") == 3 and kinds.count("stage_end") == 3
    assert kinds[-1] == "run_end"
    samples = rr.read_completions(out)
    assert {s.global_step for s in samples} == set(range(1, 3 * STEPS + 1))
    for s in samples:
        assert s.kind in {"correct", "wrong", "unparsed", "format_error"}
        assert s.solution_text_format.startswith("(1) ")
        assert s.prompt and s.prompt.rstrip().endswith("<think>")
    info = rr.read_run_info(out)
    assert [p.name for p in info.stages] == ["warmup", "explore", "anneal"]
    assert [(p.start_step, p.end_step) for p in info.stages] == [(1, 3), (4, 6), (7, 9)]
    assert info.total_steps == 3 * STEPS  # refreshed after the promotion (planned 10)
    assert (out / "eval" / "heldout.jsonl").samefile(info.extra["eval_set"])


def test_checkpoint_is_a_loadable_model_folder(run):
    pytest.importorskip("torch")
    from stages.model_io import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(run[0] / rr.CHECKPOINTS_DIR / "stage-anneal")
    ids = tok("(1) Zoey is a knight")["input_ids"]
    assert tok.decode(ids) == "(1) Zoey is a knight"
    assert model.config.vocab_size >= len(tok)


def test_report_has_measured_sections(run):
    text = (run[0] / rr.REPORT_FILE).read_text()
    assert "Training, per stage" in text and "Held-out accuracy" in text
    assert "everyone a knight" in text
    for stage in ("warmup", "explore", "anneal"):
        assert f"| {stage} |" in text
    assert "| 2 | base (step 0) |" in text
    assert "| 2 | stage-anneal (step 9) |" in text
