"""Dynamic sampling (DAPO's ``filter_groups``): train only on groups whose rewards differ.

A group (the ``num_generations`` completions of one prompt) whose rewards are all equal has
zero advantage under GRPO and teaches nothing. With ``stages.<name>.dynamic_sampling`` on, a
step generates its groups as usual, drops the zero-std ones and generates groups for as many
further prompts as it is short (the stage's next prompts, in the stage's order), up to
``max_rounds`` generation rounds in all, until its batch of prompts is full. A batch that is
still short after the last round is completed with zero-std groups (they add nothing to the
policy gradient, and TRL's batch split needs the full size) and the step is reported unfilled.

This module holds the rules as small functions the trainer (``stages.trainer``) calls:

* ``groups_with_signal``: which groups of a batch have reward spread;
* ``plan_fill``: the rounds, and which groups of which round the step trains on;
* ``refill_rows``: the dataset rows a refill round generates for;
* ``merge_round_outputs``: the trained batch out of the rounds' TRL outputs (torch).

>>> groups_with_signal([1, 1, 0, 1, 2, 2], 2)
[False, True, False]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FillPlan",
    "UnknownOutputKey",
    "group_has_signal",
    "groups_with_signal",
    "merge_round_outputs",
    "plan_fill",
    "refill_rows",
]

# Rewards closer than this count as equal (the scorers return a few fixed values).
ZERO_STD_TOLERANCE = 1e-9


def group_has_signal(rewards: Sequence[float]) -> bool:
    """True when at least two scored completions of the group got different rewards.

    NaN (a completion no reward function scored) is skipped, as TRL's baseline skips it.

    >>> group_has_signal([-3.0, -3.0]), group_has_signal([-3.0, -1.5]), group_has_signal([1, math.nan])
    (False, True, False)
    """
    vals = [float(v) for v in rewards if not math.isnan(v)]
    return len(vals) > 1 and max(vals) - min(vals) >= ZERO_STD_TOLERANCE


def groups_with_signal(totals: Sequence[float], group_size: int) -> list[bool]:
    """``group_has_signal`` of each run of ``group_size`` consecutive rewards."""
    if group_size < 1 or len(totals) % group_size:
        raise ValueError(f"{len(totals)} rewards do not split into groups of {group_size}")
    return [group_has_signal(totals[i : i + group_size]) for i in range(0, len(totals), group_size)]


@dataclass(frozen=True)
class FillPlan:
    """What one step's generation rounds gave and which groups it trains on."""

    picks: tuple[tuple[int, int], ...]  # (round, group within the round), sorted
    rounds: int  # generation rounds run, the step's own included
    groups_generated: int  # groups generated in all rounds, before filtering
    zero_std_generated: int  # zero-std groups among them
    zero_std_dropped: int  # zero-std groups not trained on
    filled: bool  # every trained group has reward spread

    @property
    def zero_std_trained(self) -> int:
        """Zero-std groups the batch was completed with (0 when it was filled)."""
        return self.zero_std_generated - self.zero_std_dropped

    @property
    def frac_zero_std_trained(self) -> float:
        """Share of the trained groups with zero reward std."""
        return self.zero_std_trained / len(self.picks) if self.picks else 0.0


def plan_fill(
    needed: int, max_rounds: int, generate_round: Callable[[int, int], Sequence[bool]]
) -> FillPlan:
    """Run generation rounds until ``needed`` groups with reward spread are found.

    ``generate_round(round, prompts)`` generates the groups of ``prompts`` prompts (round 0:
    the step's own ``needed`` prompts; later rounds: as many as are still missing) and
    returns ``group_has_signal`` for each. At most ``max_rounds`` rounds run. A batch still
    short after them is completed with the earliest zero-std groups.

    >>> flags = {0: [True, False, True, False], 1: [True, True]}
    >>> plan = plan_fill(4, 3, lambda r, n: flags[r][:n])
    >>> plan.picks, plan.rounds, plan.zero_std_dropped, plan.filled
    (((0, 0), (0, 2), (1, 0), (1, 1)), 2, 2, True)
    """
    if needed < 1 or max_rounds < 1:
        raise ValueError(f"needed ({needed}) and max_rounds ({max_rounds}) must be >= 1")
    with_signal: list[tuple[int, int]] = []
    flat: list[tuple[int, int]] = []
    generated = rounds = 0
    while len(with_signal) < needed and rounds < max_rounds:
        prompts = needed - len(with_signal)
        flags = list(generate_round(rounds, prompts))
        if len(flags) != prompts:
            raise ValueError(f"round {rounds} gave {len(flags)} groups for {prompts} prompts")
        for group, has_signal in enumerate(flags):
            (with_signal if has_signal else flat).append((rounds, group))
        generated += len(flags)
        rounds += 1
    padding = flat[: needed - len(with_signal)]
    return FillPlan(
        picks=tuple(sorted(with_signal + padding)),
        rounds=rounds,
        groups_generated=generated,
        zero_std_generated=len(flat),
        zero_std_dropped=len(flat) - len(padding),
        filled=not padding,
    )


