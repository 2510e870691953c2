"""Schedules: small pure functions of the step number.

Steps are 1-based everywhere: global step 1 is the first optimizer step of the run, stage
step 1 the first step of a stage (the same numbering as ``StepMetrics``). A schedule value
for step ``s`` is the value used *while computing* step ``s`` (its rollouts and its update).

>>> from curriculum.config import StageConfig, TemperatureConfig, TrainConfig
>>> st = StageConfig(steps=5, temperature=TemperatureConfig(1.2, 0.9, "linear"))
>>> [round(temperature_at(st, s, 5), 3) for s in range(1, 6)]
[1.2, 1.125, 1.05, 0.975, 0.9]
>>> tr = TrainConfig(learning_rate=1e-4, lr_floor=1e-5, warmup_steps=2, lr_schedule="linear")
>>> [round(learning_rate_at(tr, s, 5), 8) for s in range(1, 6)]
[5e-05, 0.0001, 7e-05, 4e-05, 1e-05]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from curriculum.schema import RunConfig, StageConfig, TrainConfig

__all__ = [
    "Bounds",
    "decay_start_step",
    "learning_rate_at",
    "run_learning_rate",
    "stage_at",
    "stage_bounds",
    "stage_temperature_range",
    "temperature_at",
    "total_steps",
]

# (stage name, first global step, last global step) per stage, in order; see stage_bounds.
Bounds = list[tuple[str, int, int]]


def _clamp(step: int, last: int) -> int:
    return min(max(step, 1), max(last, 1))


def temperature_at(stage_cfg: StageConfig, stage_step: int, stage_steps: int) -> float:
    """Sampling temperature at ``stage_step`` (1..stage_steps): start at step 1, end at the last."""
    t = stage_cfg.temperature
    start, end = t.start, (t.start if t.end is None else t.end)
    if t.schedule == "constant" or stage_steps <= 1:
        return start
    frac = (_clamp(stage_step, stage_steps) - 1) / (stage_steps - 1)  # 0 .. 1
    if t.schedule == "linear":
        return start + (end - start) * frac
    if t.schedule == "cosine":
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown temperature schedule {t.schedule!r} (use constant|linear|cosine)")


def learning_rate_at(
    train_cfg: TrainConfig, global_step: int, total_steps: int, *, decay_start: int = 0
) -> float:
    """LR at ``global_step`` (1..total_steps), like nanoGPT's get_lr.

    Warm-up: step s <= W gets lr * s / W (step 1 is never at LR 0). Then the peak LR holds
    until ``decay_start`` (the last step before the decay); then constant, or linear /
    cosine down to ``lr_floor``, which the last step reaches exactly.
    """
    lr, floor, warm = train_cfg.learning_rate, train_cfg.lr_floor, train_cfg.warmup_steps
    s = _clamp(global_step, total_steps)
    if s <= warm:
        return lr * s / warm
    first = max(warm, decay_start)  # last step at the peak
    if train_cfg.lr_schedule == "constant" or s <= first or total_steps <= first:
        return lr
    frac = (s - first) / (total_steps - first)  # (0, 1], 1 at the last step
    if train_cfg.lr_schedule == "linear":
        return floor + (lr - floor) * (1.0 - frac)
    if train_cfg.lr_schedule == "cosine":
        return floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown lr schedule {train_cfg.lr_schedule!r} (use constant|linear|cosine)")


def stage_bounds(
    plan: RunConfig | Sequence[tuple[str, int]],
    starts: Mapping[str, int] | None = None,
    ends: Mapping[str, int] | None = None,
    skipped: Collection[str] = (),
) -> Bounds:
    """(name, first_step, last_step) per stage in order; global steps, 1-based, inclusive.

    ``plan`` is the run configuration, or (name, planned steps) pairs. With nothing else, the
    planned bounds. A run passes what has happened so far: ``starts[name]`` and ``ends[name]``,
    the first and last global step of the stages that started and ended (an early promotion
    ends a stage before its planned last step); every other stage keeps its planned length and
    follows the one before it. ``skipped`` stages that never started take no steps (a run of
    later stages only): their bounds are ``(next, next - 1)``.

    >>> from curriculum.config import load_config
    >>> cfg = load_config(None, ["stages.warmup.steps=10", "stages.explore.steps=20",
    ...                          "stages.anneal.steps=5"], check_paths=False)
    >>> stage_bounds(cfg)
    [('warmup', 1, 10), ('explore', 11, 30), ('anneal', 31, 35)]
    >>> stage_bounds(cfg, starts={"warmup": 1}, ends={"warmup": 4})  # promoted at step 4
    [('warmup', 1, 4), ('explore', 5, 24), ('anneal', 25, 29)]
    >>> stage_bounds(cfg, skipped=["warmup"])  # `--stage explore,anneal` in a new directory
    [('warmup', 1, 0), ('explore', 1, 20), ('anneal', 21, 25)]
    """
    planned = (
        [(name, int(stage.steps)) for name, stage in plan.stages.items()]
        if hasattr(plan, "stages")
        else [(name, int(steps)) for name, steps in plan]
    )
    starts, ends = starts or {}, ends or {}
    out, next_step = [], 1
    for name, steps in planned:
        if name in skipped and name not in starts and name not in ends:
            out.append((name, next_step, next_step - 1))
            continue
        first = int(starts.get(name, next_step))
        last = int(ends.get(name, first + steps - 1))
        out.append((name, first, last))
        next_step = last + 1
    return out


def total_steps(config: RunConfig) -> int:
    """Planned optimizer steps of the whole run."""
    return sum(stage.steps for stage in config.stages.values())


def stage_at(config: RunConfig, global_step: int, bounds: Bounds | None = None) -> tuple[str, int]:
    """(stage name, stage step) of a global step (``bounds``: the run's, default as planned);
    past the end = the last stage."""
    bounds = stage_bounds(config) if bounds is None else bounds
    for name, first, last in bounds:
        if global_step <= last:
            return name, max(global_step - first + 1, 1)
    name, first, _ = bounds[-1]
    return name, global_step - first + 1


def decay_start_step(config: RunConfig, bounds: Bounds | None = None) -> int:
    """The last global step before the LR decay (train.lr_decay_from; 0 = decay after warm-up)."""
    name = config.train.lr_decay_from
    if name is None:
        return 0
    for stage, first, _ in stage_bounds(config) if bounds is None else bounds:
        if stage == name:
            return first - 1
    raise ValueError(f"train.lr_decay_from names unknown stage {name!r}")


def run_learning_rate(config: RunConfig, global_step: int, bounds: Bounds | None = None) -> float:
    """The LR the run uses at ``global_step``: the run curve times the stage's learning_rate_scale.

    ``bounds`` are the run's stage bounds (``stage_bounds`` with what has happened so far;
    default as planned): an early promotion moves later stages earlier, so the decay starts
    and ends earlier too.
    """
    bounds = stage_bounds(config) if bounds is None else bounds
    total = max((last for _, _, last in bounds), default=1)
    curve = learning_rate_at(
        config.train, global_step, total, decay_start=decay_start_step(config, bounds)
    )
    name, _ = stage_at(config, global_step, bounds)
    return curve * config.stages[name].learning_rate_scale


def stage_temperature_range(stage_cfg: StageConfig) -> tuple[float, float]:
    """(temperature at the first step, temperature at the last step) of a stage."""
    return temperature_at(stage_cfg, 1, stage_cfg.steps), temperature_at(
        stage_cfg, stage_cfg.steps, stage_cfg.steps
    )
