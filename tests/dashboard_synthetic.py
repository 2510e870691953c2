"""Synthetic run directories for the dashboard's tests, its benchmark and demos.

Writes exactly what a training run writes (run.json, metrics.jsonl, completions.jsonl,
events.jsonl) with plausible curves, optionally one step at a time with a delay so that
``kk-train watch`` can follow it:

    python tests/dashboard_synthetic.py runs/demo --steps 30 20 10 --delay 0.2

>>> import tempfile
>>> from curriculum import run_records as rr
>>> with tempfile.TemporaryDirectory() as d:
...     info = write_synthetic_run(d, steps_per_stage=(3, 2, 2))
...     [len(rr.read_metrics(d)), rr.read_events(d)[-1].kind]
[7, 'run_end']
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from curriculum import run_records as rr

__all__ = ["synthetic_info", "synthetic_step", "write_synthetic_run"]

_STAGES = (
    ("format", {"3": 1.0}, 16, 1.0, 1.0),
    ("explore", {"3": 0.5, "4": 0.5}, 12, 1.2, 1.2),
    ("refine", {"4": 1.0}, 8, 1.2, 0.9),
)

_COMPLETION = (
    "<think>\nSuppose Zoey is a knight. Then her statement holds, so Ethan is a knave.\n"
    "Ethan says Zoey is a knave: false, consistent.\nCheck Mia: she says both are knights: "
    "false, so Mia is a knave.\nEverything is consistent.\n</think>\n<answer>\n"
    "(1) Zoey is a knight\n(2) Ethan is a knave\n(3) Mia is a knave\n</answer>"
)
_TRUTH = "(1) Zoey is a knight\n(2) Ethan is a knave\n(3) Mia is a knave"


def synthetic_info(
    steps_per_stage: Sequence[int] = (20, 15, 10), started_at: float | None = None
) -> rr.RunInfo:
    plans, start = [], 1
    for (name, people, n, t0, t1), steps in zip(_STAGES, steps_per_stage, strict=False):
        plans.append(
            rr.StagePlan(
                name=name,
                people=people,
                num_generations=n,
                prompts_per_step=4,
                start_step=start,
                end_step=start + steps - 1,
                temperature_start=t0,
                temperature_end=t1,
                temperature_schedule="cosine" if t0 != t1 else "constant",
            )
        )
        start += steps
    return rr.RunInfo(
        run_name="synthetic",
        model="tiny (synthetic)",
        device="cpu",
        started_at=time.time() if started_at is None else started_at,
        total_steps=start - 1,
        stages=plans,
    )


def synthetic_step(
    plan: rr.StagePlan, global_step: int, when: float, rng: random.Random, **overrides: Any
) -> rr.StepMetrics:
    """A plausible step: format errors fall, accuracy creeps up, length dips then grows."""
    stage_step = global_step - plan.start_step + 1
    x = global_step / 40.0
    fmt_err = max(0.0, 0.8 * math.exp(-3 * x) + rng.uniform(-0.03, 0.03))
    correct = min(1.0, 0.1 + 0.3 * x + rng.uniform(-0.05, 0.05))
    unparsed = 0.05 * (1 - fmt_err)
    wrong = max(0.0, 1.0 - fmt_err - correct - unparsed)
    length = 120 - 40 * math.exp(-((x - 0.4) ** 2) * 8) + 30 * x + rng.uniform(-5, 5)
    values: dict[str, Any] = dict(
        stage=plan.name,
        global_step=global_step,
        stage_step=stage_step,
        time=when,
        step_seconds=1.0,
        reward_mean=-1 + 2 * (1 - fmt_err) + 2 * correct - 1.5 * wrong,
        reward_std=0.8,
        rewards={"logic_rl_format": 1 - 2 * fmt_err, "logic_rl_answer": 2 * correct - wrong},
        format_error_ratio=fmt_err,
        all_correct_ratio=correct,
        wrong_answer_ratio=wrong,
        unparsed_ratio=unparsed,
        completion_length_mean=length,
        completion_length_min=length * 0.5,
        completion_length_max=length * 1.8,
        truncation_ratio=0.02,
        frac_zero_std_groups=0.25,
        learning_rate=1e-4,
        temperature=plan.temperature_start,
        num_generations=plan.num_generations,
        tokens_per_second=900.0 + rng.uniform(-50, 50),
        loss=0.01 + rng.uniform(-0.005, 0.005),
        kl=0.001 * global_step,
        entropy=1.5 - 0.01 * global_step,
        grad_norm=0.5,
        top_answer_pattern="KNN",
        top_answer_pattern_share=0.3,
        top_answer_pattern_truth_share=0.25,
    )
    values.update(overrides)
    return rr.StepMetrics(**values)


def write_synthetic_run(
    run_dir: str | os.PathLike[str],
    steps_per_stage: Sequence[int] = (20, 15, 10),
    *,
    delay: float = 0.0,
    finish: bool = True,
    seed: int = 0,
    overrides: Callable[[int], dict[str, Any]] | None = None,
) -> rr.RunInfo:
    """Write a whole run (``delay`` seconds between steps); ``overrides(step)`` changes fields."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    info = synthetic_info(steps_per_stage)
    rr.write_run_info(run, info)
    when = info.started_at
    for plan in info.stages:
        rr.append_record(
            run / rr.EVENTS_FILE, rr.RunEvent(when, plan.start_step - 1, "stage_start", plan.name)
        )
        for step in range(plan.start_step, plan.end_step + 1):
            if delay:
                time.sleep(delay)
                when = time.time()
            else:
                when += 1.0
            extra = overrides(step) if overrides else {}
            m = synthetic_step(plan, step, when, rng, **extra)
            rr.append_record(run / rr.METRICS_FILE, m)
            rr.append_record(
                run / rr.COMPLETIONS_FILE,
                rr.CompletionSample(
                    stage=plan.name,
                    global_step=step,
                    puzzle_id=f"p{step:05d}",
                    people=3,
                    completion=_COMPLETION,
                    format=1.0,
                    answer=2.0,
                    total=3.0,
                    kind="correct",
                    reason="all identities right",
                    solution_text_format=_TRUTH,
                    temperature=plan.temperature_start,
                ),
            )
        rr.append_record(
            run / rr.EVENTS_FILE, rr.RunEvent(when, plan.end_step, "stage_end", plan.name)
        )
    if finish:
        rr.append_record(run / rr.EVENTS_FILE, rr.RunEvent(when, info.total_steps, "run_end"))
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a synthetic run directory.")
    parser.add_argument("run_dir")
    parser.add_argument("--steps", type=int, nargs=3, default=(20, 15, 10))
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--no-finish", action="store_true")
    args = parser.parse_args(argv)
    write_synthetic_run(args.run_dir, args.steps, delay=args.delay, finish=not args.no_finish)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
