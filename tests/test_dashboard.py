"""The dashboard rendered to fixed-size rich consoles: content, layouts, modes, throttling."""

from __future__ import annotations

import io
import math
import random
from typing import Any

import pytest
from dashboard_synthetic import synthetic_info, synthetic_step
from rich.console import Console

from curriculum import run_records as rr
from stages.dashboard import (
    RunView,
    StageDashboard,
    plain_step_line,
    render_dashboard,
    summary_table,
)
from stages.dashboard.alerts import AlertThresholds
from stages.dashboard.panels import _highlight_lines

STEPS = (20, 15, 10)
COMPLETION = (
    "<think>\nSuppose Zoey is a knight.\nThen Ethan lies.\n</think>\n<answer>\n"
    "(1) Zoey is a knight\n(2) Ethan is a knave\n</answer>"
)


def sample(n: int, stage: str, completion: str = COMPLETION, **kw: Any) -> rr.CompletionSample:
    base: dict[str, Any] = dict(
        stage=stage,
        global_step=n,
        puzzle_id="abcdef123456",
        people=2,
        completion=completion,
        format=1.0,
        answer=-1.5,
        total=-0.5,
        kind="wrong",
        reason="1 of 2 identities wrong",
        solution_text_format="(1) Zoey is a knight\n(2) Ethan is a knight",
        temperature=1.2,
    )
    base.update(kw)
    return rr.CompletionSample(**base)


def feed(dash: StageDashboard, upto: int, **overrides: Any) -> rr.RunInfo:
    """Start a synthetic 3-stage run (20/15/10 steps) and feed steps 1..upto."""
    info = synthetic_info(STEPS, started_at=1000.0)
    dash._clock = lambda: 1000.0 + upto * 2.0 + 5
    dash.start(info)
    rng = random.Random(0)
    for plan in info.stages:
        for n in range(plan.start_step, plan.end_step + 1):
            if n > upto:
                return info
            if n == plan.start_step:
                dash.stage_start(plan.name)
            m = synthetic_step(plan, n, 1000.0 + 2.0 * n, rng, step_seconds=2.0, **overrides)
            dash.step(m, sample(n, plan.name))
            if n == plan.end_step:
                dash.stage_end(plan.name)
    return info


def recorder(width: int, height: int | None = None) -> Console:
    return Console(
        width=width,
        height=height or 200,
        record=True,
        color_system=None,
        file=io.StringIO(),
        legacy_windows=False,
    )


def rendered(dash: StageDashboard, width: int, height: int | None = None) -> str:
    console = recorder(width, height)
    console.print(dash.renderable(height=height, width=width))
    return console.export_text()


@pytest.fixture
def mid_run() -> StageDashboard:
    dash = StageDashboard("no-such-run-dir", live=False, console=recorder(120))
    dash.mode = "silent"
    feed(dash, 25)  # stage 2 ("explore"), 5 steps in
    return dash


# --- full layout (120 columns) -------------------------------------------------------------


def test_full_layout_shows_header_and_timeline(mid_run: StageDashboard) -> None:
    text = rendered(mid_run, 120)
    assert "synthetic" in text and "tiny (synthetic)" in text and "device cpu" in text
    # elapsed: clock 1000 + 25*2 + 5 = 1055 -> 55 s; ETA: (15-5) + 10 = 20 steps x 2 s = 40 s.
    assert "elapsed 0:55" in text and "ETA 0:40" in text
    lines = {
        name: next(ln for ln in text.splitlines() if ln.startswith(f"│ {name} "))
        for name in ("format", "explore", "refine")
    }
    assert "✓ done" in lines["format"] and "1-20" in lines["format"]
    assert "▶ running" in lines["explore"] and "21-35 (at 25)" in lines["explore"]
    assert "· pending" in lines["refine"] and "36-45" in lines["refine"]
    assert "3:50% 4:50%" in lines["explore"] and " 12 " in lines["explore"]  # people, rollout n
    assert "1.2→0.9 cosine" in lines["refine"]


def test_full_layout_shows_every_metric(mid_run: StageDashboard) -> None:
    m = mid_run.view.last
    assert m is not None and m.global_step == 25
    text = rendered(mid_run, 120)
    assert "step 25/45" in text and "explore 5/15" in text
    expected = [
        f"{m.reward_mean:.3f} ± {m.reward_std:.3f}",
        f"{m.all_correct_ratio:.1%}",
        f"{m.format_error_ratio:.1%}",
        f"{m.wrong_answer_ratio:.1%}",
        f"{m.unparsed_ratio:.1%}",
        f"{m.completion_length_mean:.1f}",
        f"{m.completion_length_max:.0f} (min {m.completion_length_min:.0f})",
        f"{m.truncation_ratio:.1%}",
        f"{m.frac_zero_std_groups:.1%}",
        f"{m.kl:.4g}",
        f"{m.entropy:.3f}",
        f"{m.learning_rate:.2e}",
        f"{m.temperature:.2f}",
        f"{m.tokens_per_second:.0f}",
    ]
    for value in expected:
        assert value in text, value
    for label in ("all correct", "format err", "wrong answer", "unparsed", "truncated", "KL"):
        assert label in text
    assert "reward parts format" in text and "top answer   KNN" in text


