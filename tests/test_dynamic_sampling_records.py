"""Dynamic sampling outside the trainer: the YAML key, the step records, the alert, the
dashboard lines and kk-analyze's table, each against hand-written records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from curriculum import run_records as rr
from curriculum.config import ConfigError, load_config
from curriculum.validate import validate


def step(n: int, **kw: Any) -> rr.StepMetrics:
    base: dict[str, Any] = dict(
        stage="warmup", global_step=n, stage_step=n, time=float(n), step_seconds=1.0,
        reward_mean=0.5, reward_std=0.3, rewards={}, format_error_ratio=0.1,
        all_correct_ratio=0.3, wrong_answer_ratio=0.5, unparsed_ratio=0.1,
        completion_length_mean=20.0, completion_length_min=10.0, completion_length_max=30.0,
        truncation_ratio=0.0, frac_zero_std_groups=0.0, learning_rate=1e-4, temperature=1.0,
        num_generations=4, tokens_per_second=100.0, loss=0.01,
    )  # fmt: skip
    base.update(kw)
    return rr.StepMetrics(**base)


FILLED = dict(
    zero_std_groups_dropped=2, generation_rounds=2, groups_generated=6,
    zero_std_groups_generated=2, batch_filled=True,
)  # fmt: skip
UNFILLED = dict(
    frac_zero_std_groups=0.5, zero_std_groups_dropped=3, generation_rounds=3,
    groups_generated=5, zero_std_groups_generated=4, batch_filled=False,
)  # fmt: skip

# ------------------------------------------------------------------------------ config


def test_the_key_is_off_by_default_and_set_per_stage() -> None:
    cfg = load_config(None, check_paths=False)
    assert all(not st.dynamic_sampling.enabled for st in cfg.stages.values())
    assert cfg.stages["warmup"].dynamic_sampling.max_rounds == 3
    on = load_config(
        None,
        ["stages.warmup.dynamic_sampling.enabled=true", "stages.warmup.dynamic_sampling.max_rounds=5"],
        check_paths=False,
    )  # fmt: skip
    assert on.stages["warmup"].dynamic_sampling.enabled
    assert on.stages["warmup"].dynamic_sampling.max_rounds == 5
    assert not on.stages["explore"].dynamic_sampling.enabled


@pytest.mark.parametrize(
    ("overrides", "world_size", "message"),
    [
        (["stages.warmup.dynamic_sampling.max_rounds=0"], 1, "max_rounds is 0; use >= 1"),
        (
            ["stages.warmup.dynamic_sampling.enabled=true"],
            2,
            "stages.warmup.dynamic_sampling needs one training process, but world_size is 2",
        ),
        (["stages.warmup.dynamic_sampling.max_round=2"], 1, "did you mean"),
    ],
)
def test_bad_settings_are_one_line_errors(overrides, world_size, message) -> None:
    with pytest.raises(ConfigError) as err:
        cfg = load_config(None, overrides, check_paths=False, validate_config=False)
        validate(cfg, world_size=world_size, check_paths=False)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_off_is_fine_on_several_processes() -> None:
    cfg = load_config(None, check_paths=False)
    validate(cfg, world_size=2, check_paths=False)


# ----------------------------------------------------------------------------- records


def test_old_metrics_lines_load_with_the_defaults(tmp_path) -> None:
    old = json.loads(rr.to_json_line(step(1)))
    for key in (
        "zero_std_groups_dropped",
        "generation_rounds",
        "groups_generated",
        "zero_std_groups_generated",
        "batch_filled",
    ):
        old.pop(key)
    (tmp_path / rr.METRICS_FILE).write_text(json.dumps(old) + "\n")
    [m] = rr.read_metrics(tmp_path)
    assert (m.zero_std_groups_dropped, m.generation_rounds) == (0, 1)
    assert m.groups_generated is None and m.batch_filled is None


def test_new_fields_round_trip(tmp_path) -> None:
    rr.append_record(tmp_path / rr.METRICS_FILE, step(1, **UNFILLED))
    [m] = rr.read_metrics(tmp_path)
    assert m == step(1, **UNFILLED)


def test_the_recorder_gives_a_steps_own_round() -> None:
    from kk_puzzles import generate
    from stages.callbacks import PUZZLE_COLUMNS, BatchRecorder

    puzzle = generate(2, 1, seed=0)[0]
    columns = {key: [puzzle[key]] for key in PUZZLE_COLUMNS}
    recorder = BatchRecorder(prefilled_think=True, weights={}, keep=3)
    for prompt in ("own", "refill 1", "refill 2"):
        recorder.begin(["x"], [prompt], columns)
    assert recorder.step_batch(3).prompts == ["own"]
    assert recorder.step_batch(1) is recorder.latest
    assert recorder.step_batch(5) is recorder.latest  # more rounds than kept: the latest


# ------------------------------------------------------------------------ alert, screen


def test_unfilled_batch_alert() -> None:
    from stages.dashboard.alerts import AlertThresholds, check_alerts

    t = AlertThresholds()
    assert [a.key for a in check_alerts([step(1, **FILLED)], t)] == []
    assert [a.key for a in check_alerts([step(1)], t)] == []  # dynamic sampling off
    [alert] = check_alerts([step(1, **FILLED), step(2, **UNFILLED)], t)
    assert alert.key == "unfilled_batch" and alert.global_step == 2
    assert alert.detail == (
        "50% of the trained groups had zero reward std after 3 generation rounds "
        "(4 of 5 generated groups zero-std, 3 dropped)"
    )
    two = AlertThresholds(unfilled_steps=2)
    assert check_alerts([step(1, **FILLED), step(2, **UNFILLED)], two) == []
    off = AlertThresholds(disabled=["unfilled_batch"])
    assert check_alerts([step(2, **UNFILLED)], off) == []


def test_plain_line_and_metric_cells() -> None:
    from stages.dashboard.log_lines import dynamic_sampling_text, plain_step_line
    from stages.dashboard.panels import metric_cells
    from stages.dashboard.state import RunView

    assert dynamic_sampling_text(step(1)) == ""
    assert dynamic_sampling_text(step(1, **FILLED)) == (" (2/6 zero-std seen, 2 dropped, 2 rounds)")
    view = RunView()
    view.add_metrics(step(1, **UNFILLED))
    line = plain_step_line(view, step(1, **UNFILLED))
    assert "zero_std 0.500 (4/5 zero-std seen, 3 dropped, 3 rounds, unfilled) |" in line
    assert "seen" not in plain_step_line(view, step(1))
    cells = {label: text.plain for label, text in metric_cells(view)}
    assert cells["zero-std gen"] == "80.0% of 5" and cells["dropped/rnds"] == "3 / 3"
    view.add_metrics(step(2))
    assert "dropped/rnds" not in dict(metric_cells(view))


# --------------------------------------------------------------------------- kk-analyze


def test_analysis_table_per_stage() -> None:
    from analysis.curves import Curves, dynamic_sampling_summary

    records = [
        step(1, **FILLED),
        step(2, **UNFILLED),
        step(3, stage="explore", stage_step=1),  # off: no row
    ]
    curves = Curves(records)
    [row] = dynamic_sampling_summary(curves)
    assert row == {
        "stage": "warmup",
        "steps": 2,
        "groups_generated": 11,
        "zero_std_generated": 6,
        "frac_zero_std_generated": 6 / 11,
        "zero_std_dropped": 5,
        "rounds_mean": 2.5,
        "rounds_max": 3,
        "unfilled_steps": 1,
        "frac_zero_std_trained": 0.25,
    }
    assert curves["frac_zero_std_generated"].tolist()[:2] == [2 / 6, 4 / 5]
    assert dynamic_sampling_summary(Curves([step(1)])) == []
