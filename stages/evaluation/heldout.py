"""Held-out evaluation: batched generation, scoring with ``rewards``, per-person-count statistics.

``evaluate`` generates completions with transformers (left padding, KV cache, greedy at
temperature 0) and scores them; ``summarize_generations`` does the scoring for completions
produced anywhere (``kk-eval`` feeds it vLLM output too). Every rate comes with a Wilson 95%
interval. ``trivial_baselines`` gives the exact expected accuracy of strategies that need no
reasoning, so a format-only gain cannot pass for reasoning.

torch and transformers are imported inside the functions that generate, so importing this
module (for the statistics, the baselines or the result classes) stays light.

>>> round(pass_at_k(n=5, c=2, k=2), 4)
0.7
>>> tuple(round(x, 4) for x in wilson_interval(8, 10))
(0.4902, 0.9433)
>>> trivial_baselines([{"people": 2, "solution": [True, True]}])[2]["all_knight"]
1.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kk_puzzles.io import json_or_value

# Two-sided 95% normal quantile (scipy.stats.norm.ppf(0.975)).
Z95 = 1.959963984540054

BASELINES = ("all_knight", "all_knave", "random")


# ---------------------------------------------------------------- statistics


def wilson_interval(successes: float, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (``successes`` may be a mean times ``trials``).

    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    >>> tuple(round(x, 4) for x in wilson_interval(0, 10))
    (0.0, 0.2775)
    >>> wilson_interval(0, 3)[0], wilson_interval(3, 3)[1]
    (0.0, 1.0)
    """
    if trials <= 0:
        return (0.0, 1.0)
    p = min(max(successes / trials, 0.0), 1.0)
    z2 = z * z
    denom = 1.0 + z2 / trials
    center = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    # clamp: rounding can put a bound a hair past the rate itself (5.6e-17 > 0 at p = 0)
    return (min(p, max(0.0, center - half)), max(p, min(1.0, center + half)))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem: n samples, c correct, 1 - C(n-c, k) / C(n, k).

    >>> pass_at_k(10, 0, 5), pass_at_k(10, 10, 1), pass_at_k(4, 1, 1)
    (0.0, 1.0, 0.25)
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # Product form avoids huge binomials: C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i).
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


@dataclass(frozen=True)
class Rate:
    """A proportion with its Wilson 95% interval over ``n`` independent units (puzzles)."""

    value: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, successes: float, trials: int) -> Rate:
        low, high = wilson_interval(successes, trials)
        value = successes / trials if trials else 0.0
        return cls(value=value, low=low, high=high, n=trials)

    def fmt(self, digits: int = 1) -> str:
        """'43.0% [33.7, 52.8]' (percent, interval in brackets)."""
        return (
            f"{100 * self.value:.{digits}f}% [{100 * self.low:.{digits}f}, "
            f"{100 * self.high:.{digits}f}]"
        )


# ---------------------------------------------------------------- record helpers


def _field(record: Mapping[str, Any], key: str) -> Any:
    """Training datasets keep list/dict columns as JSON strings; accept both forms."""
    value = record[key]
    if key in ("solution", "names", "knight_knave"):
        return json_or_value(value, strict=True)
    return value


def solution_of(record: Mapping[str, Any]) -> tuple[bool, ...]:
    return tuple(bool(x) for x in _field(record, "solution"))


def people_of(record: Mapping[str, Any]) -> int:
    if record.get("people") is not None:
        return int(record["people"])
    return len(solution_of(record))


def trivial_baselines(records: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, float]]:
    """Exact expected accuracy of reasoning-free strategies, per person count.

    ``all_knight`` / ``all_knave``: share of puzzles whose solution is everyone a knight /
    knave. ``random``: a uniform independent guess per person is right with probability
    2**-people on a puzzle with one solution, so the expectation is the mean of that.
    ``n`` is the number of puzzles.

    >>> recs = [{"solution": [True, True, True]}, {"solution": [True, False, False]},
    ...         {"solution": [False, False]}]
    >>> b = trivial_baselines(recs)
    >>> b[3]["all_knight"], b[3]["all_knave"], b[3]["random"], b[3]["n"]
    (0.5, 0.0, 0.125, 2)
    >>> b[2]["all_knave"]
    1.0
    """
    counts: dict[int, list[float]] = {}
    for rec in records:
        sol = solution_of(rec)
        people = people_of(rec)
        row = counts.setdefault(people, [0.0, 0.0, 0.0, 0.0])
        row[0] += all(sol)
        row[1] += not any(sol)
        row[2] += 0.5**people
        row[3] += 1
    return {
        p: {"all_knight": k / n, "all_knave": v / n, "random": r / n, "n": int(n)}
        for p, (k, v, r, n) in sorted(counts.items())
    }