def test_history_sparklines_mark_stage_boundaries(mid_run: StageDashboard) -> None:
    text = rendered(mid_run, 120)
    for label in ("reward", "accuracy", "format err", "length"):
        line = next(ln for ln in text.splitlines() if f"││ {label:<11}" in ln)
        spark = line.split(f"││ {label:<11}", 1)[1]
        assert spark.count("│") >= 2  # the boundary between stages 1 and 2 (+ the panel edge)
    assert "stage boundary" in text


def test_latest_sample_shows_score_parts_and_truth(mid_run: StageDashboard) -> None:
    text = rendered(mid_run, 120)
    assert "step 25 · 2 people" in text
    assert "wrong  format 1.00 + answer -1.50 = total -0.50" in text
    assert "true answer: (1) Zoey is a knight; (2) Ethan is a knight" in text
    assert "<think>" in text and "</answer>" in text and "(2) Ethan is a knave" in text


def test_think_and_answer_are_highlighted() -> None:
    lines = _highlight_lines("<think>a\nb</think><answer>(1) X is a knight</answer> extra")
    first, second = lines

    def style_of(line, text: str) -> str:
        start = line.plain.index(text)
        return " ".join(str(s.style) for s in line.spans if s.start <= start < s.end)

    assert "bold cyan" in style_of(first, "<think>") and "italic" in style_of(first, "a")
    assert "italic" in style_of(second, "b")
    assert "bold magenta" in style_of(second, "<answer>")
    assert "bold green" in style_of(second, "(1) X is a knight")
    assert "red" in style_of(second, " extra")  # text after </answer> costs the format reward


def test_long_completion_keeps_head_and_answer() -> None:
    dash = StageDashboard("x", live=False, console=recorder(120))
    dash.mode = "silent"
    feed(dash, 3)
    body = "\n".join(f"step {i}: checking statement {i}" for i in range(200))
    dash.view.add_sample(
        sample(3, "format", f"<think>\n{body}\n</think>\n<answer>\n(1) Zoey is a knight\n</answer>")
    )
    text = rendered(dash, 120, 40)
    assert len(text.splitlines()) <= 40
    assert "more lines" in text and "step 0: checking" in text and "</answer>" in text


def test_alerts_panel_names_meaning_and_advice() -> None:
    dash = StageDashboard("x", live=False, console=recorder(120))
    dash.mode = "silent"
    feed(dash, 6, frac_zero_std_groups=0.97)
    text = rendered(dash, 120)
    assert "⚠ zero-std groups" in text and "97%" in text
    assert "GRPO advantages are" in text and "Try: raise temperature" in text
    ok = StageDashboard("x", live=False, console=recorder(120))
    ok.mode = "silent"
    feed(ok, 6)
    assert "✓ no alerts" in rendered(ok, 120)


def test_finished_run_summary_table() -> None:
    dash = StageDashboard("x", live=False, console=recorder(120))
    dash.mode = "silent"
    feed(dash, 45)
    dash.view.mark_finished(1100.0)
    text = rendered(dash, 120)
    assert "finished in 1:40" in text and text.count("✓ done") == 3
    console = recorder(120)
    console.print(summary_table(dash.view))
    table = console.export_text()
    rows = {ln.split()[0]: ln.split() for ln in table.splitlines() if ln.strip()[:1].isalpha()}
    # Hand-computed from the fed steps: explore = steps 21..35 (15 steps, 2 s each + 2 s start).
    stats = dash.view.stats["explore"]
    tail = list(dash.view.metrics)[30:35]
    assert rows["explore"][1:4] == ["done", "15", "0:30"]
    acc = sum(m.all_correct_ratio for m in tail) / 5
    fmt = sum(m.format_error_ratio for m in tail) / 5
    length = sum(m.completion_length_mean for m in tail) / 5
    assert rows["explore"][4:7] == [f"{acc:.1%}", f"{fmt:.1%}", f"{length:.1f}"]
    assert stats.steps == 15 and rows["format"][2] == "20" and rows["refine"][2] == "10"


