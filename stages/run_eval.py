"""The run's held-out evaluations: the base model before stage 1, checkpoints at stage ends.

``eval/heldout.jsonl`` holds the held-out set (``curriculum.data.heldout_records``, disjoint
from every stage's puzzles); ``eval/<label>.json`` one ``EvalResult`` per label (``base``,
``stage-<name>``), written once, so a resumed run skips what is already evaluated.

Every process takes part (``stages.evaluation.heldout.evaluate``): with N processes each one
generates every N-th prompt, the shards are gathered in the held-out set's order, and every
process scores the same whole set; the main process writes the result. No process waits at
a collective the others skip, and each waits at the gather for the slowest shard only (the
shards differ by one prompt at most). Greedy decoding (the default) gives the one-process
result; with sampling the draws depend on the shard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from curriculum import run_records as rr
from stages.evaluation.heldout import evaluate, generate_completions
from stages.run_context import RunContext
from stages.scaleout.launch import broadcast_from_main, gather_from_all, process_index, world_size

__all__ = [
    "EVAL_DIR",
    "HELDOUT_FILE",
    "evaluate_into_run",
    "needs_evaluation",
    "sharded_generate",
    "whole_model_loading",
    "write_heldout",
]

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
    """Whether ``label`` is still to be evaluated: eval on, a held-out set,
    ``eval.eval_base`` for the base model, and no result file yet (as the main process sees
    the run directory: every process gets its answer)."""
    cfg = ctx.config.eval
    if not cfg.enabled or not heldout:
        return False
    if label == "base" and not cfg.eval_base:
        return False
    return bool(broadcast_from_main(not _result_path(ctx.run_dir, label).exists()))


def sharded_generate(rank: int, processes: int) -> Callable[..., Any]:
    """``generate_completions`` over ``processes`` processes: this one generates prompts
    ``rank``, ``rank + processes``, ...; the result, gathered from all, is in prompt order.
    Every process must call it with the same prompts."""

    def generate(model: Any, tokenizer: Any, prompts: Sequence[str], **kwargs: Any) -> Any:
        mine = list(prompts)[rank::processes]
        part = generate_completions(model, tokenizer, mine, **kwargs) if mine else ([], [], [])
        texts: list[Any] = [None] * len(prompts)
        lengths: list[Any] = [None] * len(prompts)
        truncs: list[Any] = [None] * len(prompts)
        for r, (t, n, c) in enumerate(gather_from_all(part)):
            for j, i in enumerate(range(r, len(prompts), processes)):
                texts[i], lengths[i], truncs[i] = t[j], n[j], c[j]
        return texts, lengths, truncs

    return generate


@contextmanager
def whole_model_loading() -> Iterator[None]:
    """Load models whole (every process its own copy) while a ZeRO-3 trainer config is
    registered: transformers would otherwise build them partitioned (``zero.Init``), and an
    evaluation model then holds empty weights ("Padding_idx must be within num_embeddings").
    """
    import transformers
    from transformers.integrations import deepspeed as hf_deepspeed

    if not hf_deepspeed.is_deepspeed_zero3_enabled():
        yield
        return
    if not hasattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref"):
        raise RuntimeError(
            f"transformers {transformers.__version__}: integrations.deepspeed has no "
            "_hf_deepspeed_config_weak_ref; kk-rl's ZeRO-3 evaluation is written for 5.x < 5.18"
        )
    registered = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = registered


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
    """Evaluate ``model`` on the held-out set with ``eval.*``, sharded over the processes
    (every process calls it); the main process writes eval/<label>.json and an ``eval``
    event. The model's train/eval mode is restored afterwards."""
    cfg = ctx.config.eval
    out = _result_path(ctx.run_dir, label)
    processes = world_size()
    ctx.printer(
        f"[eval] {label}: {len(heldout)} held-out puzzles"
        + (f" over {processes} processes" if processes > 1 else "")
    )
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
        generate=sharded_generate(process_index(), processes) if processes > 1 else None,
        settings_extra={"processes": processes},
    )
    model.train(was_training)
    if not ctx.is_main:
        return
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