def overall_baselines(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The same three strategies over all records pooled (weighted by puzzle count)."""
    per = trivial_baselines(records)
    total = sum(v["n"] for v in per.values())
    if not total:
        return {"all_knight": 0.0, "all_knave": 0.0, "random": 0.0, "n": 0}
    out: dict[str, float] = {
        key: sum(v[key] * v["n"] for v in per.values()) / total for key in BASELINES
    }
    out["n"] = total
    return out


# ---------------------------------------------------------------- results


@dataclass
class SampleResult:
    """One scored completion."""

    index: int  # position of the puzzle in the evaluated records
    record_id: str
    people: int
    sample: int  # 0..samples-1
    completion: str
    kind: str  # rewards Score.kind: correct | wrong | unparsed | format_error
    reason: str
    strict: bool  # right answer in the required format
    lenient: bool  # right answer read in any format
    length: int  # generated tokens, EOS included when produced
    truncated: bool  # hit max_new_tokens without EOS


@dataclass
class GroupResult:
    """Statistics for one person count (``people`` None = all puzzles pooled).

    Intervals count puzzles as the independent units: with several samples per puzzle the
    rate is the mean over puzzles of the per-puzzle rate and the Wilson interval uses the
    number of puzzles, which is the conservative choice for correlated samples.
    """

    people: int | None
    puzzles: int
    samples: int
    completions: int
    strict: Rate
    lenient: Rate
    pass_at: dict[int, Rate]  # k -> unbiased pass@k (strict correctness)
    format_error: Rate
    truncation: Rate
    mean_length: float
    strict_correct: int
    lenient_correct: int
    format_errors: int
    truncated: int
    kinds: dict[str, int]

    @property
    def pass_at_k(self) -> Rate:
        """pass@k at the largest k evaluated (k = samples)."""
        return self.pass_at[max(self.pass_at)]


@dataclass
class EvalResult:
    groups: dict[int, GroupResult]  # person count -> statistics
    overall: GroupResult
    baselines: dict[int, dict[str, float]]
    samples: list[SampleResult] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self, include_samples: bool = False) -> dict[str, Any]:
        """JSON-ready dict (int keys become strings, as JSON requires)."""

        def group(g: GroupResult) -> dict[str, Any]:
            d = asdict(g)
            d["pass_at"] = {str(k): asdict(v) for k, v in g.pass_at.items()}
            return d

        out: dict[str, Any] = {
            "settings": self.settings,
            "seconds": self.seconds,
            "groups": {str(p): group(g) for p, g in self.groups.items()},
            "overall": group(self.overall),
            "baselines": {str(p): b for p, b in self.baselines.items()},
        }
        if include_samples:
            out["samples"] = [asdict(s) for s in self.samples]
        return out


def _pass_ks(samples: int) -> list[int]:
    """k values reported: 1, powers of two below ``samples``, and ``samples``."""
    ks = {1, samples}
    k = 2
    while k < samples:
        ks.add(k)
        k *= 2
    return sorted(ks)


def _group(people: int | None, rows: list[list[SampleResult]], samples: int) -> GroupResult:
    puzzles = len(rows)
    flat = [s for row in rows for s in row]
    strict_correct = sum(s.strict for s in flat)
    lenient_correct = sum(s.lenient for s in flat)
    format_errors = sum(s.kind == "format_error" for s in flat)
    truncated = sum(s.truncated for s in flat)
    kinds: dict[str, int] = {}
    for s in flat:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    # Per-puzzle means, so each puzzle weighs the same and n = puzzles for the interval.
    pass_at = {}
    for k in _pass_ks(samples):
        total = sum(pass_at_k(len(row), sum(s.strict for s in row), k) for row in rows)
        pass_at[k] = Rate.of(total, puzzles)
    return GroupResult(
        people=people,
        puzzles=puzzles,
        samples=samples,
        completions=len(flat),
        strict=Rate.of(strict_correct / samples, puzzles),
        lenient=Rate.of(lenient_correct / samples, puzzles),
        pass_at=pass_at,
        format_error=Rate.of(format_errors / samples, puzzles),
        truncation=Rate.of(truncated / samples, puzzles),
        mean_length=sum(s.length for s in flat) / len(flat) if flat else 0.0,
        strict_correct=strict_correct,
        lenient_correct=lenient_correct,
        format_errors=format_errors,
        truncated=truncated,
        kinds=dict(sorted(kinds.items())),
    )


def summarize_generations(
    records: Sequence[Mapping[str, Any]],
    completions: Sequence[Sequence[str]],
    lengths: Sequence[Sequence[int]],
    truncated: Sequence[Sequence[bool]],
    *,
    prefill_think: bool = True,
    scheme: str = "logic_rl",
    settings: Mapping[str, Any] | None = None,
    seconds: float = 0.0,
) -> EvalResult:
    """Score ``completions[i][j]`` (sample j of puzzle i) and aggregate per person count.

    Strict = ``rewards.score`` says "correct" (format and answer); lenient =
    ``rewards.parse_answer(..., lenient=True)`` equals the solution.
    """
    import rewards

    if not (len(records) == len(completions) == len(lengths) == len(truncated)):
        raise ValueError("records, completions, lengths and truncated must have equal lengths")
    samples = len(completions[0]) if completions else 0
    by_people: dict[int, list[list[SampleResult]]] = {}
    flat: list[SampleResult] = []
    for i, rec in enumerate(records):
        if len(completions[i]) != samples:
            raise ValueError(f"puzzle {i} has {len(completions[i])} samples, expected {samples}")
        sol = solution_of(rec)
        people = people_of(rec)
        row = []
        for j, text in enumerate(completions[i]):
            sc = rewards.score(text, rec, scheme=scheme, prefilled_think=prefill_think)
            parsed = rewards.parse_answer(text, rec, lenient=True)
            res = SampleResult(
                index=i,
                record_id=str(rec.get("id", i)),
                people=people,
                sample=j,
                completion=text,
                kind=sc.kind,
                reason=sc.reason,
                strict=sc.kind == "correct",
                lenient=parsed is not None and tuple(parsed) == sol,
                length=int(lengths[i][j]),
                truncated=bool(truncated[i][j]),
            )
            row.append(res)
            flat.append(res)
        by_people.setdefault(people, []).append(row)
    groups = {p: _group(p, rows, samples) for p, rows in sorted(by_people.items())}
    all_rows = [row for p in sorted(by_people) for row in by_people[p]]
    return EvalResult(
        groups=groups,
        overall=_group(None, all_rows, samples),
        baselines=trivial_baselines(records),
        samples=flat,
        settings=dict(settings or {}),
        seconds=seconds,
    )


# ---------------------------------------------------------------- prompts and generation


def render_prompt(record: Mapping[str, Any], tokenizer: Any, prefill_think: bool = True) -> str:
    """The prompt text training used (``stages.model_io.prompt_for``)."""
    from stages.model_io import prompt_for

    return prompt_for(record, tokenizer, prefill_think)


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, getattr(tokenizer, "eos_token_id", None)):
        if value is None:
            continue
        for v in value if isinstance(value, list | tuple) else [value]:
            if int(v) not in ids:
                ids.append(int(v))
    if not ids:
        raise ValueError("the tokenizer and the model's generation config define no EOS token")
    return ids


def generate_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    samples: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int,
    batch_size: int = 32,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[list[str]], list[list[int]], list[list[bool]]]:
    """Batched transformers generation: (texts, token lengths, truncated) per prompt and sample.

    Prompts are sorted by length so batches carry little padding; at temperature 0 decoding
    is greedy and one generation is repeated ``samples`` times (all would be identical).
    """
    import torch
    from transformers import GenerationConfig

    if samples < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError("samples, batch_size and max_new_tokens must be at least 1")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    greedy = temperature == 0.0
    runs = 1 if greedy else samples
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    encoded = tokenizer(list(prompts))["input_ids"]
    jobs = [(i, j) for i in range(len(prompts)) for j in range(runs)]
    jobs.sort(key=lambda ij: -len(encoded[ij[0]]))
    gen_cfg = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=not greedy,
        temperature=None if greedy else temperature,
        top_p=None if greedy else top_p,
        top_k=None if greedy else top_k,
        pad_token_id=pad_id,
        eos_token_id=eos_ids,
        use_cache=True,
    )
    device = next(model.parameters()).device
    texts = [[""] * runs for _ in prompts]
    lengths = [[0] * runs for _ in prompts]
    truncs = [[False] * runs for _ in prompts]
    eos_set = set(eos_ids)
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    try:
        with torch.inference_mode():
            for start in range(0, len(jobs), batch_size):
                batch = jobs[start : start + batch_size]
                width = max(len(encoded[i]) for i, _ in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, (i, _) in enumerate(batch):
                    seq = encoded[i]
                    ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
                    mask[row, width - len(seq) :] = 1
                out = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    generation_config=gen_cfg,
                )
                for row, (i, j) in enumerate(batch):
                    gen = out[row, width:].tolist()
                    end = next((n for n, t in enumerate(gen) if t in eos_set), None)
                    if end is None:
                        body, lengths[i][j], truncs[i][j] = gen, len(gen), True
                    else:
                        body, lengths[i][j] = gen[:end], end + 1
                    texts[i][j] = tokenizer.decode(body, skip_special_tokens=True)
                if progress is not None:
                    progress(
                        min(start + batch_size, len(jobs)) * (samples // runs),
                        len(jobs) * (samples // runs),
                    )
    finally:
        model.train(was_training)
    if greedy and samples > 1:
        texts = [row * samples for row in texts]
        lengths = [row * samples for row in lengths]
        truncs = [row * samples for row in truncs]
    return texts, lengths, truncs


def evaluate(
    model: Any,
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    *,
    samples: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int,
    batch_size: int = 32,
    prefill_think: bool = True,
    seed: int = 0,
    top_p: float = 1.0,
    top_k: int = 0,
    progress: Callable[[int, int], None] | None = None,
    generate: Callable[..., tuple[list[list[str]], list[list[int]], list[list[bool]]]]
    | None = None,
    settings_extra: Mapping[str, Any] | None = None,
) -> EvalResult:
    """Generate ``samples`` completions per record and score them per person count.

    ``generate`` replaces ``generate_completions`` (same arguments and result: the run's
    evaluation shards the prompts over processes with it); ``settings_extra`` is added to
    the result's settings.

    Returns an ``EvalResult``: ``result.groups[people].strict`` / ``.lenient`` /
    ``.pass_at_k`` / ``.format_error`` / ``.truncation`` are ``Rate`` objects (value, low,
    high: Wilson 95%), ``.mean_length`` is in generated tokens; ``result.baselines`` holds
    ``trivial_baselines(records)``; ``result.samples`` every scored completion.
    """
    if not records:
        raise ValueError("evaluate() needs at least one record")
    t0 = time.perf_counter()
    prompts = [render_prompt(r, tokenizer, prefill_think) for r in records]
    texts, lengths, truncs = (generate or generate_completions)(
        model,
        tokenizer,
        prompts,
        samples=samples,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        top_p=top_p,
        top_k=top_k,
        seed=seed,
        progress=progress,
    )
    settings = {
        "backend": "transformers",
        "samples": samples,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "prefill_think": prefill_think,
        "seed": seed,
        "records": len(records),
        **dict(settings_extra or {}),
    }
    return summarize_generations(
        records,
        texts,
        lengths,
        truncs,
        prefill_think=prefill_think,
        settings=settings,
        seconds=time.perf_counter() - t0,
    )
