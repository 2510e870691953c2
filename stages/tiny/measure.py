"""Measuring a tiny base model on the reserved evaluation slice, through ``stages.evaluation.heldout``.

Per person count: greedy and one temperature-1 sample per puzzle (strict and lenient
accuracy with Wilson 95% intervals, exact-format rate, mean length) and the trivial
baselines on the same puzzles. The puzzles come from ``kk_puzzles.reserved`` with the
model's cast, so none was in the pre-training stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kk_puzzles.generator import heldout_puzzles
from stages.evaluation.heldout import evaluate
from stages.model_io import load_model_and_tokenizer

MEASURE_SEED = 20_261_121  # the seed of the base model's held-out puzzles (any seed is held out)


def completion_budget(people: int) -> int:
    """Generated tokens that cover the longest exact completions for ``people`` people."""
    return 160 + 160 * 2 ** (people - 2)


def _row(result: Any, people: int) -> dict[str, Any]:
    g = result.groups[people]
    return {
        "lenient_acc": g.lenient.value, "lenient_ci": [g.lenient.low, g.lenient.high],
        "strict_acc": g.strict.value, "strict_ci": [g.strict.low, g.strict.high],
        "exact_format": 1.0 - g.format_error.value, "mean_length": g.mean_length,
        "truncation": g.truncation.value,
    }  # fmt: skip


def measure_base(
    model_dir: Path | str,
    *,
    n: int,
    people: Sequence[int] = (2, 3, 4),
    cast: str = "fixed",
    progress: Callable[[int, dict[str, Any]], None] | None = None,
    batch_size: int = 100,
) -> dict[str, Any]:
    """Held-out measurements of a model folder, per person count (``n`` puzzles each, or all
    of the reserved slice when it holds fewer, as for two people)."""
    model, tok = load_model_and_tokenizer(model_dir)
    out: dict[str, Any] = {}
    for count in people:
        recs = heldout_puzzles(int(count), n, seed=MEASURE_SEED, cast=cast, allow_fewer=True)
        budget = completion_budget(int(count))
        kw = dict(max_new_tokens=budget, batch_size=batch_size)
        greedy = evaluate(model, tok, recs, temperature=0.0, **kw)
        sampled = evaluate(model, tok, recs, temperature=1.0, top_k=0, **kw)
        row = {
            "n": len(recs),
            "max_new_tokens": budget,
            "greedy": _row(greedy, int(count)),
            "sampled_t1": _row(sampled, int(count)),
            "baselines": greedy.baselines[int(count)],
        }
        out[str(count)] = row
        if progress is not None:
            progress(int(count), row)
    return out
