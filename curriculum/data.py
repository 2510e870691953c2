"""Puzzles for each stage and the held-out evaluation set, all fixed by seeds.

* ``heldout_set(config, people, n, seed)``: the one held-out set every reader uses (the
  run's evaluation, ``kk-eval``'s default set): for each person count, ``n`` puzzles of the
  *reserved evaluation slice* (``kk_puzzles.reserved``: 10% of puzzle structures, closed
  under renaming, re-wording and permuting the people), drawn with ``eval.seed``,
  ``eval.depth``, ``eval.width`` and the model's cast. No training data ever contains a
  reserved puzzle, so the set is disjoint from the tiny model's pre-training stream and every
  stage's data by construction. ``heldout_records(config)`` is the run's own
  (``eval.people``, ``eval.n``, ``eval.seed``). It depends on the eval section only, so
  changing a stage never changes the evaluation set (runs stay comparable).
* ``stage_dataset_records(config, name)``: ``dataset_size`` puzzles (default
  ``steps * prompts_per_step``, each prompt used once) with the stage's people mix. The mix is
  split into exact per-count quotas (largest remainder), each drawn outside the reserved
  slice (``reserved="exclude"``), so training never sees an evaluation puzzle.
  When a person count has fewer distinct puzzles than its quota (2 people at depth 2 and
  width 2 have only 184), the distinct pool is repeated in reshuffled epochs and
  ``on_note`` hears about it.

>>> from curriculum.config import load_config
>>> cfg = load_config(None, ["eval.n=10", "eval.people=[2,3]", "stages.explore.dataset_size=40"])
>>> held = heldout_records(cfg)
>>> train = stage_dataset_records(cfg, "explore")
>>> len(held), len(train), sorted(people_counts(train).items())
(20, 40, [(2, 10), (3, 30)])
>>> bool({r["id"] for r in held} & {r["id"] for r in train})
False
>>> puzzle_cast(cfg), held[0]["names"][:2]  # the tiny model's fixed cast
('fixed', ['Abigail', 'Adrian'])
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from curriculum.config import ConfigError

if TYPE_CHECKING:
    from curriculum.config import RunConfig

__all__ = [
    "TINY_DEFAULT_CAST",
    "heldout_description",
    "heldout_ids",
    "heldout_records",
    "heldout_set",
    "people_counts",
    "people_quotas",
    "puzzle_cast",
    "stage_dataset_records",
    "stage_seed",
]

Note = Callable[[str], None]

# The embedded tiny model names every puzzle's people with the pool's first names in order
# (a fixed cast): measured, it cannot learn to copy names from the quiz at this size
# (docs/tiny_model.md). HF models get the full renderer (random names from the pool).
TINY_DEFAULT_CAST = "fixed"


def puzzle_cast(config: RunConfig) -> str:
    """How puzzles name their people for this run's model: ``model.tiny.cast`` (default
    fixed) for the embedded tiny model, ``random`` for any other model."""
    if config.model.name_or_path != "tiny":
        return "random"
    return str(config.model.tiny.get("cast", TINY_DEFAULT_CAST))


def stage_seed(config: RunConfig, stage_name: str) -> int:
    """The stage's ``seed``, or one derived stably (crc32) from run.seed and the stage name."""
    st = config.stages[stage_name]
    if st.seed is not None:
        return int(st.seed)
    return zlib.crc32(f"kk-stage:{config.run.seed}:{stage_name}".encode())


def people_quotas(people: Mapping[int, float], n: int) -> dict[int, int]:
    """Split ``n`` puzzles over person counts by weight (largest remainder, exact total).

    >>> people_quotas({2: 0.25, 3: 0.75}, 10)
    {2: 3, 3: 7}
    >>> people_quotas({2: 1, 3: 1, 4: 1}, 4)
    {2: 2, 3: 1, 4: 1}
    """
    total = sum(people.values())
    exact = {c: n * w / total for c, w in people.items()}
    out = {c: int(v) for c, v in exact.items()}
    rest = n - sum(out.values())
    by_remainder = sorted(exact, key=lambda c: (-(exact[c] - out[c]), c))
    for c in by_remainder[:rest]:
        out[c] += 1
    return out


def people_counts(records: Collection[Mapping[str, Any]]) -> dict[int, int]:
    """How many records per person count."""
    return dict(sorted(Counter(int(r["people"]) for r in records).items()))


def _generate(count: int, n: int, **kwargs: Any) -> list[dict[str, Any]]:
    from kk_puzzles import generate

    return generate(count, n, **kwargs)


