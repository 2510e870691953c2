"""Measuring a tiny base model on held-out puzzles: greedy and sampled accuracy, baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import kk_puzzles
from stages.model_io import load_model_and_tokenizer, prompt_for


def heldout_records(
    people: int, n: int, *, seed: int = 20_261_121, cfg: Mapping[str, Any] | None = None
) -> list[dict]:
    """Held-out puzzles for measuring a base model (seed family disjoint from training).

    Two-person puzzles with depth 2 and width 2 have only about 184 distinct statement
    sets, so for them ``n`` records may repeat statements (with other names).
    """
    depth = int((cfg or {}).get("depth", 2))
    width = int((cfg or {}).get("width", 2))
    out: list[dict] = []
    k = 0
    while len(out) < n:
        try:
            out += kk_puzzles.generate(
                people, n - len(out), seed=seed + 1000 * k + people, depth=depth, width=width
            )
        except ValueError:
            out += kk_puzzles.generate(
                people,
                min(100, n - len(out)),
                seed=seed + 1000 * k + people,
                depth=depth,
                width=width,
            )
        k += 1
    return out[:n]


def sample_completions(
    model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]], *, prefill_think: bool,
    temperature: float, max_new_tokens: int, batch_size: int = 32, seed: int = 0,
) -> list[str]:  # fmt: skip
    """Generate one completion per record (greedy when temperature == 0)."""
    import torch

    torch.manual_seed(seed)
    out: list[str] = []
    tokenizer.padding_side = "left"
    for i in range(0, len(records), batch_size):
        chunk = records[i : i + batch_size]
        prompts = [prompt_for(r, tokenizer, prefill_think) for r in chunk]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id,
                                  "eos_token_id": tokenizer.eos_token_id}  # fmt: skip
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False)
        with torch.no_grad():
            gen = model.generate(**enc, **kwargs)
        new = gen[:, enc["input_ids"].shape[1] :]
        out += tokenizer.batch_decode(new, skip_special_tokens=True)
    return out


def measure(
    model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]], *, prefill_think: bool = True,
    temperature: float = 0.0, max_new_tokens: int = 640, batch_size: int = 32, seed: int = 0,
) -> dict[str, float]:  # fmt: skip
    """Lenient accuracy, strict accuracy and exact-format rate of one completion per record."""
    import rewards

    comps = sample_completions(
        model, tokenizer, records, prefill_think=prefill_think, temperature=temperature,
        max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
    )  # fmt: skip
    n = len(records)
    lenient = strict = fmt = 0
    for comp, rec in zip(comps, records, strict=True):
        truth = tuple(bool(x) for x in rec["solution"])
        if rewards.parse_answer(comp, rec, lenient=True) == truth:
            lenient += 1
        sc = rewards.score(comp, rec, prefilled_think=prefill_think)
        fmt += sc.format > 0
        strict += sc.kind == "correct"
    return {"n": n, "lenient_acc": lenient / n, "strict_acc": strict / n, "exact_format": fmt / n}


def trivial_baselines(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Exact accuracies of 'everyone a knight', 'everyone a knave' and a uniform guess."""
    n = len(records)
    knights = sum(all(r["solution"]) for r in records) / n
    knaves = sum(not any(r["solution"]) for r in records) / n
    guess = sum(0.5 ** len(r["solution"]) for r in records) / n
    return {"all_knight": knights, "all_knave": knaves, "random_guess": guess}


def measure_base(
    model_dir: Path | str,
    *,
    n: int,
    people: Sequence[int] = (2, 3),
    progress: Any = None,
    batch_size: int = 100,
) -> dict[str, Any]:
    """Held-out measurements of a model folder, per person count: greedy (lenient and
    strict accuracy, exact-format rate), one temperature-1 sample each (the same), and the
    trivial baselines on the same puzzles."""
    model, tok = load_model_and_tokenizer(model_dir)
    out: dict[str, Any] = {}
    for count in people:
        recs = heldout_records(int(count), n)
        budget = 160 + 160 * 2 ** (int(count) - 2)  # covers the longest exact completions
        row = {
            "n": n,
            "max_new_tokens": budget,
            "greedy": measure(
                model, tok, recs, temperature=0.0, max_new_tokens=budget, batch_size=batch_size
            ),
            "sampled_t1": measure(
                model, tok, recs, temperature=1.0, max_new_tokens=budget, batch_size=batch_size
            ),
            "baselines": trivial_baselines(recs),
        }
        out[str(count)] = row
        if progress is not None:
            progress(count, row)
    return out
