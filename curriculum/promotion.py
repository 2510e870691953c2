"""Promotion rules: end a stage early once its goal is met over a window of steps.

>>> from curriculum.config import PromotionConfig
>>> rule = PromotionConfig(format_error_below=0.1, window=3, min_steps=3)
>>> should_promote(rule, [_m(s, fe) for s, fe in [(1, 0.9), (2, 0.05), (3, 0.05)]]) is None
True
>>> should_promote(rule, [_m(s, 0.05) for s in (2, 3, 4)])
'format_error_ratio 0.050 < 0.1 over the last 3 steps of warmup (stage step 4)'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from curriculum.run_records import StepMetrics

if TYPE_CHECKING:
    from curriculum.config import PromotionConfig

__all__ = ["promotion_enabled", "should_promote"]


def promotion_enabled(promotion_cfg: PromotionConfig) -> bool:
    """True when at least one threshold is set."""
    return (
        promotion_cfg.format_error_below is not None or promotion_cfg.accuracy_at_least is not None
    )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def should_promote(promotion_cfg: PromotionConfig, recent: Sequence[StepMetrics]) -> str | None:
    """The reason to promote now, or None.

    ``recent`` is the run's step history (oldest first); only the latest stage's steps count.
    Every threshold that is set must hold for the mean over the last ``window`` steps:
    mean format_error_ratio < format_error_below, mean all_correct_ratio >= accuracy_at_least.
    Never before stage step ``min_steps``, never on a window shorter than ``window`` or one
    holding a NaN.
    """
    p = promotion_cfg
    if not promotion_enabled(p) or not recent:
        return None
    stage = recent[-1].stage
    steps = [m for m in recent if m.stage == stage][-p.window :]
    if len(steps) < p.window or steps[-1].stage_step < p.min_steps:
        return None
    reasons = []
    if p.format_error_below is not None:
        fe = _mean([m.format_error_ratio for m in steps])
        if math.isnan(fe) or not fe < p.format_error_below:
            return None
        reasons.append(f"format_error_ratio {fe:.3f} < {p.format_error_below:g}")
    if p.accuracy_at_least is not None:
        acc = _mean([m.all_correct_ratio for m in steps])
        if math.isnan(acc) or not acc >= p.accuracy_at_least:
            return None
        reasons.append(f"all_correct_ratio {acc:.3f} >= {p.accuracy_at_least:g}")
    return (
        f"{' and '.join(reasons)} over the last {len(steps)} steps of {stage} "
        f"(stage step {steps[-1].stage_step})"
    )


def _m(stage_step: int, format_error: float, accuracy: float = 0.0, stage: str = "warmup"):
    """A synthetic StepMetrics (doctests and tests)."""
    return StepMetrics(
        stage=stage, global_step=stage_step, stage_step=stage_step, time=0.0,
        step_seconds=1.0, reward_mean=0.0, reward_std=0.0, rewards={},
        format_error_ratio=format_error, all_correct_ratio=accuracy,
        wrong_answer_ratio=0.0, unparsed_ratio=0.0, completion_length_mean=1.0,
        completion_length_min=1.0, completion_length_max=1.0, truncation_ratio=0.0,
        frac_zero_std_groups=0.0, learning_rate=1e-4, temperature=1.0, num_generations=8,
        tokens_per_second=1.0,
    )  # fmt: skip