def _distinct_pool(count: int, n: int, **kwargs: Any) -> list[dict[str, Any]]:
    """Up to ``n`` distinct puzzles; fewer when the puzzle space runs out."""
    from kk_puzzles import GenerationError

    try:
        return _generate(count, n, **kwargs)
    except GenerationError:
        pass
    # generate(c, m) is a prefix of generate(c, m + k) (one seeded stream), so binary search
    # for the largest m that exists.
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            _generate(count, mid, **kwargs)
            lo = mid
        except GenerationError:
            hi = mid - 1
    return _generate(count, lo, **kwargs) if lo > 0 else []


def heldout_set(
    config: RunConfig,
    people: Collection[int] | None = None,
    n: int | None = None,
    seed: int | None = None,
    cast: str | None = None,
) -> list[dict[str, Any]]:
    """Held-out puzzles from the reserved evaluation slice: ``n`` per person count
    (defaults: ``eval.people``, ``eval.n``, ``eval.seed``, the model's cast). A request the
    slice cannot fill raises ConfigError naming the maximum."""
    from kk_puzzles import GenerationError
    from kk_puzzles.generator import heldout_puzzles

    ev = config.eval
    n = ev.n if n is None else n
    seed = ev.seed if seed is None else seed
    cast = puzzle_cast(config) if cast is None else cast
    out: list[dict[str, Any]] = []
    for count in ev.people if people is None else people:
        try:
            out += heldout_puzzles(count, n, seed=seed, depth=ev.depth, width=ev.width, cast=cast)
        except GenerationError as err:
            raise ConfigError(f"held-out set: {err}") from None
    return out


def heldout_description(
    config: RunConfig, n: int | None = None, seed: int | None = None, cast: str | None = None
) -> str:
    """What the held-out set is, and exactly what it is disjoint from (report.md, kk-eval)."""
    from kk_puzzles.reserved import RESERVED_PER_MILLE

    ev = config.eval
    cast = puzzle_cast(config) if cast is None else cast
    names = (
        "people named by a fixed cast, the pool's first names in order, since the tiny model "
        "cannot copy names from the quiz"
        if cast == "fixed"
        else "names drawn from the pool"
    )
    return (
        f"{ev.n if n is None else n} puzzles per person count from the reserved evaluation "
        f"slice ({RESERVED_PER_MILLE / 10:g}% of puzzle structures; seed "
        f"{ev.seed if seed is None else seed}, depth {ev.depth}, width {ev.width}; {names}), "
        "disjoint by construction from the tiny model's pre-training stream, every RL "
        "stage's data and kk-gen --split train files, renamed, re-worded and permuted "
        "copies included"
    )


def heldout_records(config: RunConfig) -> list[dict[str, Any]]:
    """The run's held-out evaluation set: ``heldout_set`` with the eval section's values."""
    return heldout_set(config)


def heldout_ids(config: RunConfig) -> set[str]:
    return {r["id"] for r in heldout_records(config)}


def stage_dataset_records(
    config: RunConfig,
    stage_name: str,
    *,
    exclude_ids: Collection[str] | None = None,
    on_note: Note | None = None,
) -> list[dict[str, Any]]:
    """Training puzzles of one stage, in a seeded shuffled order.

    ``exclude_ids``: ids never to use; None = the held-out set's ids (pass them yourself
    when you already have the held-out set, to save generating it again).
    """
    if stage_name not in config.stages:
        raise ConfigError(
            f"unknown stage {stage_name!r}; stages: {', '.join(config.stages) or 'none'}"
        )
    st = config.stages[stage_name]
    n = st.dataset_size or st.steps * st.prompts_per_step
    seed = stage_seed(config, stage_name)
    exclude = heldout_ids(config) if exclude_ids is None else set(exclude_ids)
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for count, quota in people_quotas(st.people, n).items():
        if quota == 0:
            continue
        kwargs = dict(
            seed=zlib.crc32(f"{seed}:{count}".encode()), depth=st.depth, width=st.width,
            reserved="exclude", cast=puzzle_cast(config),
        )  # fmt: skip
        pool = _distinct_pool(count, quota, exclude_ids=exclude, **kwargs)
        if not pool:
            raise ConfigError(
                f"stages.{stage_name}: no {count}-person puzzles left at depth {st.depth}, "
                f"width {st.width} after excluding {len(exclude)} held-out ids; raise "
                f"stages.{stage_name}.depth or change eval.people"
            )
        rows = list(pool)
        while len(rows) < quota:  # small puzzle space: reshuffled epochs over the pool
            epoch = list(pool)
            rng.shuffle(epoch)
            rows += epoch[: quota - len(rows)]
        if len(pool) < quota and on_note is not None:
            on_note(
                f"stages.{stage_name}: only {len(pool)} distinct {count}-person puzzles exist "
                f"at depth {st.depth}, width {st.width} (outside the reserved evaluation slice); "
                f"{quota} prompts repeat them"
            )
        out += rows
    rng.shuffle(out)
    return out
