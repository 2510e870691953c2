"""Synthetic run directories with the three SPEC §7.3 phases (benchmarks, tests, demos).

``write_synthetic_run(path, steps=300, completions_per_step=8)`` writes ``run.json``,
``metrics.jsonl``, ``completions.jsonl`` and ``events.jsonl`` in the schema of
``curriculum.run_records``: format error falls while length shrinks (stage 1), length grows
with reflection phrases (stage 2), then length blows up with repetition and truncation
(stage 3). Deterministic for a seed.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

from curriculum import run_records as rr

NAMES = ["Zoey", "Bob", "Ann", "Cid", "Dee", "Eli", "Fay", "Gus"]
FILLER = (
    "if Zoey is a knight then Bob is a knave so the claim holds and we continue with the "
    "next person whose statement says that Ann is a knight or Cid is a knave"
).split()


def _truth(rng: random.Random, people: int) -> tuple[list[bool], str]:
    sol = [rng.random() < 0.5 for _ in range(people)]
    text = "\n".join(
        f"({i + 1}) {NAMES[i]} is a {'knight' if s else 'knave'}" for i, s in enumerate(sol)
    )
    return sol, text


def _completion(rng: random.Random, words: int, fmt_ok: bool, reflect: float, repeat: bool,
                people: int, answer: list[bool], truncate: bool) -> str:  # fmt: skip
    body = []
    for _ in range(words):
        if rng.random() < reflect:
            body.append(rng.choice(["wait,", "let me verify", "re-check", "alternatively"]))
        elif repeat and rng.random() < 0.01:
            body.append("验证")  # language mixing late in a blown-up run
        else:
            body.append(rng.choice(FILLER))
    if repeat:
        body = (body[:20] or ["loop"]) * max(1, len(body) // 20)
    think = " ".join(body)
    claims = "\n".join(
        f"({i + 1}) {NAMES[i]} is a {'knight' if a else 'knave'}"
        for i, a in enumerate(answer[:people])
    )
    if truncate:
        return " " + think
    if fmt_ok:
        tail = " <think> wait, let me re-check" if repeat and rng.random() < 0.3 else ""
        return f" {think} </think><answer>{claims}</answer>{tail}"
    return f" {think} {claims}"


def write_synthetic_run(
    run_dir: str | Path,
    *,
    steps: int = 300,
    completions_per_step: int = 8,
    people: int = 3,
    seed: int = 0,
) -> Path:
    """Write a run directory; returns its path."""
    rng = random.Random(seed)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    b1, b2 = steps // 3, 2 * steps // 3
    plan = [("format", 1, b1), ("explore", b1 + 1, b2), ("anneal", b2 + 1, steps)]
    now = time.time()
    info = rr.RunInfo(
        run_name=run_dir.name, model="synthetic", device="cpu", started_at=now, total_steps=steps,
        stages=[rr.StagePlan(n, {str(people): 1.0}, completions_per_step, 1, a, b, 1.0, 1.0)
                for n, a, b in plan],
        output_dir=str(run_dir),
    )  # fmt: skip
    rr.write_run_info(run_dir, info)
    metric_lines, completion_lines, event_lines = [], [], []
    for name, a, b in plan:
        event_lines.append(rr.to_json_line(rr.RunEvent(now, a, "stage_start", name)))
        for step in range(a, b + 1):
            frac = (step - 1) / max(1, steps - 1)
            if step <= b1:  # format learned, length shrinks
                fmt_err = 0.9 - 0.85 * (step - 1) / max(1, b1 - 1)
                length = 120 - 60 * (step - 1) / max(1, b1 - 1)
                trunc, reflect, repeat_p = 0.02, 0.0, 0.0
            elif step <= b2:  # normal growth, reflection appears
                fmt_err, trunc = 0.05, 0.02
                length = 60 + 40 * (step - b1) / max(1, b2 - b1)
                reflect, repeat_p = 0.03, 0.0
            else:  # blow-up: length x4, truncation, repetition
                g = (step - b2) / max(1, steps - b2)
                fmt_err = 0.05 + 0.3 * g
                length = 100 + 300 * g
                trunc, reflect, repeat_p = 0.6 * g, 0.03, 0.7 * g
            acc = 0.1 + 0.3 * min(1.0, frac * 1.5) * (1 - fmt_err)
            metric = rr.StepMetrics(
                stage=name, global_step=step, stage_step=step - a + 1, time=now + step,
                step_seconds=1.0, reward_mean=-1.0 + 2.5 * acc - fmt_err, reward_std=0.5,
                rewards={"logic_rl_format": 1 - 2 * fmt_err, "logic_rl_answer": 4 * acc - 2},
                format_error_ratio=fmt_err, all_correct_ratio=acc,
                wrong_answer_ratio=max(0.0, 1 - fmt_err - acc), unparsed_ratio=0.0,
                completion_length_mean=length, completion_length_min=length * 0.5,
                completion_length_max=length * 1.6, truncation_ratio=trunc,
                frac_zero_std_groups=0.2 + 0.5 * fmt_err, learning_rate=1e-4 * (1 - 0.9 * frac),
                temperature=1.0 if name == "format" else (1.2 if name == "explore" else 1.2 - 0.3 * g),
                num_generations=completions_per_step, tokens_per_second=500.0,
                loss=0.01 * math.sin(step), kl=0.001 * step, entropy=1.0 - 0.5 * frac,
                lenient_accuracy=min(1.0, acc + 0.05), exact_format_ratio=1 - fmt_err,
            )  # fmt: skip
            metric_lines.append(rr.to_json_line(metric))
            for _ in range(completions_per_step):
                sol, truth = _truth(rng, people)
                ok = rng.random() > fmt_err
                correct = rng.random() < acc
                answer = sol if correct else [True] * people
                truncate = rng.random() < trunc
                text = _completion(rng, int(length * 0.75), ok, reflect, rng.random() < repeat_p,
                                   people, answer, truncate)  # fmt: skip
                kind = (
                    "format_error" if (not ok or truncate) else ("correct" if correct else "wrong")
                )
                sample = rr.CompletionSample(
                    stage=name, global_step=step, puzzle_id=f"p{step}-{rng.randrange(10**6)}",
                    people=people, completion=text, format=1.0 if kind != "format_error" else -1.0,
                    answer=2.0 if kind == "correct" else -1.5, total=0.0, kind=kind, reason="",
                    solution_text_format=truth, temperature=metric.temperature,
                )  # fmt: skip
                completion_lines.append(rr.to_json_line(sample))
        event_lines.append(rr.to_json_line(rr.RunEvent(now, b, "stage_end", name)))
    (run_dir / rr.METRICS_FILE).write_text("".join(metric_lines), encoding="utf-8")
    (run_dir / rr.COMPLETIONS_FILE).write_text("".join(completion_lines), encoding="utf-8")
    (run_dir / rr.EVENTS_FILE).write_text("".join(event_lines), encoding="utf-8")
    return run_dir