# --- compact layout (80x24 and smaller) ----------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(80, 24), (100, 24), (60, 20), (40, 10)])
def test_small_terminals_degrade_gracefully(width: int, height: int) -> None:
    dash = StageDashboard("x", live=False, console=recorder(width))
    dash.mode = "silent"
    feed(dash, 25, frac_zero_std_groups=0.95)
    text = rendered(dash, width, height)
    lines = text.splitlines()
    assert len(lines) <= height
    assert all(len(ln) <= width for ln in lines)
    # Key facts survive in the first lines: the run, the step, the accuracy, the alert.
    assert "synthetic" in lines[0]
    assert "step 25/45" in text
    if height >= 20:
        assert "correct" in text and "fmt err" in text and "⚠ zero-std groups" in text


def test_80x24_shows_the_whole_key_picture() -> None:
    dash = StageDashboard("x", live=False, console=recorder(80))
    dash.mode = "silent"
    feed(dash, 25)
    text = rendered(dash, 80, 24)
    for needle in (
        "ETA",
        "✓format",
        "▶explore",
        "·refine",
        "reward",
        "correct",
        "len ",
        "zero-std",
        "KL",
        "LR",
        "tok/s",
        "✓ no alerts",
        "accuracy",
        "wrong",
    ):
        assert needle in text, needle


def test_empty_view_renders() -> None:
    for width, height in ((120, None), (80, 24), (20, 5)):
        out = recorder(width)
        out.print(render_dashboard(RunView(), width=width, height=height, now=0.0))
        assert "waiting" in out.export_text()


# --- plain mode ----------------------------------------------------------------------------


def test_plain_mode_one_line_per_step_with_alerts_and_stages() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, color_system=None)
    dash = StageDashboard("x", console=console)  # not a terminal -> plain
    assert dash.mode == "plain"
    with dash:
        feed(dash, 45, frac_zero_std_groups=0.95)
        dash.finish()
    lines = buffer.getvalue().splitlines()
    step_lines = [ln for ln in lines if ln.startswith("step ")]
    assert len(step_lines) == 45  # one per step, never wrapped even at 80 columns
    assert step_lines[24].startswith("step 25/45 [explore 5/15] reward ")
    for fact in (
        "correct",
        "fmt_err",
        "wrong",
        "unparsed",
        "len",
        "trunc",
        "zero_std",
        "kl",
        "ent",
        "lr",
        "T ",
        "tok/s",
        "s/step",
        "ETA",
    ):
        assert fact in step_lines[24], fact
    alerts = [ln for ln in lines if ln.startswith("ALERT")]
    assert len(alerts) == 1 and "[zero_std] step 3" in alerts[0] and "Try:" in alerts[0]
    starts = [ln for ln in lines if ln.startswith("== stage") and "started" in ln]
    assert [s.split()[2] for s in starts] == ["format", "explore", "refine"]
    assert "people 3:50% 4:50%, n=12" in starts[1]
    assert sum("done: " in ln for ln in lines) == 3
    assert any("run summary" in ln for ln in lines)


def test_plain_line_marks_non_finite_values() -> None:
    view = RunView()
    plan = synthetic_info(STEPS).stages[0]
    m = synthetic_step(plan, 1, 0.0, random.Random(0), loss=math.nan)
    view.add_metrics(m)
    assert "loss nan" in plain_step_line(view, m)


# --- live mode -----------------------------------------------------------------------------


def terminal(width: int = 100, height: int = 30) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = Console(
        file=buffer, force_terminal=True, width=width, height=height, color_system="standard"
    )
    return console, buffer


def test_live_mode_on_a_terminal_and_throttled_redraws() -> None:
    console, buffer = terminal()
    dash = StageDashboard("x", console=console)
    assert dash.mode == "live"
    dash.min_refresh_interval = 3600.0  # only forced redraws (start, stages, alerts)
    with dash:
        feed(dash, 45)
        dash.finish()
    throttled = dash.renders
    out = buffer.getvalue()
    assert "kk-rl" in out and "run summary" in out and "stage explore" in out
    assert throttled < 15  # 45 steps, but redraws only at the forced moments

    console, _ = terminal()
    eager = StageDashboard("x", console=console)
    eager.min_refresh_interval = 0.0
    eager.render_budget = 1e9  # no adaptive slow-down: redraw at every step
    with eager:
        feed(eager, 45)
    assert eager.renders >= 45 > throttled


def test_live_dashboard_closes_on_error() -> None:
    console, _ = terminal()
    with pytest.raises(RuntimeError), StageDashboard("x", console=console) as dash:
        feed(dash, 3)
        raise RuntimeError("boom")
    assert dash._live is None and not console._live_stack


def test_live_false_on_a_terminal_gives_plain_lines() -> None:
    console, buffer = terminal()
    dash = StageDashboard("x", live=False, console=console)
    feed(dash, 2)
    dash.close()
    assert dash.mode == "plain" and buffer.getvalue().count("step ") >= 2


# --- state -------------------------------------------------------------------------------


