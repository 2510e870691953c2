"""Promotion rules on synthetic metric streams."""

from __future__ import annotations

import math

from curriculum.config import PromotionConfig
from curriculum.promotion import _m, promotion_enabled, should_promote


def _first_promotion(rule: PromotionConfig, stream: list) -> int | None:
    """Feed the stream step by step, as the driver does; the stage step where it promotes."""
    for i in range(1, len(stream) + 1):
        if should_promote(rule, stream[:i]) is not None:
            return stream[i - 1].stage_step
    return None


def _falling_format_errors(n: int = 40) -> list:
    # format error 1 - s/20, reaching 0 at step 20
    return [_m(s, max(0.0, 1 - s / 20)) for s in range(1, n + 1)]


def test_format_rule_hand_computed_step() -> None:
    # window 5 means: s=20 -> (0.2+0.15+0.1+0.05+0)/5 = 0.1, not < 0.1; s=21 -> 0.06 < 0.1
    rule = PromotionConfig(format_error_below=0.1, window=5, min_steps=0)
    assert _first_promotion(rule, _falling_format_errors()) == 21


def test_min_steps_delays_promotion() -> None:
    rule = PromotionConfig(format_error_below=0.1, window=5, min_steps=30)
    assert _first_promotion(rule, _falling_format_errors()) == 30


def test_window_longer_than_history_never_promotes() -> None:
    rule = PromotionConfig(format_error_below=0.5, window=10)
    assert _first_promotion(rule, [_m(s, 0.0) for s in range(1, 10)]) is None


def test_accuracy_rule_and_both_rules() -> None:
    stream = [_m(s, 0.0, accuracy=s / 10) for s in range(1, 11)]
    acc_rule = PromotionConfig(accuracy_at_least=0.5, window=3)
    # s=6: (0.4+0.5+0.6)/3 = 0.5 >= 0.5
    assert _first_promotion(acc_rule, stream) == 6
    both = PromotionConfig(format_error_below=0.1, accuracy_at_least=0.5, window=3)
    assert _first_promotion(both, stream) == 6
    bad_format = [_m(s, 0.5, accuracy=1.0) for s in range(1, 11)]
    assert _first_promotion(both, bad_format) is None  # every set rule must hold


def test_reason_names_the_numbers() -> None:
    rule = PromotionConfig(format_error_below=0.1, accuracy_at_least=0.2, window=2)
    reason = should_promote(rule, [_m(4, 0.05, 0.25), _m(5, 0.03, 0.35)])
    assert reason == (
        "format_error_ratio 0.040 < 0.1 and all_correct_ratio 0.300 >= 0.2 "
        "over the last 2 steps of warmup (stage step 5)"
    )


def test_only_the_current_stage_counts() -> None:
    rule = PromotionConfig(format_error_below=0.1, window=3)
    history = [_m(s, 0.0, stage="warmup") for s in range(1, 10)]
    history += [_m(1, 0.0, stage="explore"), _m(2, 0.0, stage="explore")]
    assert should_promote(rule, history) is None  # only 2 explore steps so far
    history.append(_m(3, 0.0, stage="explore"))
    assert "of explore" in should_promote(rule, history)


def test_nan_in_window_blocks_promotion() -> None:
    rule = PromotionConfig(format_error_below=0.5, window=3)
    assert should_promote(rule, [_m(1, 0.0), _m(2, math.nan), _m(3, 0.0)]) is None


def test_disabled_rule_never_promotes() -> None:
    rule = PromotionConfig()
    assert not promotion_enabled(rule)
    assert _first_promotion(rule, [_m(s, 0.0, 1.0) for s in range(1, 30)]) is None
    assert should_promote(PromotionConfig(format_error_below=0.5), []) is None
