"""Alerts: synthetic metric streams that must, and must not, trigger each alert."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from curriculum import run_records as rr
from stages.dashboard.alerts import (
    ALERT_KEYS,
    Alert,
    AlertThresholds,
    AlertTracker,
    alert_event,
    check_alerts,
)

T = AlertThresholds()


def step(n: int, stage: str = "s1", stage_start: int = 1, **kw: Any) -> rr.StepMetrics:
    """A healthy step: nothing here is near any threshold."""
    base: dict[str, Any] = dict(
        stage=stage,
        global_step=n,
        stage_step=n - stage_start + 1,
        time=1000.0 + n,
        step_seconds=1.0,
        reward_mean=0.5,
        reward_std=0.3,
        rewards={"logic_rl_format": 0.5},
        format_error_ratio=0.1,
        all_correct_ratio=0.3,
        wrong_answer_ratio=0.5,
        unparsed_ratio=0.1,
        completion_length_mean=200.0,
        completion_length_min=100.0,
        completion_length_max=300.0,
        truncation_ratio=0.05,
        frac_zero_std_groups=0.2,
        learning_rate=1e-4,
        temperature=1.0,
        num_generations=8,
        tokens_per_second=500.0,
        loss=0.02,
        kl=0.01,
        entropy=1.2,
        grad_norm=0.4,
        top_answer_pattern="KNK",
        top_answer_pattern_share=0.3,
        top_answer_pattern_truth_share=0.25,
    )
    base.update(kw)
    return rr.StepMetrics(**base)


def stream(values: dict[str, list[Any]], n: int | None = None, **const: Any) -> list:
    """Steps 1..n where field f takes values[f][i] at step i+1."""
    n = n or len(next(iter(values.values())))
    return [step(i + 1, **const, **{k: v[i] for k, v in values.items()}) for i in range(n)]


def keys(history: list, thresholds: AlertThresholds = T) -> list[str]:
    return [a.key for a in check_alerts(history, thresholds)]


def test_healthy_stream_has_no_alerts() -> None:
    history = [step(i) for i in range(1, 60)]
    for end in range(1, 60):
        assert keys(history[:end]) == []
    assert check_alerts([], T) == []


# --- zero-std groups -----------------------------------------------------------------------


def test_zero_std_fires_after_three_steps_at_or_above_0_9() -> None:
    history = stream({"frac_zero_std_groups": [0.2, 0.9, 0.95, 1.0]})
    assert "zero_std" not in keys(history[:3])  # only two bad steps so far
    assert keys(history) == ["zero_std"]
    alert = check_alerts(history, T)[0]
    assert "100%" in alert.detail and alert.global_step == 4


@pytest.mark.parametrize(
    "values",
    [[0.89, 0.89, 0.89], [0.95, 0.5, 0.95], [0.95, 0.95]],
    ids=["just-below", "interrupted", "too-short"],
)
def test_zero_std_does_not_fire(values: list[float]) -> None:
    assert keys(stream({"frac_zero_std_groups": values})) == []


# --- truncation ----------------------------------------------------------------------------


def test_truncation_fires_at_half() -> None:
    assert keys(stream({"truncation_ratio": [0.1, 0.5]})) == ["truncation"]
    assert keys(stream({"truncation_ratio": [0.1, 0.49]})) == []
    # Configurable: two steps needed.
    two = AlertThresholds(truncation_steps=2)
    assert keys(stream({"truncation_ratio": [0.6, 0.3, 0.7]}), two) == []
    assert keys(stream({"truncation_ratio": [0.3, 0.6, 0.7]}), two) == ["truncation"]


# --- format errors rising after the warm-up ------------------------------------------------


def _format_stream(late: list[float], warm: int = 10) -> list:
    # Warm-up: errors fall from 0.8; then 10 steps at 0.05; then `late`.
    values = [0.8 - 0.07 * i for i in range(warm)] + [0.05] * 10 + late
    return stream({"format_error_ratio": values})


def test_format_rising_fires_after_warmup() -> None:
    history = _format_stream([0.3] * 5)  # window mean 0.30 vs best 0.05: rise 0.25 >= 0.15
    assert keys(history) == ["format_rising"]
    assert "30%" in check_alerts(history, T)[0].detail


def test_format_rising_does_not_fire_on_small_rise_or_during_warmup() -> None:
    assert keys(_format_stream([0.15] * 5)) == []  # rise 0.10 < 0.15
    # Falling errors during the warm-up (the normal stage-1 curve) never fire.
    assert keys(stream({"format_error_ratio": [0.8 - 0.07 * i for i in range(10)]})) == []
    # A rise inside the warm-up window is not checked at all.
    early = stream({"format_error_ratio": [0.05] * 5 + [0.5] * 5})
    assert keys(early) == []


def test_format_rising_ignores_a_new_stage_starting_with_more_errors() -> None:
    first = [step(i, format_error_ratio=0.05) for i in range(1, 31)]
    second = [step(30 + i, stage="s2", stage_start=31, format_error_ratio=0.6) for i in range(1, 8)]
    assert keys(first + second) == []


# --- length collapse / blow-up -------------------------------------------------------------


def test_length_collapse_fires_and_normal_dip_does_not() -> None:
    collapse = stream({"completion_length_mean": [200.0] * 15 + [50.0] * 5})
    assert keys(collapse) == ["length_collapse"]  # 50 <= 0.3 * 200
    mild = stream({"completion_length_mean": [200.0] * 15 + [70.0] * 5})
    assert keys(mild) == []  # 70 > 60
    # The normal curve: length drops while the format is learned, then grows back.
    curve = [200 - 10 * i for i in range(10)] + [110 + 15 * i for i in range(12)]
    assert keys(stream({"completion_length_mean": [float(x) for x in curve]})) == []


def test_length_blowup_fires_only_far_above_the_stage_start() -> None:
    blowup = stream({"completion_length_mean": [200.0] * 15 + [520.0] * 5})
    assert keys(blowup) == ["length_blowup"]  # 520 >= 2.5 * 200
    assert keys(stream({"completion_length_mean": [200.0] * 15 + [450.0] * 5})) == []


def test_length_alerts_need_enough_steps_and_use_the_current_stage_only() -> None:
    assert keys(stream({"completion_length_mean": [200.0] * 4 + [20.0] * 5})) == []
    first = [step(i, completion_length_mean=200.0) for i in range(1, 21)]
    # A new stage with long traces (more people) is not a blow-up of the old stage.
    second = [
        step(20 + i, stage="s2", stage_start=21, completion_length_mean=700.0) for i in range(1, 12)
    ]
    assert keys(first + second) == []


# --- KL spike ------------------------------------------------------------------------------


def test_kl_spike_fires_on_a_jump_not_on_slow_growth() -> None:
    spike = stream({"kl": [0.01] * 10 + [0.2]})
    assert keys(spike) == ["kl_spike"]
    assert "20.0x" in check_alerts(spike, T)[0].detail  # 0.2 / median 0.01
    assert keys(stream({"kl": [0.001] * 10 + [0.04]})) == []  # big factor, below kl_spike_min
    slow = [0.01 + 0.03 * i for i in range(11)]  # 0.01 -> 0.31 linearly
    assert keys(stream({"kl": slow})) == []
    assert keys(stream({"kl": [None] * 11})) == []


def test_kl_above_ceiling_fires_without_history() -> None:
    assert keys(stream({"kl": [1.5]})) == ["kl_spike"]
    assert keys(stream({"kl": [0.9]})) == []


# --- NaN / inf, zero loss ------------------------------------------------------------------


@pytest.mark.parametrize("field", ["loss", "kl", "grad_norm", "reward_mean"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_fire_nan_alert(field: str, bad: float) -> None:
    history = [step(1), step(2, **{field: bad})]
    found = check_alerts(history, T)
    assert [a.key for a in found] == ["nan_loss"]
    assert found[0].severity == "critical" and field in found[0].detail


def test_nan_alert_survives_the_jsonl_round_trip(tmp_path) -> None:
    rr.append_record(tmp_path / rr.METRICS_FILE, step(1, loss=math.nan))
    assert keys(rr.read_metrics(tmp_path)) == ["nan_loss"]


def test_zero_loss_fires_only_on_exact_zero_for_three_steps() -> None:
    assert keys(stream({"loss": [0.02, 0.0, 0.0, 0.0]})) == ["zero_loss"]
    assert keys(stream({"loss": [0.0, 0.0, 1e-9]})) == []
    assert keys(stream({"loss": [0.0, 0.0]})) == []
    assert keys(stream({"loss": [None, None, None]})) == []


def test_truncated_zero_std_trap_raises_all_three_alerts() -> None:
    # Seed lesson 6: every completion truncated, identical rewards, loss exactly 0.
    history = stream(
        {"truncation_ratio": [1.0] * 3, "frac_zero_std_groups": [1.0] * 3, "loss": [0.0] * 3}
    )
    assert keys(history) == ["zero_loss", "zero_std", "truncation"]


# --- answer collapse -----------------------------------------------------------------------


def test_answer_collapse() -> None:
    collapsed = stream(
        {"top_answer_pattern_share": [0.8] * 3, "top_answer_pattern_truth_share": [0.2] * 3},
        top_answer_pattern="KKKK",
    )
    found = check_alerts(collapsed, T)
    assert [a.key for a in found] == ["answer_collapse"]
    assert "everyone a knight" in found[0].detail and "80%" in found[0].detail
    honest = stream(
        {"top_answer_pattern_share": [0.8] * 3, "top_answer_pattern_truth_share": [0.6] * 3}
    )
    assert keys(honest) == []  # the pattern really is that common
    assert (
        keys(
            stream(
                {"top_answer_pattern_share": [0.5] * 3, "top_answer_pattern_truth_share": [0.0] * 3}
            )
        )
        == []
    )
    assert (
        keys(
            stream(
                {"top_answer_pattern_share": [0.9] * 2, "top_answer_pattern_truth_share": [0.1] * 2}
            )
        )
        == []
    )
    assert (
        keys(
            stream(
                {
                    "top_answer_pattern_share": [None] * 3,
                    "top_answer_pattern_truth_share": [None] * 3,
                }
            )
        )
        == []
    )


# --- thresholds ----------------------------------------------------------------------------


def test_thresholds_are_configurable_and_disable_works() -> None:
    history = stream({"frac_zero_std_groups": [0.85] * 3})
    assert keys(history) == []
    assert keys(history, AlertThresholds.from_mapping({"zero_std_ratio": 0.8})) == ["zero_std"]
    off = AlertThresholds.from_mapping({"zero_std_ratio": 0.8, "disabled": ["zero_std"]})
    assert keys(history, off) == []


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"zero_std": 0.9}, "unknown key 'zero_std'"),
        ({"zero_std_ratio": "high"}, "expected a number"),
        ({"zero_std_ratio": True}, "expected a number"),
        ({"zero_std_ratio": -0.1}, ">= 0"),
        ({"zero_std_steps": 2.5}, "whole number"),
        ({"zero_std_steps": 0}, "whole number"),
        ({"disabled": ["nope"]}, "unknown alert 'nope'"),
        ([0.9], "expected a mapping"),
    ],
)
def test_bad_thresholds_give_one_line_errors(data: dict, needle: str) -> None:
    with pytest.raises(ValueError) as err:
        AlertThresholds.from_mapping(data)
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("dashboard.alerts")


def test_thresholds_from_config_objects() -> None:
    cfg = SimpleNamespace(dashboard=SimpleNamespace(alerts={"kl_max": 3}))
    assert AlertThresholds.from_config(cfg).kl_max == 3.0
    assert AlertThresholds.from_config(SimpleNamespace()) == AlertThresholds()
    assert AlertThresholds.from_mapping(None) == AlertThresholds()


def test_thresholds_from_the_project_config() -> None:
    curriculum = pytest.importorskip("curriculum")
    config = curriculum.load_config(None, ["dashboard.alerts={zero_std_steps: 5}"])
    assert AlertThresholds.from_config(config).zero_std_steps == 5
    assert AlertThresholds.from_config(curriculum.load_config(None)) == AlertThresholds()


# --- alert objects -------------------------------------------------------------------------


def test_every_alert_explains_itself() -> None:
    from stages.dashboard.alerts import _TEXT

    assert set(_TEXT) == set(ALERT_KEYS)
    for severity, title, meaning, advice in _TEXT.values():
        assert severity in ("warning", "critical") and title
        # One sentence each: what it means, what to try.
        assert meaning.endswith(".") and meaning.count(". ") == 0
        assert advice.endswith(".") and advice.count(". ") == 0
    history = stream({"loss": [0.0] * 19 + [math.nan], "truncation_ratio": [0.9] * 20})
    alerts = check_alerts(history, T)
    assert [a.key for a in alerts] == ["nan_loss", "truncation"]
    for a in alerts:
        line = a.line()
        assert line.startswith("ALERT") and "Try:" in line and "\n" not in line


def test_tracker_and_event() -> None:
    tracker = AlertTracker()
    history = stream({"frac_zero_std_groups": [0.95] * 4})
    first = tracker.update(check_alerts(history[:3], T))
    again = tracker.update(check_alerts(history, T))
    assert [a.key for a in first] == ["zero_std"] and again == []
    ev = alert_event(first[0], time=5.0)
    back = rr.from_dict(rr.RunEvent, __import__("json").loads(rr.to_json_line(ev)))
    assert back.kind == "alert" and back.data["key"] == "zero_std" and back.global_step == 3
    assert isinstance(first[0], Alert) and "zero-std" in back.message