def test_resumed_run_rewinds_repeated_steps() -> None:
    view = RunView()
    plan = synthetic_info(STEPS).stages[0]
    rng = random.Random(0)
    for n in range(1, 11):
        view.add_metrics(synthetic_step(plan, n, float(n), rng))
    view.add_metrics(synthetic_step(plan, 7, 20.0, rng))  # resumed from step 6
    assert [m.global_step for m in view.metrics] == [1, 2, 3, 4, 5, 6, 7]
    assert view.stats["format"].steps == 7


def test_start_reads_earlier_steps_of_a_resumed_run(tmp_path) -> None:
    info = synthetic_info(STEPS, started_at=0.0)
    rng = random.Random(0)
    for n in range(1, 6):
        rr.append_record(tmp_path / rr.METRICS_FILE, synthetic_step(info.stages[0], n, n, rng))
    dash = StageDashboard(tmp_path, live=False, console=recorder(100))
    dash.start(info)
    assert len(dash.view.metrics) == 5 and dash.view.current == "format"


def test_history_is_bounded() -> None:
    view = RunView(history_limit=50)
    plan = synthetic_info((1000, 1, 1)).stages[0]
    rng = random.Random(0)
    for n in range(1, 301):
        view.add_metrics(synthetic_step(plan, n, float(n), rng))
    assert len(view.metrics) == 50 and view.stats["format"].steps == 300


def test_thresholds_reach_the_view() -> None:
    dash = StageDashboard(
        "x",
        live=False,
        console=recorder(100),
        thresholds=AlertThresholds(zero_std_ratio=0.2, zero_std_steps=1),
    )
    dash.mode = "silent"
    feed(dash, 1)
    assert [a.key for a in dash.view.active_alerts()] == ["zero_std"]


def test_promotion_shows_actual_ranges_and_events() -> None:
    dash = StageDashboard("x", live=False, console=recorder(120))
    dash.mode = "silent"
    info = synthetic_info(STEPS, started_at=0.0)
    dash.start(info)
    rng = random.Random(0)
    fmt, explore = info.stages[0], info.stages[1]
    for n in range(1, 9):
        dash.step(synthetic_step(fmt, n, float(n), rng), None)
    dash.event(rr.RunEvent(8.0, 8, "promotion", "format", "format error 0.04 < 0.05"))
    dash.stage_end("format")
    for n in range(9, 12):
        m = synthetic_step(explore, n, float(n), rng)
        dash.step(m, None)
    text = rendered(dash, 120)
    line = {
        n: next(ln for ln in text.splitlines() if ln.startswith(f"│ {n} "))
        for n in ("format", "explore")
    }
    assert "1-8" in line["format"] and "✓ done" in line["format"]
    assert "9-23 (at 11)" in line["explore"]  # 15 planned steps from step 9
    assert "promotion @8 format error 0.04 < 0.05" in text
    # ETA: explore has 12 steps left, refine 10 -> 22 x 1 s.
    assert dash.view.remaining_steps() == 22


def test_finished_run_marks_skipped_stages() -> None:
    view = RunView()
    info = synthetic_info(STEPS, started_at=0.0)
    view.set_info(info)
    view.add_metrics(synthetic_step(info.stages[0], 1, 1.0, random.Random(0)))
    view.add_event(rr.RunEvent(2.0, 1, "run_end"))
    assert [view.status(n) for n in ("format", "explore", "refine")] == [
        "done",
        "not run",
        "not run",
    ]
    assert view.remaining_steps() == 0


def test_missing_and_non_finite_values_never_crash() -> None:
    """A writer that leaves numbers out (None) or records NaN/inf still gets a dashboard."""
    info = synthetic_info((3, 2, 2), started_at=0.0)
    floats = [
        "step_seconds",
        "reward_mean",
        "reward_std",
        "format_error_ratio",
        "all_correct_ratio",
        "wrong_answer_ratio",
        "unparsed_ratio",
        "completion_length_mean",
        "completion_length_min",
        "completion_length_max",
        "truncation_ratio",
        "frac_zero_std_groups",
        "learning_rate",
        "temperature",
        "tokens_per_second",
    ]
    for bad in (None, math.nan, math.inf):
        buffer = io.StringIO()
        dash = StageDashboard("x", live=False, console=Console(file=buffer, width=100))
        dash.start(info)
        rng = random.Random(0)
        for n in range(1, 8):
            plan = next(p for p in info.stages if p.start_step <= n <= p.end_step)
            m = synthetic_step(plan, n, float(n), rng, **dict.fromkeys(floats, bad))
            dash.step(m, sample(n, plan.name, total=bad))
        dash.finish()
        assert buffer.getvalue().count("step ") >= 7
        for width, height in ((120, None), (80, 24)):
            text = rendered(dash, width, height)
            assert "dashboard error" not in text and "step 7/7" in text
