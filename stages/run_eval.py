"""The run's held-out evaluations: the base model before stage 1, checkpoints at stage ends.

``eval/heldout.jsonl`` holds the held-out set (``curriculum.data.heldout_records``, disjoint
from every stage's puzzles); ``eval/<label>.json`` one ``EvalResult`` per label (``base``,
``stage-<name>``), written once, so a resumed run skips what is already evaluated.
Evaluation runs on the main process only, with ``stages.evaluation.heldout.evaluate``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from curriculum import run_records as rr
from stages.evaluation.heldout import evaluate
from stages.run_context import RunContext

__all__ = ["EVAL_DIR", "HELDOUT_FILE", "evaluate_into_run", "needs_evaluation", "write_heldout"]

EVAL_DIR = "eval"
HELDOUT_FILE = "heldout.jsonl"


def write_heldout(run_dir: Path, records: Sequence[dict[str, Any]]) -> Path:
    """Write the held-out set to eval/heldout.jsonl (what kk-eval and the report read back)."""
    path = run_dir / EVAL_DIR / HELDOUT_FILE
    path.parent.mkdir(exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    rr.atomic_write_text(path, text)
    return path


def _result_path(run_dir: Path, label: str) -> Path:
    return run_dir / EVAL_DIR / f"{label}.json"


def needs_evaluation(ctx: RunContext, label: str, heldout: Sequence[dict[str, Any]]) -> bool:
    """Whether ``label`` is still to be evaluated: eval on, a held-out set, the main process,
    ``eval.eval_base`` for the base model, and no result file yet."""
    cfg = ctx.config.eval
    if not cfg.enabled or not heldout or not ctx.is_main:
        return False
    if label == "base" and not cfg.eval_base:
        return False
    return not _result_path(ctx.run_dir, label).exists()


def evaluate_into_run(
    ctx: RunContext,
    label: str,
    model: Any,
    tokenizer: Any,
    heldout: Sequence[dict[str, Any]],
    *,
    stage: str | None,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Evaluate ``model`` on the held-out set with ``eval.*``; write eval/<label>.json and an
    ``eval`` event. The model's train/eval mode is restored afterwards."""
    cfg = ctx.config.eval
    out = _result_path(ctx.run_dir, label)
    ctx.printer(f"[eval] {label}: {len(heldout)} held-out puzzles")
    was_training = model.training
    t0 = time.perf_counter()
    result = evaluate(
        model,
        tokenizer,
        heldout,
        samples=int(cfg.samples),
        temperature=float(cfg.temperature),
        max_new_tokens=int(cfg.max_new_tokens),
        batch_size=int(cfg.batch_size),
        prefill_think=bool(ctx.config.prompt.prefill_think),
        seed=int(cfg.seed),
        progress=on_progress,
    )
    model.train(was_training)
    data = result.to_dict()
    data["label"] = label
    data["stage"] = stage
    data["global_step"] = int(ctx.state.global_step)
    rr.atomic_write_text(out, json.dumps(data, indent=2))
    parts = [
        f"{p}p strict {g.strict.value:.3f} lenient {g.lenient.value:.3f}"
        for p, g in sorted(result.groups.items())
    ]
    ctx.event(
        "eval",
        stage,
        f"eval {label} ({time.perf_counter() - t0:.0f}s): " + "; ".join(parts),
        {"label": label, "file": str(out.relative_to(ctx.run_dir))},
    )
