"""curriculum.schedules against hand-computed values."""

from __future__ import annotations

import itertools
import math

import pytest

from curriculum import load_config
from curriculum.config import StageConfig, TemperatureConfig, TrainConfig
from curriculum.schedules import (
    decay_start_step,
    learning_rate_at,
    run_learning_rate,
    stage_at,
    stage_bounds,
    stage_temperature_range,
    temperature_at,
    total_steps,
)


def _stage(start: float, end: float | None, schedule: str, steps: int = 5) -> StageConfig:
    return StageConfig(
        people={3: 1.0}, steps=steps, temperature=TemperatureConfig(start, end, schedule)
    )


def _train(**kw) -> TrainConfig:
    return TrainConfig(**kw)


# ---------------------------------------------------------------- temperature


def test_temperature_constant_ignores_step() -> None:
    st = _stage(1.2, None, "constant", steps=7)
    assert [temperature_at(st, s, 7) for s in range(0, 10)] == [1.2] * 10


def test_temperature_linear_hand_values() -> None:
    # 1.2 -> 0.9 over 4 steps: 0.1 per step.
    st = _stage(1.2, 0.9, "linear", steps=4)
    got = [temperature_at(st, s, 4) for s in range(1, 5)]
    assert got == pytest.approx([1.2, 1.1, 1.0, 0.9])


def test_temperature_cosine_hand_values() -> None:
    st = _stage(1.2, 0.9, "cosine", steps=5)
    got = [temperature_at(st, s, 5) for s in range(1, 6)]
    # frac = 0, 1/4, 1/2, 3/4, 1; T = 0.9 + 0.3 * (1 + cos(pi * frac)) / 2
    want = [1.2, 0.9 + 0.15 * (1 + math.sqrt(0.5)), 1.05, 0.9 + 0.15 * (1 - math.sqrt(0.5)), 0.9]
    assert got == pytest.approx(want)


def test_temperature_clamps_outside_the_stage() -> None:
    st = _stage(1.0, 0.5, "linear", steps=3)
    assert temperature_at(st, 0, 3) == pytest.approx(1.0)
    assert temperature_at(st, -5, 3) == pytest.approx(1.0)
    assert temperature_at(st, 99, 3) == pytest.approx(0.5)
    assert temperature_at(st, 1, 1) == pytest.approx(1.0)  # one-step stage: the start value


def test_temperature_rising_schedule_and_range() -> None:
    st = _stage(0.8, 1.2, "linear", steps=3)
    assert [temperature_at(st, s, 3) for s in (1, 2, 3)] == pytest.approx([0.8, 1.0, 1.2])
    assert stage_temperature_range(st) == pytest.approx((0.8, 1.2))


def test_temperature_unknown_schedule_raises() -> None:
    with pytest.raises(ValueError, match="constant"):
        temperature_at(_stage(1.0, 0.5, "exponential"), 2, 5)


# ---------------------------------------------------------------- learning rate


def test_lr_warmup_then_constant() -> None:
    tr = _train(learning_rate=1e-4, lr_schedule="constant", warmup_steps=4, lr_floor=0.0)
    got = [learning_rate_at(tr, s, 8) for s in range(1, 9)]
    assert got == pytest.approx([2.5e-5, 5e-5, 7.5e-5, 1e-4, 1e-4, 1e-4, 1e-4, 1e-4])


def test_lr_first_step_is_never_zero() -> None:
    for warm in range(0, 12):
        tr = _train(learning_rate=1e-4, lr_schedule="cosine", warmup_steps=warm, lr_floor=1e-6)
        assert learning_rate_at(tr, 1, 12) > 0


def test_lr_linear_to_floor() -> None:
    # no warm-up, 5 steps, 1e-4 -> 1e-5: frac = s/5, lr = 1e-5 + 9e-5 * (1 - frac)
    tr = _train(learning_rate=1e-4, lr_schedule="linear", lr_floor=1e-5, warmup_steps=0)
    got = [learning_rate_at(tr, s, 5) for s in range(1, 6)]
    assert got == pytest.approx([8.2e-5, 6.4e-5, 4.6e-5, 2.8e-5, 1e-5])