def refill_rows(last_row: int, count: int, dataset_len: int) -> list[int]:
    """The ``count`` dataset rows after ``last_row``, wrapping around the stage's dataset.

    They are the prompts the next steps would get: the stage's order is not moved (so the
    step-to-prompt mapping and the rotation a resume applies stay as they are), and those
    prompts are drawn again at their own step with the policy of then.

    >>> refill_rows(5, 3, 8), refill_rows(7, 2, 8)
    ([6, 7, 0], [0, 1])
    """
    return [(last_row + 1 + i) % dataset_len for i in range(count)]


class UnknownOutputKey(KeyError):
    """A TRL generation output holds a key the merge does not know how to pad."""


# How each per-completion tensor of TRL 1.16's `_generate_and_score_completions` output is
# padded when rounds of different widths are stacked: (side, value; None = the pad token).
_PADDING: dict[str, tuple[str, float | None]] = {
    "prompt_ids": ("left", None),
    "prompt_mask": ("left", 0),
    "completion_ids": ("right", None),
    "completion_mask": ("right", 0),
    "old_per_token_logps": ("right", 0.0),
    "ref_per_token_logps": ("right", 0.0),
    "sampling_per_token_logps": ("right", 0.0),
    "importance_sampling_ratio": ("right", 1.0),
    "tool_mask": ("right", 1),
}
_PER_ROW = ("advantages",)  # one value per completion
_RECOMPUTED = ("num_items_in_batch",)  # a batch total: the caller recomputes it
MERGEABLE_KEYS = frozenset(_PADDING) | frozenset(_PER_ROW) | frozenset(_RECOMPUTED)


def merge_round_outputs(
    outputs: Sequence[dict[str, Any]],
    picks: Sequence[tuple[int, int]],
    group_size: int,
    pad_token_id: int,
) -> dict[str, Any]:
    """The batch of the picked groups, out of the rounds' outputs, padded to common widths.

    Prompts stay left-padded and completions right-padded, as TRL pads them; extra left
    padding shifts a prompt's absolute positions, which rotary position embeddings (Qwen2,
    Llama) do not see. ``num_items_in_batch`` is left out: the caller recomputes it over the
    merged masks. Raises ``UnknownOutputKey`` for a key this merge has no rule for.
    """
    import torch
    import torch.nn.functional as F

    for out in outputs:
        unknown = sorted(set(out) - MERGEABLE_KEYS)
        if unknown:
            raise UnknownOutputKey(unknown[0])
    rows = [
        (r, i)
        for r, g in picks
        for i in range(g * group_size, (g + 1) * group_size)  # a group's rows are consecutive
    ]
    merged: dict[str, Any] = {}
    for key in outputs[0]:
        if key in _RECOMPUTED:
            continue
        parts = [outputs[r][key][i : i + 1] for r, i in rows]
        if key in _PADDING:
            side, value = _PADDING[key]
            fill = pad_token_id if value is None else value
            width = max(p.shape[1] for p in parts)
            parts = [
                F.pad(p, (width - p.shape[1], 0) if side == "left" else (0, width - p.shape[1]),
                      value=fill)
                for p in parts
            ]  # fmt: skip
        merged[key] = torch.cat(parts, dim=0)
    return merged
