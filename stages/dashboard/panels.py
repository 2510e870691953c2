"""The sections of the dashboard screen, each built from a :class:`RunView`.

Header, stage timeline, progress bars, metrics, history sparklines, the latest sample,
alerts and events: each function returns rich Text lines and knows nothing about where
they go; :mod:`stages.dashboard.layout` arranges them for the screen size. Where an alert
has a threshold (truncation, zero-std groups, KL), its number turns red at that threshold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from rich.text import Text

from curriculum.run_records import CompletionSample, StepMetrics
from stages.dashboard.formatting import (
    at_least,
    duration,
    num,
    pct,
    people_mix,
    sci,
    short_reward_name,
    temperature_text,
)
from stages.dashboard.state import RunView
from stages.dashboard.widgets import bar, columns, fit_lines, sparkline

__all__ = [
    "alert_lines",
    "completion_lines",
    "dynamic_sampling_cells",
    "events_line",
    "header_text",
    "history_lines",
    "metric_cells",
    "metric_lines",
    "metrics_grid",
    "progress_lines",
    "sample_header",
    "timeline_line",
    "timeline_table",
    "truth_text",
]


def header_text(view: RunView, now: float) -> Text:
    """Run name, model, device, elapsed time and ETA (or the finished run's wall time)."""
    info = view.info
    t = Text()
    t.append("kk-rl ", style="bold magenta")
    t.append(info.run_name if info else "(waiting for run.json)", style="bold")
    if info:
        t.append(f"  model {info.model}  device {info.device}", style="")
        end = view.finished_at if view.finished and view.finished_at else now
        if view.finished:
            t.append(f"  finished in {duration(end - info.started_at)}", style="green")
        else:
            t.append(f"  elapsed {duration(now - info.started_at)}")
            t.append(f"  ETA {duration(view.eta())}", style="bold")
            if view.last_record_time is not None and now - view.last_record_time > 60:
                t.append(
                    f"  no new record for {duration(now - view.last_record_time)}",
                    style="yellow",
                )
    return t


_STATUS_STYLE = {
    "done": ("✓ done", "green"),
    "running": ("▶ running", "bold yellow"),
    "pending": ("· pending", "dim"),
    "not run": ("– not run", "dim"),
}


def _step_range(view: RunView, name: str) -> str:
    """The steps a stage ran (done), runs (running, shifted by an early promotion) or plans."""
    plan, st = view.plan(name), view.stats.get(name)
    status = view.status(name)
    if st is not None and st.first_step is not None and status == "done":
        return f"{st.first_step}-{st.last_step}"
    if plan is not None:
        text = f"{plan.start_step}-{plan.end_step}"
        if status == "running" and st is not None and st.first_step is not None:
            # After an early promotion the stage starts before its planned first step.
            end = st.first_step + plan.end_step - plan.start_step
            text = f"{st.first_step}-{end} (at {st.last_step})"
        return text
    if st is not None and st.first_step is not None:
        return f"{st.first_step}-{st.last_step}"
    return "–"


def timeline_table(view: RunView) -> list[Text]:
    """One row per stage: status, people mix, n, prompts per step, steps, temperature."""
    header = ("stage", "status", "people", "n", "prompts", "steps", "temperature")
    rows = [[Text(h, style="bold dim") for h in header]]
    for name in view.stage_names():
        label, style = _STATUS_STYLE[view.status(name)]
        plan = view.plan(name)
        rows.append(
            [
                Text(name, style="bold" if name == view.current else ""),
                Text(label, style=style),
                Text(people_mix(plan.people) if plan else "–"),
                Text(str(plan.num_generations) if plan else "–"),
                Text(str(plan.prompts_per_step) if plan else "–"),
                Text(_step_range(view, name)),
                Text(temperature_text(plan) if plan else "–"),
            ]
        )
    return columns(rows)


def timeline_line(view: RunView) -> Text:
    """The stage timeline on one line (compact layout)."""
    t = Text("stages ", style="dim")
    for i, name in enumerate(view.stage_names()):
        status = view.status(name)
        label, style = _STATUS_STYLE[status]
        plan = view.plan(name)
        if i:
            t.append(" │ ", style="dim")
        t.append(f"{label[0]}{name} {_step_range(view, name)}", style=style)
        if plan and status == "running":
            t.append(f" n{plan.num_generations} p{people_mix(plan.people)}", style=style)
    return t


def progress_lines(view: RunView, bar_width: int) -> list[Text]:
    """Global and stage progress bars."""
    last = view.last
    rows: list[list[Text]] = []
    total = view.total_steps
    step = last.global_step if last else 0
    if total:
        rows.append(
            [
                Text(f"step {step}/{total}", style="bold"),
                bar(step, total, bar_width),
                Text(f"{min(step, total) / total:.0%}"),
            ]
        )
    else:
        rows.append([Text(f"step {step}", style="bold"), Text(""), Text("")])
    if view.current is not None:
        plan, st = view.plan(view.current), view.stats.get(view.current)
        done = st.steps if st else 0
        if plan is not None:
            length = plan.end_step - plan.start_step + 1
            rows.append(
                [
                    Text(f"{view.current} {done}/{length}", style="yellow"),
                    bar(done, length, bar_width),
                    Text(f"{min(done, length) / max(1, length):.0%}"),
                ]
            )
        else:
            rows.append([Text(f"{view.current} {done}", style="yellow"), Text(""), Text("")])
    return columns(rows, gap=1)


def metric_cells(view: RunView) -> list[tuple[str, Text]]:
    """(label, value) pairs of the metrics panel, latest step, coloured by the thresholds."""
    m = view.last
    if m is None:
        return [("metrics", Text("waiting for the first step…", style="dim"))]
    t = view.thresholds

    def v(text: str, bad: bool = False, good: bool = False) -> Text:
        return Text(text, style="bold red" if bad else ("green" if good else ""))

    def nonfinite(x: float | None) -> bool:
        return x is not None and not math.isfinite(x)

    cells = [
        ("reward", v(f"{num(m.reward_mean)} ± {num(m.reward_std)}", nonfinite(m.reward_mean))),
        ("all correct", v(pct(m.all_correct_ratio), good=at_least(m.all_correct_ratio, 0.5))),
        ("format err", v(pct(m.format_error_ratio), at_least(m.format_error_ratio, 0.5))),
        ("wrong answer", v(pct(m.wrong_answer_ratio))),
        ("unparsed", v(pct(m.unparsed_ratio))),
        ("length mean", v(num(m.completion_length_mean, ".1f"))),
        (
            "length max",
            v(f"{num(m.completion_length_max, '.0f')} (min {num(m.completion_length_min, '.0f')})"),
        ),
        ("truncated", v(pct(m.truncation_ratio), at_least(m.truncation_ratio, t.truncation_ratio))),
        (
            "zero-std grp",
            v(pct(m.frac_zero_std_groups), at_least(m.frac_zero_std_groups, t.zero_std_ratio)),
        ),
        *dynamic_sampling_cells(m, v),
        ("KL", v(num(m.kl, ".4g"), nonfinite(m.kl) or (m.kl or 0.0) >= t.kl_max)),
        ("entropy", v(num(m.entropy, ".3f"), nonfinite(m.entropy))),
        ("LR", v(sci(m.learning_rate))),
        ("temperature", v(num(m.temperature, ".2f"))),
        ("tokens/s", v(num(m.tokens_per_second, ".0f"))),
        ("step time", v(f"{num(m.step_seconds, '.2f')} s")),
        ("loss", v(num(m.loss, ".4g"), nonfinite(m.loss) or m.loss == 0.0)),
        ("grad norm", v(num(m.grad_norm, ".3g"), nonfinite(m.grad_norm))),
    ]
    if m.lenient_accuracy is not None or m.exact_format_ratio is not None:
        cells += [
            ("lenient acc", v(pct(m.lenient_accuracy))),
            ("exact format", v(pct(m.exact_format_ratio))),
        ]
    return cells


def dynamic_sampling_cells(m: StepMetrics, v: Callable[..., Text]) -> list[tuple[str, Text]]:
    """With dynamic sampling on: the zero-std share of the groups generated before filtering,
    and the groups dropped / generation rounds (red when the batch could not be filled)."""
    if m.batch_filled is None:
        return []
    gen, zero = m.groups_generated, m.zero_std_groups_generated
    seen = pct(zero / gen) if gen and zero is not None else "–"
    return [
        ("zero-std gen", v(f"{seen} of {gen}")),
        (
            "dropped/rnds",
            v(f"{m.zero_std_groups_dropped} / {m.generation_rounds}", not m.batch_filled),
        ),
    ]


def metric_lines(view: RunView) -> list[Text]:
    """The long facts of the metrics panel, one line each: reward parts, top answer."""
    m = view.last
    if m is None:
        return []
    out = []
    if m.rewards:
        t = Text("reward parts ", style="dim")
        t.append(" ".join(f"{short_reward_name(k)} {num(x, '.2f')}" for k, x in m.rewards.items()))
        out.append(t)
    if m.top_answer_pattern is not None:
        t = Text("top answer   ", style="dim")
        collapsed = "answer_collapse" in view.tracker.active
        t.append(
            f"{m.top_answer_pattern} {pct(m.top_answer_pattern_share)} of answers, "
            f"{pct(m.top_answer_pattern_truth_share)} of truths",
            style="bold red" if collapsed else "",
        )
        out.append(t)
    for t in out:
        t.no_wrap, t.overflow = True, "ellipsis"
    return out


def metrics_grid(view: RunView) -> list[Text]:
    """The metric cells two per line: label (12 wide), value (14 wide), label, value."""
    cells = metric_cells(view)
    lines = []
    for i in range(0, len(cells), 2):
        line = Text(no_wrap=True, overflow="ellipsis")
        for k, (label, value) in enumerate(cells[i : i + 2]):
            line.append(f"{label:<12} ", style="dim")
            line.append_text(value)
            if k == 0 and i + 1 < len(cells):
                line.append(" " * max(1, 15 - len(value.plain)))
        lines.append(line)
    return lines


_SERIES: tuple[tuple[str, str, float | None, float | None, str], ...] = (
    # label, attribute, fixed low, fixed high, value format
    ("reward", "reward_mean", None, None, ".2f"),
    ("accuracy", "all_correct_ratio", 0.0, 1.0, ".0%"),
    ("format err", "format_error_ratio", 0.0, 1.0, ".0%"),
    ("length", "completion_length_mean", None, None, ".0f"),
)


def history_lines(view: RunView, width: int) -> list[Text]:
    """One sparkline per series over the latest steps (at most 8 per cell)."""
    label_w, value_w = 11, 7
    spark_w = max(4, width - label_w - value_w - 2)
    recent = list(view.metrics)[-spark_w * 8 :]
    stages = [m.stage for m in recent]
    lines = []
    for label, attr, lo, hi, fmt in _SERIES:
        values = [getattr(m, attr) for m in recent]
        line = Text(f"{label:<{label_w}}", style="dim", no_wrap=True, overflow="ellipsis")
        if values:
            line.append_text(sparkline(values, stages, spark_w, lo=lo, hi=hi))
            last = values[-1]
            line.append(f" {num(last, fmt):>{value_w}}")
        else:
            line.append("–", style="dim")
        lines.append(line)
    return lines


_TAG = re.compile(r"</?think>|</?answer>")
_STYLE_TAG = {"<think>": "bold cyan", "</think>": "bold cyan"}
_STYLE_REGION = {"think": "italic", "answer": "bold green", "after": "red", None: ""}


def _highlight_lines(completion: str) -> list[Text]:
    """The completion as styled lines: tags bold, thinking italic, the answer green,
    anything after ``</answer>`` red (it costs the format reward)."""
    out: list[Text] = []
    region: str | None = None
    for raw in completion.split("\n"):
        line = Text()
        pos = 0
        for match in _TAG.finditer(raw):
            if match.start() > pos:
                line.append(raw[pos : match.start()], style=_STYLE_REGION[region])
            tag = match.group()
            line.append(tag, style=_STYLE_TAG.get(tag, "bold magenta"))
            region = {"<think>": "think", "</think>": None, "<answer>": "answer"}.get(tag, "after")
            pos = match.end()
        if pos < len(raw):
            line.append(raw[pos:], style=_STYLE_REGION[region])
        out.append(line)
    return out


def completion_lines(completion: str, max_rows: int, width: int) -> list[Text]:
    """The completion highlighted, cut to its head and tail within ``max_rows`` screen rows."""
    return fit_lines(_highlight_lines(completion), max_rows, width)


_KIND_STYLE = {
    "correct": "bold green",
    "wrong": "bold red",
    "unparsed": "bold yellow",
    "format_error": "bold yellow",
}


def sample_header(s: CompletionSample) -> Text:
    """Step, people, puzzle, temperature, the score kind and its parts."""
    t = Text()
    t.append(f"step {s.global_step} · {s.people} people · {s.puzzle_id[:10]}", style="dim")
    if s.temperature is not None:
        t.append(f" · T {s.temperature:.2f}", style="dim")
    t.append("  ")
    t.append(s.kind, style=_KIND_STYLE.get(s.kind, "bold"))
    t.append(
        f"  format {num(s.format, '.2f')} + answer {num(s.answer, '.2f')} = "
        f"total {num(s.total, '.2f')}"
    )
    if s.reason:
        t.append(f"  ({s.reason})", style="dim")
    return t


def truth_text(s: CompletionSample) -> Text:
    """The true answer, its lines joined on one line."""
    t = Text("true answer: ", style="dim")
    t.append("; ".join(x.strip() for x in s.solution_text_format.splitlines() if x.strip()))
    return t


def alert_lines(view: RunView, compact: bool, limit: int) -> list[tuple[Text, int]]:
    """(line, indent) pairs of the alerts section, most severe first."""
    active = view.active_alerts()
    if not active:
        t = Text("✓ no alerts", style="green")
        earlier = [a for a in view.alert_log if a.key not in view.tracker.active]
        if earlier:
            t.append(f"  (earlier: {', '.join(sorted({a.title for a in earlier}))})", style="dim")
        return [(t, 0)]
    out: list[tuple[Text, int]] = []
    for a in active[:limit]:
        style = "bold red" if a.severity == "critical" else "bold yellow"
        t = Text(f"⚠ {a.title}", style=style)
        t.append(f" (step {a.global_step}): {a.detail}.")
        if compact:
            t.append(f" Try: {a.advice}", style="dim")
            out.append((t, 0))
        else:  # meaning and advice on lines of their own, indented (also when wrapped)
            out += [(t, 0), (Text(a.meaning), 2), (Text(f"Try: {a.advice}", style="cyan"), 2)]
    if len(active) > limit:
        out.append((Text(f"+{len(active) - limit} more alerts", style="bold yellow"), 0))
    return out


def events_line(view: RunView) -> Text | None:
    """The latest promotions, resumes and interrupts, newest first (None when none)."""
    shown = [e for e in view.events if e.kind != "alert"]
    if not shown:
        return None
    t = Text("events ", style="dim", no_wrap=True, overflow="ellipsis")
    for i, e in enumerate(reversed(shown[-3:])):  # newest first: the end may be cut
        if i:
            t.append(" │ ", style="dim")
        t.append(f"{e.kind} @{e.global_step}", style="bold")
        if e.message:
            t.append(f" {e.message}")
    return t