def test_lr_cosine_to_floor() -> None:
    tr = _train(learning_rate=1e-4, lr_schedule="cosine", lr_floor=1e-5, warmup_steps=0)
    got = [learning_rate_at(tr, s, 3) for s in range(1, 4)]
    # frac 1/3: (1 + cos(pi/3)) / 2 = 0.75; frac 2/3: 0.25; frac 1: 0
    assert got == pytest.approx([1e-5 + 9e-5 * 0.75, 1e-5 + 9e-5 * 0.25, 1e-5])


def test_lr_warmup_then_linear_decay() -> None:
    tr = _train(learning_rate=1e-4, lr_schedule="linear", lr_floor=1e-5, warmup_steps=2)
    got = [learning_rate_at(tr, s, 5) for s in range(1, 6)]
    assert got == pytest.approx([5e-5, 1e-4, 7e-5, 4e-5, 1e-5])


def test_lr_decay_start_holds_peak() -> None:
    # 7B recipe shape: 4e-7 held until step 4, then linear to 2e-7 at step 6.
    tr = _train(learning_rate=4e-7, lr_schedule="linear", lr_floor=2e-7, warmup_steps=0)
    got = [learning_rate_at(tr, s, 6, decay_start=4) for s in range(1, 7)]
    assert got == pytest.approx([4e-7, 4e-7, 4e-7, 4e-7, 3e-7, 2e-7])


def test_lr_never_increases_after_warmup_and_stays_in_range() -> None:
    for schedule in ("linear", "cosine"):
        tr = _train(learning_rate=1e-4, lr_schedule=schedule, lr_floor=1e-5, warmup_steps=3)
        lrs = [learning_rate_at(tr, s, 40, decay_start=10) for s in range(1, 41)]
        after = lrs[2:]
        assert all(a >= b for a, b in itertools.pairwise(after))
        assert min(lrs) == pytest.approx(1e-5) and max(lrs) == pytest.approx(1e-4)


def test_lr_clamps_past_the_end() -> None:
    tr = _train(learning_rate=1e-4, lr_schedule="linear", lr_floor=1e-5, warmup_steps=0)
    assert learning_rate_at(tr, 50, 5) == pytest.approx(1e-5)


# ---------------------------------------------------------------- stage bounds and run LR


def test_stage_bounds_default() -> None:
    steps = ["stages.warmup.steps=60", "stages.explore.steps=60", "stages.anneal.steps=40"]
    cfg = load_config(None, [*steps, "train.lr_decay_from=anneal"], check_paths=False)
    assert stage_bounds(cfg) == [("warmup", 1, 60), ("explore", 61, 120), ("anneal", 121, 160)]
    assert total_steps(cfg) == 160
    assert decay_start_step(cfg) == 120
    assert stage_at(cfg, 1) == ("warmup", 1)
    assert stage_at(cfg, 60) == ("warmup", 60)
    assert stage_at(cfg, 61) == ("explore", 1)
    assert stage_at(cfg, 160) == ("anneal", 40)


def test_stage_bounds_follow_overrides_and_are_contiguous() -> None:
    cfg = load_config(
        None, ["stages.warmup.steps=3", "stages.explore.steps=1", "stages.anneal.steps=7"]
    )
    bounds = stage_bounds(cfg)
    assert bounds == [("warmup", 1, 3), ("explore", 4, 4), ("anneal", 5, 11)]
    for (_, _, last), (_, first, _) in itertools.pairwise(bounds):
        assert first == last + 1


def test_run_learning_rate_scale_and_decay_from_stage() -> None:
    cfg = load_config(
        None,
        [
            "stages.warmup.steps=2",
            "stages.explore.steps=2",
            "stages.anneal.steps=2",
            "train.warmup_steps=0",
            "train.lr_schedule=linear",
            "train.learning_rate=1e-4",
            "train.lr_floor=2e-5",
            "stages.explore.learning_rate_scale=0.5",
            "train.lr_decay_from=anneal",
        ],
    )
    got = [run_learning_rate(cfg, s) for s in range(1, 7)]
    # peak until step 4 (anneal starts at 5); explore at half; anneal 1e-4 -> 2e-5 linearly.
    assert got == pytest.approx([1e-4, 1e-4, 5e-5, 5e-5, 6e-5, 2e-5])
