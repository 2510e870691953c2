"""Rich live stage dashboard for ``kk-train`` and ``kk-train watch RUN_DIR``.

The dashboard only reads run records (:mod:`stages.run_records`): the trainer hands it each
StepMetrics / CompletionSample / RunEvent as it writes them, and ``kk-train watch`` tails
the same records from a run directory, so both show the same screen. Alerts compare
recorded numbers with :class:`stages.alerts.AlertThresholds`; nothing is recomputed.

Three output modes:

* live: a ``rich.live.Live`` display (stdout is a terminal), re-rendered at most every
  ``min_refresh_interval`` seconds and never more often than keeps rendering CPU under 0.3% of
  wall time; stage transitions and alerts are also printed above it as a log;
* plain: one log line per step with the same numbers, alert lines, stage lines (CI, pipes,
  ``--no-dashboard``);
* silent: collect only (``kk-train watch --once`` renders once at the end).

>>> from rich.console import Console
>>> from stages.run_records import RunInfo
>>> console = Console(width=100, record=True, color_system=None)
>>> info = RunInfo(run_name="demo", model="tiny", device="cpu", started_at=0.0, total_steps=4)
>>> with StageDashboard("runs/demo", live=False, console=console) as dash:
...     dash.start(info)
...     dash.stage_start("format")
...     dash.finish()
kk-train run demo: model tiny, device cpu, 4 steps in 0 stages
== stage format (1/1) started ==
...run summary...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from stages import run_records as rr
from stages.alerts import Alert, AlertThresholds, AlertTracker, check_alerts
from stages.run_records import CompletionSample, RunEvent, RunInfo, StagePlan, StepMetrics

__all__ = [
    "RunView",
    "StageDashboard",
    "plain_step_line",
    "render_dashboard",
    "sparkline",
    "summary_table",
    "watch_main",
]

_SPARK = "▁▂▃▄▅▆▇█"
_FULL_MIN_WIDTH = 100  # narrower terminals get the compact one-line-per-fact layout
_FULL_MIN_HEIGHT = 30
_RENDER_BUDGET = 0.003  # redraws may use at most this CPU time per second of wall time


# ----------------------------------------------------------------------------- formatting


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _ge(x: float | None, threshold: float) -> bool:
    return x is not None and x >= threshold


def _pct(x: float | None) -> str:
    if x is None:
        return "–"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.1%}"


def _num(x: float | None, fmt: str = ".3f") -> str:
    if x is None:
        return "–"
    if not math.isfinite(x):
        return str(x)
    return format(x, fmt)


def _sci(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.2e}" if math.isfinite(x) else str(x)


def _duration(seconds: float | None) -> str:
    """``3:05`` or ``1:02:03``.

    >>> _duration(65), _duration(3723.4), _duration(None)
    ('1:05', '1:02:03', '–')
    """
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = int(max(0.0, seconds) + 0.5)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _people(mix: dict[str, float] | None) -> str:
    """Person-count mix: ``3`` or ``3:50% 4:50%``.

    >>> _people({"3": 1.0}), _people({"3": 1, "4": 3})
    ('3', '3:25% 4:75%')
    """
    if not mix:
        return "–"
    total = sum(float(w) for w in mix.values()) or 1.0
    items = sorted(mix.items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else 0)
    if len(items) == 1:
        return str(items[0][0])
    return " ".join(f"{k}:{float(w) / total:.0%}" for k, w in items)


def _t(x: float) -> str:
    """A temperature with at least one decimal: ``1.0``, ``1.2``, ``0.95``."""
    text = f"{x:.2f}"
    return text[:-1] if text.endswith("0") else text


def _temperature(plan: StagePlan) -> str:
    if plan.temperature_end is None or plan.temperature_end == plan.temperature_start:
        return _t(plan.temperature_start)
    return f"{_t(plan.temperature_start)}→{_t(plan.temperature_end)} {plan.temperature_schedule}"


def _short_reward_name(name: str) -> str:
    for prefix in ("logic_rl_", "rewards/"):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
    return name.removesuffix("/mean")


# ----------------------------------------------------------------------------- sparkline


def sparkline(
    values: Sequence[float | None],
    stages: Sequence[str],
    width: int,
    *,
    lo: float | None = None,
    hi: float | None = None,
    current: str | None = None,
) -> Text:
    """A one-line chart of ``values`` (oldest first) at most ``width`` cells wide.

    Points are averaged into buckets that never straddle a stage; a ``│`` marks each stage
    boundary; the current stage is bright, earlier ones dim. ``lo``/``hi`` fix the scale
    (ratios use 0..1), otherwise it spans the finite values shown. Missing or non-finite
    values show as a space.

    >>> sparkline([0.0, 0.5, 1.0], ["a", "a", "a"], 10, lo=0.0, hi=1.0).plain
    '▁▅█'
    >>> sparkline([0.0, 1.0, 0.0, 1.0], ["a", "a", "b", "b"], 10).plain
    '▁█│▁█'
    >>> sparkline(list(range(100)), ["a"] * 100, 5).plain
    '▁▃▅▇█'
    """
    width = max(1, width)
    segments: list[tuple[str, list[float | None]]] = []
    for value, stage in zip(values, stages, strict=True):
        if not segments or segments[-1][0] != stage:
            segments.append((stage, []))
        segments[-1][1].append(value)
    while len(segments) > 1 and sum(len(s[1]) for s in segments) + len(segments) - 1 > width:
        # Too many stages to show each with a boundary: drop the oldest whole stage first
        # when it cannot get at least a few cells.
        if len(segments) - 1 + 2 * len(segments) > width:
            segments.pop(0)
        else:
            break
    avail = max(len(segments), width - (len(segments) - 1))
    total = sum(len(s[1]) for s in segments)
    if total > avail:
        # Give each stage columns in proportion to its points (at least one each).
        cols = [max(1, len(s[1]) * avail // total) for s in segments]
        while sum(cols) > avail:
            cols[cols.index(max(cols))] -= 1
        buckets = []
        for (stage, pts), n in zip(segments, cols, strict=True):
            n = min(n, len(pts))
            out: list[float | None] = []
            for j in range(n):
                chunk = [
                    v
                    for v in pts[j * len(pts) // n : (j + 1) * len(pts) // n]
                    if v is not None and math.isfinite(v)
                ]
                out.append(sum(chunk) / len(chunk) if chunk else None)
            buckets.append((stage, out))
        segments = buckets
    finite = [v for _, pts in segments for v in pts if v is not None and math.isfinite(v)]
    low = lo if lo is not None else (min(finite) if finite else 0.0)
    high = hi if hi is not None else (max(finite) if finite else 1.0)
    span = high - low
    text = Text()
    last_stage = segments[-1][0] if segments else None
    current = current if current is not None else last_stage
    for i, (stage, pts) in enumerate(segments):
        if i:
            text.append("│", style="yellow")
        chars = []
        for v in pts:
            if v is None or not math.isfinite(v):
                chars.append(" ")
            elif span <= 0:
                chars.append(_SPARK[len(_SPARK) // 2 - 1])
            else:
                level = (min(max(v, low), high) - low) / span
                chars.append(_SPARK[min(len(_SPARK) - 1, int(level * len(_SPARK)))])
        text.append("".join(chars), style="bold cyan" if stage == current else "dim cyan")
    return text


# ----------------------------------------------------------------------------- state


@dataclass
class _StageStats:
    name: str
    steps: int = 0
    first_step: int | None = None
    last_step: int | None = None
    began: float | None = None  # unix time the first step started
    ended_at: float | None = None  # unix time of the last step's end
    tail: deque[StepMetrics] = field(default_factory=lambda: deque(maxlen=5))
    ended: bool = False

    def add(self, m: StepMetrics) -> None:
        self.steps += 1
        if self.first_step is None:
            self.first_step = m.global_step
            self.began = m.time - (max(0.0, m.step_seconds) if _finite(m.step_seconds) else 0.0)
        self.last_step = m.global_step
        self.ended_at = m.time
        self.tail.append(m)

    @property
    def seconds(self) -> float | None:
        if self.began is None or self.ended_at is None:
            return None
        return self.ended_at - self.began

    def tail_mean(self, attr: str) -> float | None:
        vals = [getattr(m, attr) for m in self.tail]
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        return sum(vals) / len(vals) if vals else None


class RunView:
    """What the dashboard knows about a run, built only from run records.

    History is kept in bounded deques, so memory and per-step work stay constant however
    long the run is.
    """

    def __init__(self, thresholds: AlertThresholds | None = None, history_limit: int = 4096):
        self.thresholds = thresholds or AlertThresholds()
        self.info: RunInfo | None = None
        self.metrics: deque[StepMetrics] = deque(maxlen=history_limit)
        self._alert_window: deque[StepMetrics] = deque(maxlen=512)
        self.sample: CompletionSample | None = None
        self.events: deque[RunEvent] = deque(maxlen=6)
        self.stats: dict[str, _StageStats] = {}
        self.current: str | None = None
        self.finished = False
        self.finished_at: float | None = None
        self.last_record_time: float | None = None
        self.tracker = AlertTracker()
        self.alert_log: deque[Alert] = deque(maxlen=20)

    # -- queries
    @property
    def plans(self) -> list[StagePlan]:
        return list(self.info.stages) if self.info else []

    def plan(self, name: str | None) -> StagePlan | None:
        for p in self.plans:
            if p.name == name:
                return p
        return None

    def stage_names(self) -> list[str]:
        names = [p.name for p in self.plans]
        names += [n for n in self.stats if n not in names]
        return names

    def status(self, name: str) -> str:
        """``done`` | ``running`` | ``pending`` (``not run`` for stages a finished run skipped)."""
        st = self.stats.get(name)
        if st is not None and st.ended:
            return "done"
        if name == self.current and not self.finished:
            return "running"
        names = self.stage_names()
        if st is not None and (self.finished or self._later_started(name, names)):
            return "done"
        return "not run" if self.finished else "pending"

    def _later_started(self, name: str, names: list[str]) -> bool:
        i = names.index(name)
        return any(n in self.stats and self.stats[n].steps for n in names[i + 1 :])

    @property
    def last(self) -> StepMetrics | None:
        return self.metrics[-1] if self.metrics else None

    @property
    def total_steps(self) -> int | None:
        """Planned steps; once steps arrive, steps done plus what the plan has left, so an
        early promotion shortens the total instead of leaving the planned figure."""
        if self.plans and self.last is not None:
            left = self.remaining_steps()
            if left is not None:
                return self.last.global_step + left
        if self.info and self.info.total_steps:
            return self.info.total_steps
        return None

    def remaining_steps(self) -> int | None:
        """Steps left by the plan: the current stage's rest plus every pending stage."""
        if self.finished:
            return 0
        last = self.last
        if not self.plans:
            if self.total_steps is None:
                return None
            return max(0, self.total_steps - (last.global_step if last else 0))
        left = 0
        for p in self.plans:
            status = self.status(p.name)
            length = p.end_step - p.start_step + 1
            if status == "pending":
                left += length
            elif status == "running":
                done = self.stats[p.name].steps if p.name in self.stats else 0
                left += max(0, length - done)
        return left

    def seconds_per_step(self) -> float | None:
        n = min(10, len(self.metrics))
        recent = [self.metrics[-i].step_seconds for i in range(1, n + 1)]
        recent = [x for x in recent if _finite(x)]
        return sum(recent) / len(recent) if recent else None

    def eta(self) -> float | None:
        left, sps = self.remaining_steps(), self.seconds_per_step()
        if left is None or sps is None:
            return None
        return left * sps

    def active_alerts(self) -> list[Alert]:
        return list(self.tracker.active.values())

    # -- updates
    def set_info(self, info: RunInfo | None) -> None:
        self.info = info

    def enter_stage(self, name: str) -> bool:
        """Make ``name`` the current stage; True when this is news."""
        if name == self.current:
            return False
        if self.current is not None and self.current in self.stats:
            self.stats[self.current].ended = True
        self.current = name
        self.stats.setdefault(name, _StageStats(name))
        return True

    def end_stage(self, name: str) -> bool:
        st = self.stats.setdefault(name, _StageStats(name))
        if st.ended:
            return False
        st.ended = True
        return True

    def add_metrics(self, m: StepMetrics) -> list[Alert]:
        """Record one step; return the alerts that became active at it."""
        if self.metrics and m.global_step <= self.metrics[-1].global_step:
            self._rewind(m.global_step)  # a resumed run repeats steps after its checkpoint
        if not self._is_earlier(m.stage, self.current):  # a late record never moves us back
            self.enter_stage(m.stage)
        self.stats.setdefault(m.stage, _StageStats(m.stage))
        self.metrics.append(m)
        self._alert_window.append(m)
        self.stats[m.stage].add(m)
        self.last_record_time = max(self.last_record_time or 0.0, m.time)
        new = self.tracker.update(check_alerts(self._alert_window, self.thresholds))
        self.alert_log.extend(new)
        return new

    def _is_earlier(self, name: str, than: str | None) -> bool:
        names = self.stage_names()
        if than is None or name == than or name not in names or than not in names:
            return False
        return names.index(name) < names.index(than)

    def _rewind(self, step: int) -> None:
        kept = [m for m in self.metrics if m.global_step < step]
        ended = {n for n, s in self.stats.items() if s.ended}
        self.metrics.clear()
        self._alert_window.clear()
        self.stats = {}
        self.current = None
        for m in kept:
            self.metrics.append(m)
            self._alert_window.append(m)
            self.stats.setdefault(m.stage, _StageStats(m.stage)).add(m)
            self.current = m.stage
        for n in ended:
            if n in self.stats and n != self.current:
                self.stats[n].ended = True

    def add_sample(self, s: CompletionSample) -> None:
        self.sample = s

    def add_event(self, ev: RunEvent) -> None:
        self.last_record_time = max(self.last_record_time or 0.0, ev.time)
        if ev.kind in ("promotion", "resume", "interrupt", "eval", "run_end", "alert"):
            self.events.append(ev)
        if ev.kind == "run_end":
            self.mark_finished(ev.time)

    def mark_finished(self, when: float | None = None) -> None:
        self.finished = True
        self.finished_at = when if when is not None else self.last_record_time
        if self.current is not None and self.current in self.stats:
            self.stats[self.current].ended = True


# ----------------------------------------------------------------------------- rendering


def _header_text(view: RunView, now: float) -> Text:
    info = view.info
    t = Text()
    t.append("kk-rl ", style="bold magenta")
    t.append(info.run_name if info else "(waiting for run.json)", style="bold")
    if info:
        t.append(f"  model {info.model}  device {info.device}", style="")
        end = view.finished_at if view.finished and view.finished_at else now
        if view.finished:
            t.append(f"  finished in {_duration(end - info.started_at)}", style="green")
        else:
            t.append(f"  elapsed {_duration(now - info.started_at)}")
            t.append(f"  ETA {_duration(view.eta())}", style="bold")
            if view.last_record_time is not None and now - view.last_record_time > 60:
                t.append(
                    f"  no new record for {_duration(now - view.last_record_time)}",
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


def _columns(rows: list[list[Text]], gap: int = 2) -> list[Text]:
    """Cells padded into aligned columns, one Text per row (much cheaper than a rich Table).

    >>> [t.plain for t in _columns([[Text("a"), Text("bb")], [Text("ccc"), Text("d")]])]
    ['a    bb', 'ccc  d']
    """
    widths = (
        [max(cell_len(row[c].plain) for row in rows) for c in range(len(rows[0]))] if rows else []
    )
    out = []
    for row in rows:
        line = Text(no_wrap=True, overflow="ellipsis")
        for c, cell in enumerate(row):
            line.append_text(cell)
            if c < len(row) - 1:
                line.append(" " * (widths[c] - cell_len(cell.plain) + gap))
        out.append(line)
    return out


def _timeline_table(view: RunView) -> list[Text]:
    header = ("stage", "status", "people", "n", "prompts", "steps", "temperature")
    rows = [[Text(h, style="bold dim") for h in header]]
    for name in view.stage_names():
        label, style = _STATUS_STYLE[view.status(name)]
        plan = view.plan(name)
        rows.append(
            [
                Text(name, style="bold" if name == view.current else ""),
                Text(label, style=style),
                Text(_people(plan.people) if plan else "–"),
                Text(str(plan.num_generations) if plan else "–"),
                Text(str(plan.prompts_per_step) if plan else "–"),
                Text(_step_range(view, name)),
                Text(_temperature(plan) if plan else "–"),
            ]
        )
    return _columns(rows)


def _timeline_line(view: RunView) -> Text:
    t = Text("stages ", style="dim")
    for i, name in enumerate(view.stage_names()):
        status = view.status(name)
        label, style = _STATUS_STYLE[status]
        plan = view.plan(name)
        if i:
            t.append(" │ ", style="dim")
        t.append(f"{label[0]}{name} {_step_range(view, name)}", style=style)
        if plan and status == "running":
            t.append(f" n{plan.num_generations} p{_people(plan.people)}", style=style)
    return t


def _bar(done: int, total: int, width: int) -> Text:
    width = max(1, width)
    filled = round(width * min(done, total) / max(1, total))
    bar = Text("━" * filled, style="magenta" if done < total else "green")
    bar.append("━" * (width - filled), style="grey23")
    return bar


def _progress_text(view: RunView, bar_width: int) -> list[Text]:
    """Global and stage progress bars."""
    last = view.last
    rows: list[list[Text]] = []
    total = view.total_steps
    step = last.global_step if last else 0
    if total:
        rows.append(
            [
                Text(f"step {step}/{total}", style="bold"),
                _bar(step, total, bar_width),
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
                    _bar(done, length, bar_width),
                    Text(f"{min(done, length) / max(1, length):.0%}"),
                ]
            )
        else:
            rows.append([Text(f"{view.current} {done}", style="yellow"), Text(""), Text("")])
    return _columns(rows, gap=1)


def _metric_cells(view: RunView) -> list[tuple[str, Text]]:
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
        ("reward", v(f"{_num(m.reward_mean)} ± {_num(m.reward_std)}", nonfinite(m.reward_mean))),
        ("all correct", v(_pct(m.all_correct_ratio), good=_ge(m.all_correct_ratio, 0.5))),
        ("format err", v(_pct(m.format_error_ratio), _ge(m.format_error_ratio, 0.5))),
        ("wrong answer", v(_pct(m.wrong_answer_ratio))),
        ("unparsed", v(_pct(m.unparsed_ratio))),
        ("length mean", v(_num(m.completion_length_mean, ".1f"))),
        (
            "length max",
            v(
                f"{_num(m.completion_length_max, '.0f')} (min {_num(m.completion_length_min, '.0f')})"
            ),
        ),
        ("truncated", v(_pct(m.truncation_ratio), _ge(m.truncation_ratio, t.truncation_ratio))),
        (
            "zero-std grp",
            v(_pct(m.frac_zero_std_groups), _ge(m.frac_zero_std_groups, t.zero_std_ratio)),
        ),
        ("KL", v(_num(m.kl, ".4g"), nonfinite(m.kl) or (m.kl or 0.0) >= t.kl_max)),
        ("entropy", v(_num(m.entropy, ".3f"), nonfinite(m.entropy))),
        ("LR", v(_sci(m.learning_rate))),
        ("temperature", v(_num(m.temperature, ".2f"))),
        ("tokens/s", v(_num(m.tokens_per_second, ".0f"))),
        ("step time", v(f"{_num(m.step_seconds, '.2f')} s")),
        ("loss", v(_num(m.loss, ".4g"), nonfinite(m.loss) or m.loss == 0.0)),
        ("grad norm", v(_num(m.grad_norm, ".3g"), nonfinite(m.grad_norm))),
    ]
    if m.lenient_accuracy is not None or m.exact_format_ratio is not None:
        cells += [
            ("lenient acc", v(_pct(m.lenient_accuracy))),
            ("exact format", v(_pct(m.exact_format_ratio))),
        ]
    return cells


def _metric_lines(view: RunView) -> list[Text]:
    """The long facts of the metrics panel, one line each: reward parts, top answer."""
    m = view.last
    if m is None:
        return []
    out = []
    if m.rewards:
        t = Text("reward parts ", style="dim")
        t.append(
            " ".join(f"{_short_reward_name(k)} {_num(x, '.2f')}" for k, x in m.rewards.items())
        )
        out.append(t)
    if m.top_answer_pattern is not None:
        t = Text("top answer   ", style="dim")
        collapsed = "answer_collapse" in view.tracker.active
        t.append(
            f"{m.top_answer_pattern} {_pct(m.top_answer_pattern_share)} of answers, "
            f"{_pct(m.top_answer_pattern_truth_share)} of truths",
            style="bold red" if collapsed else "",
        )
        out.append(t)
    for t in out:
        t.no_wrap, t.overflow = True, "ellipsis"
    return out


def _metrics_grid(view: RunView) -> list[Text]:
    """The metric cells two per line: label (12 wide), value (14 wide), label, value."""
    cells = _metric_cells(view)
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


def _history_lines(view: RunView, width: int) -> list[Text]:
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
            line.append(f" {_num(last, fmt):>{value_w}}")
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


def _rows(text: str, width: int) -> int:
    """Screen rows that ``text`` takes when wrapped at ``width`` (an estimate: no word wrap)."""
    return sum(max(1, -(-len(part) // max(1, width))) for part in text.split("\n"))


def _fit_lines(lines: list[Text], max_lines: int, width: int) -> list[Text]:
    """Keep the head and the tail (where the answer is) within ``max_lines`` screen rows."""
    for t in lines:
        if len(t.plain) <= width:
            t.no_wrap = True  # nothing to wrap: skip rich's (costly) line division

    def rows(t: Text) -> int:
        return _rows(t.plain, width)

    if sum(rows(t) for t in lines) <= max_lines:
        return lines
    budget = max(1, max_lines - 1)
    tail: list[Text] = []
    used = 0
    for t in reversed(lines):
        if used + rows(t) > max(1, (budget * 2) // 3) and tail:
            break
        tail.insert(0, t)
        used += rows(t)
    head: list[Text] = []
    for t in lines[: len(lines) - len(tail)]:
        if used + rows(t) > budget:
            break
        head.append(t)
        used += rows(t)
    hidden = len(lines) - len(head) - len(tail)
    return [*head, Text(f"… {hidden} more lines …", style="dim"), *tail] if hidden else lines


_KIND_STYLE = {
    "correct": "bold green",
    "wrong": "bold red",
    "unparsed": "bold yellow",
    "format_error": "bold yellow",
}


def _sample_header(s: CompletionSample) -> Text:
    t = Text()
    t.append(f"step {s.global_step} · {s.people} people · {s.puzzle_id[:10]}", style="dim")
    if s.temperature is not None:
        t.append(f" · T {s.temperature:.2f}", style="dim")
    t.append("  ")
    t.append(s.kind, style=_KIND_STYLE.get(s.kind, "bold"))
    t.append(
        f"  format {_num(s.format, '.2f')} + answer {_num(s.answer, '.2f')} = "
        f"total {_num(s.total, '.2f')}"
    )
    if s.reason:
        t.append(f"  ({s.reason})", style="dim")
    return t


def _truth_text(s: CompletionSample) -> Text:
    t = Text("true answer: ", style="dim")
    t.append("; ".join(x.strip() for x in s.solution_text_format.splitlines() if x.strip()))
    return t


def _alert_lines(view: RunView, compact: bool, limit: int) -> list[tuple[Text, int]]:
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


def _events_line(view: RunView) -> Text | None:
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


def _render_compact(view: RunView, width: int, height: int | None, now: float) -> Group:
    """One fact per line, no borders: fits 80x24 with the key facts at the top."""

    def line(t: Text) -> Text:
        t.no_wrap = True
        t.overflow = "ellipsis"
        return t

    rows: list[RenderableType] = [
        line(_header_text(view, now)),
        line(_timeline_line(view)),
        *_progress_text(view, max(10, width - 30)),
    ]
    m = view.last
    if m is not None:
        rows.append(
            line(
                Text(
                    f"reward {_num(m.reward_mean, '.2f')}±{_num(m.reward_std, '.2f')}  "
                    f"correct {_pct(m.all_correct_ratio)}  fmt err {_pct(m.format_error_ratio)}  "
                    f"wrong {_pct(m.wrong_answer_ratio)}  unparsed {_pct(m.unparsed_ratio)}"
                )
            )
        )
        rows.append(
            line(
                Text(
                    f"len {_num(m.completion_length_mean, '.0f')}/max "
                    f"{_num(m.completion_length_max, '.0f')}  trunc {_pct(m.truncation_ratio)}  "
                    f"zero-std {_pct(m.frac_zero_std_groups)}  KL {_num(m.kl, '.3g')}  "
                    f"ent {_num(m.entropy, '.2f')}"
                )
            )
        )
        rows.append(
            line(
                Text(
                    f"LR {_sci(m.learning_rate)}  T {_num(m.temperature, '.2f')}  "
                    f"tok/s {_num(m.tokens_per_second, '.0f')}  step {_num(m.step_seconds, '.1f')}s  "
                    f"loss {_num(m.loss, '.3g')}",
                    style="dim",
                )
            )
        )
    else:
        rows.append(line(Text("waiting for the first step…", style="dim")))
    progress_rows = 1 + (1 if view.current is not None else 0)
    used = 2 + progress_rows + (3 if m is not None else 1)
    alert_limit = 3 if height is None or height >= 20 else 1
    alerts = [line(t) for t, _ in _alert_lines(view, compact=True, limit=alert_limit)]
    rows += alerts
    used += len(alerts)
    events = _events_line(view)
    if events is not None:
        rows.append(line(events))
        used += 1
    history = [line(t) for t in _history_lines(view, width)]
    if height is None or height - used >= len(history) + 3:
        rows += history
        used += len(history)
    if view.sample is not None:
        budget = 40 if height is None else height - used - 3
        if budget >= 1:
            rows.append(Rule(style="dim"))
            rows.append(line(_sample_header(view.sample)))
            rows.append(line(_truth_text(view.sample)))
            body = _fit_lines(_highlight_lines(view.sample.completion), budget, width)
            rows += body  # wrapped: a tiny model's completion is often one long line
    return Group(*rows)


class _SideBySide:
    """Two renderables side by side (a Table.grid does this too, at several times the cost)."""

    def __init__(self, left: RenderableType, right: RenderableType, left_width: int) -> None:
        self.left, self.right, self.left_width = left, right, left_width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lw = min(self.left_width, options.max_width)
        rw = max(1, options.max_width - lw)
        left = console.render_lines(self.left, options.update(width=lw, height=None), pad=True)
        right = console.render_lines(self.right, options.update(width=rw, height=None), pad=True)
        height = max(len(left), len(right))
        left += [[Segment(" " * lw)]] * (height - len(left))
        right += [[Segment(" " * rw)]] * (height - len(right))
        new_line = Segment.line()
        for a, b in zip(left, right, strict=True):
            yield from a
            yield from b
            yield new_line


def _render_full(view: RunView, width: int, height: int | None, now: float) -> Group:
    header_rows: list[RenderableType] = [_header_text(view, now), *_timeline_table(view)]
    events = _events_line(view)
    if events is not None:
        header_rows.append(events)
    header = Panel(
        Group(*header_rows), title=Text("kk-train"), title_align="left", border_style="blue"
    )
    header_h = 2 + 1 + 1 + len(view.stage_names()) + (1 if events is not None else 0)

    left_w = min(64, width // 2)
    right_w = width - left_w
    metrics = Panel(
        Group(
            *_progress_text(view, max(10, left_w - 28)),
            *_metrics_grid(view),
            *_metric_lines(view),
        ),
        title=Text(f"metrics · {view.current or '–'}"),
        title_align="left",
        border_style="blue",
        width=left_w,
    )
    history_body = [*_history_lines(view, right_w - 4)]
    history_body.append(Text("│ = stage boundary; bright = current stage", style="dim"))
    history = Panel(
        Group(*history_body), title=Text("history"), title_align="left", border_style="blue"
    )
    row = _SideBySide(metrics, history, left_w)
    metrics_h = 2 + 2 + (len(_metric_cells(view)) + 1) // 2 + len(_metric_lines(view))

    alerts = _alert_lines(view, compact=False, limit=4)
    alerts_panel = Panel(
        Group(*(Padding(t, (0, 0, 0, indent)) if indent else t for t, indent in alerts)),
        title=Text("alerts"),
        title_align="left",
        border_style="red" if view.active_alerts() else "green",
    )
    alerts_h = 2 + sum(_rows(t.plain, width - 4 - indent) for t, indent in alerts)

    parts: list[RenderableType] = [header, row, alerts_panel]
    if view.sample is not None:
        s = view.sample
        used = header_h + metrics_h + alerts_h
        # 4: sample panel borders and header lines; 3: the rule, the Live cursor line, a spare.
        budget = 30 if height is None else height - used - 4 - 3
        if budget >= 2:
            body = _fit_lines(_highlight_lines(s.completion), budget, width - 4)
            parts.append(
                Panel(
                    Group(_sample_header(s), _truth_text(s), Rule(style="dim"), *body),
                    title=Text("latest sample"),
                    title_align="left",
                    border_style="blue",
                )
            )
    return Group(*parts)


def render_dashboard(
    view: RunView, *, width: int, height: int | None = None, now: float | None = None
) -> RenderableType:
    """The whole dashboard for a ``width`` x ``height`` screen (height None = unlimited).

    Wide screens (>= 100 columns, >= 30 rows when limited) get panels; smaller ones a
    compact layout that keeps the key facts (step, reward, accuracy, format errors,
    alerts) at the top, so a cropped bottom loses only the sample.
    """
    now = time.time() if now is None else now
    full = width >= _FULL_MIN_WIDTH and (height is None or height >= _FULL_MIN_HEIGHT)
    return (_render_full if full else _render_compact)(view, width, height, now)


class _ScreenView:
    """Renders at draw time so that a resized terminal gets the matching layout."""

    def __init__(self, view: RunView, clock: Callable[[], float], fit_height: bool):
        self.view, self.clock, self.fit_height = view, clock, fit_height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.size.height if self.fit_height else None
        try:
            frame = render_dashboard(
                self.view, width=options.max_width, height=height, now=self.clock()
            )
        except Exception as exc:  # a drawing bug must not break every print or the training
            frame = Text(f"dashboard error: {type(exc).__name__}: {exc}", style="red")
        yield frame


def summary_table(view: RunView) -> Table:
    """End-of-run table: per stage steps, wall time, and the last-5-step means of
    accuracy, format error, mean length, zero-std groups and truncation."""
    table = Table(
        title="run summary (accuracy etc.: mean of each stage's last 5 steps)",
        box=None,  # no borders: fits 80 columns with all nine columns
        pad_edge=False,
        header_style="bold underline",
    )
    table.add_column("stage", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for col in ("steps", "time", "accuracy", "fmt err", "mean len", "zero-std", "trunc"):
        table.add_column(col, justify="right", no_wrap=True)
    for name in view.stage_names():
        st = view.stats.get(name)
        if st is None or not st.steps:
            table.add_row(name, view.status(name), "0", "–", "–", "–", "–", "–", "–")
            continue
        table.add_row(
            name,
            view.status(name),
            str(st.steps),
            _duration(st.seconds),
            _pct(st.tail_mean("all_correct_ratio")),
            _pct(st.tail_mean("format_error_ratio")),
            _num(st.tail_mean("completion_length_mean"), ".1f"),
            _pct(st.tail_mean("frac_zero_std_groups")),
            _pct(st.tail_mean("truncation_ratio")),
        )
    return table


def plain_step_line(view: RunView, m: StepMetrics) -> str:
    """The one log line per step of plain mode (same facts as the metrics panel)."""
    st = view.stats.get(m.stage)
    plan = view.plan(m.stage)
    stage_pos = f"{st.steps if st else m.stage_step}"
    if plan is not None:
        stage_pos += f"/{plan.end_step - plan.start_step + 1}"
    total = f"/{view.total_steps}" if view.total_steps else ""
    parts = " ".join(f"{_short_reward_name(k)}={_num(x, '.3f')}" for k, x in m.rewards.items())
    line = (
        f"step {m.global_step}{total} [{m.stage} {stage_pos}] "
        f"reward {_num(m.reward_mean)}±{_num(m.reward_std)}{' (' + parts + ')' if parts else ''} "
        f"| correct {_num(m.all_correct_ratio)} fmt_err {_num(m.format_error_ratio)} "
        f"wrong {_num(m.wrong_answer_ratio)} unparsed {_num(m.unparsed_ratio)} "
        f"| len {_num(m.completion_length_mean, '.1f')} max {_num(m.completion_length_max, '.0f')} "
        f"trunc {_num(m.truncation_ratio)} zero_std {_num(m.frac_zero_std_groups)} "
        f"| kl {_num(m.kl, '.4g')} ent {_num(m.entropy)} loss {_num(m.loss, '.4g')} "
        f"| lr {_sci(m.learning_rate)} T {_num(m.temperature, '.2f')} "
        f"| {_num(m.tokens_per_second, '.0f')} tok/s {_num(m.step_seconds, '.2f')} s/step "
        f"ETA {_duration(view.eta())}"
    )
    return line


# ----------------------------------------------------------------------------- the dashboard


class StageDashboard:
    """The training dashboard. The trainer calls, in order: ``start(info)``, then per stage
    ``stage_start(name)``, ``step(metrics, sample)`` each step, ``stage_end(name)``; any
    ``event(ev)``; ``finish()`` at the end; ``close()`` (or use it as a context manager).

    ``live=None``: live when the console is a terminal (pass ``live=False`` for
    ``--no-dashboard``). ``step`` returns the alerts that became active at that step, so
    the caller can record them (``stages.alerts.alert_event``) in events.jsonl.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        live: bool | None = None,
        console: Console | None = None,
        thresholds: AlertThresholds | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.console = console if console is not None else Console()
        if live is None:
            live = self.console.is_terminal and not self.console.is_dumb_terminal
        self.mode = "live" if live else "plain"
        self.view = RunView(thresholds)
        self.min_refresh_interval = 0.5  # seconds; at most 2 redraws per second
        self.render_budget = _RENDER_BUDGET  # max CPU seconds redrawing per wall second
        self.render_seconds = 0.0  # total CPU time spent redrawing (benchmarks read it)
        self.renders = 0
        self._clock: Callable[[], float] = time.time
        self._live: Any = None
        self._last_render = -math.inf
        self._render_cost = 0.0  # CPU seconds of the latest redraw
        self._closed = False
        self._summary_printed = False

    # -- context manager
    def __enter__(self) -> StageDashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- output helpers
    def _say(self, renderable: RenderableType | str) -> None:
        if self.mode == "silent":
            return
        if isinstance(renderable, str):
            self.console.print(renderable, soft_wrap=True, highlight=False, markup=False)
        else:
            self.console.print(renderable)

    def _refresh(self, force: bool = False) -> None:
        if self._live is None:
            return
        interval = max(self.min_refresh_interval, self._render_cost / self.render_budget)
        if not force and time.perf_counter() - self._last_render < interval:
            return
        began = time.thread_time()
        self._live.refresh()
        self._rendered(began)

    def _rendered(self, began_cpu: float) -> None:
        # The cost is this thread's CPU time: on a shared machine the wall time of a redraw
        # includes waiting for other processes, which is not load the dashboard adds.
        self._render_cost = time.thread_time() - began_cpu
        self.render_seconds += self._render_cost
        self.renders += 1
        self._last_render = time.perf_counter()

    def _print_above(self, renderable: RenderableType) -> None:
        """Print above the live display: rich redraws the display too, so count it as one."""
        began = time.thread_time()
        self.console.print(renderable)
        self._rendered(began)

    # -- API
    def start(self, info: RunInfo | None) -> None:
        """Show the run; a resumed run's earlier steps are read back from ``run_dir``."""
        self.view.set_info(info)
        metrics_file = self.run_dir / rr.METRICS_FILE
        if self.mode != "silent" and not self.view.metrics and metrics_file.exists():
            for m in rr.iter_records(metrics_file, StepMetrics):
                self.view.add_metrics(m)
            self.view.tracker.update([])  # old alerts are history, not news
        if self.mode == "live":
            self._start_live()
        elif info is not None and self.mode == "plain":
            self._say(
                f"kk-train run {info.run_name}: model {info.model}, device {info.device}, "
                f"{info.total_steps} steps in {len(info.stages)} stages"
            )

    def _start_live(self) -> None:
        if self._live is not None:
            return
        from rich.live import Live

        self._live = Live(
            _ScreenView(self.view, lambda: self._clock(), fit_height=True),
            console=self.console,
            auto_refresh=False,  # we redraw on new records, throttled
            transient=False,
            redirect_stdout=True,
            redirect_stderr=True,
            vertical_overflow="ellipsis",
        )
        self._live.start(refresh=True)

    def _stage_line(self, name: str) -> str:
        plan = self.view.plan(name)
        names = self.view.stage_names()
        pos = f" ({names.index(name) + 1}/{len(names)})" if name in names else ""
        if plan is None:
            return f"== stage {name}{pos} started =="
        # After an early promotion the stage starts right after the last step seen.
        own = self.view.stats.get(name)
        seen = [
            st.last_step
            for other, st in self.view.stats.items()
            if other != name and st.last_step is not None
        ]
        if own is not None and own.first_step is not None:
            start = own.first_step
        elif seen:
            start = max(seen) + 1
        else:
            start = plan.start_step
        end = start + plan.end_step - plan.start_step
        return (
            f"== stage {name}{pos} started: people {_people(plan.people)}, "
            f"n={plan.num_generations}, {plan.prompts_per_step} prompts/step, "
            f"steps {start}-{end}, temperature {_temperature(plan)} =="
        )

    def stage_start(self, name: str) -> None:
        if self.view.enter_stage(name):
            self._announce(self._stage_line(name))

    def _announce(self, text: str) -> None:
        if self.mode == "silent":
            return
        if self.mode == "live":
            self._print_above(Rule(text.strip("= "), style="bold yellow"))
        else:
            self._say(text)

    def stage_end(self, name: str) -> None:
        if not self.view.end_stage(name):
            return
        st = self.view.stats[name]
        text = f"== stage {name} done: {st.steps} steps"
        if st.steps:
            text += (
                f" in {_duration(st.seconds)}, accuracy "
                f"{_pct(st.tail_mean('all_correct_ratio'))}, format err "
                f"{_pct(st.tail_mean('format_error_ratio'))}, mean length "
                f"{_num(st.tail_mean('completion_length_mean'), '.1f')} (last 5 steps)"
            )
        self._announce(text + " ==")

    def step(self, metrics: StepMetrics, sample: CompletionSample | None = None) -> list[Alert]:
        """Record one optimizer step; returns the alerts that became active at it."""
        if metrics.stage != self.view.current and not self.view._is_earlier(
            metrics.stage, self.view.current
        ):
            self.stage_start(metrics.stage)
        new = self.view.add_metrics(metrics)
        if sample is not None:
            self.view.add_sample(sample)
        if self.mode == "plain":
            self._say(plain_step_line(self.view, metrics))
        for alert in new if self.mode != "silent" else ():
            if self.mode == "live":
                style = "bold red" if alert.severity == "critical" else "bold yellow"
                self._print_above(
                    Text(f"⚠ step {alert.global_step} {alert.title}: {alert.detail}", style=style)
                )
            else:
                self._say(alert.line())
        self._refresh()
        return new

    def sample(self, sample: CompletionSample) -> None:
        """Show a completion sample that arrived apart from its step's metrics."""
        self.view.add_sample(sample)
        self._refresh()

    def event(self, ev: RunEvent) -> None:
        if ev.kind == "stage_start" and ev.stage:
            self.stage_start(ev.stage)
            return
        if ev.kind == "stage_end" and ev.stage:
            self.stage_end(ev.stage)
            return
        if ev.kind == "alert":
            self.view.add_event(ev)  # the live alerts come from the metrics themselves
            return
        self.view.add_event(ev)
        if ev.kind != "run_end":
            self._announce(f"== {ev.kind} at step {ev.global_step}: {ev.message} ==")

    def finish(self) -> None:
        """End of run: mark every started stage done, final redraw, the summary table."""
        if not self.view.finished:
            self.view.mark_finished(self._clock())
        self._stop_live()
        if not self._summary_printed:
            self._summary_printed = True
            self._say(summary_table(self.view))

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_live()

    def renderable(self, height: int | None = None, width: int | None = None) -> RenderableType:
        """The dashboard as it would be drawn now (tests, ``watch --once``)."""
        return render_dashboard(
            self.view, width=width or self.console.width, height=height, now=self._clock()
        )


# ----------------------------------------------------------------------------- watch


class _Tail:
    """Incremental reader of a JSONL file that another process appends to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.buffer = b""
        self.bad_lines = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:  # rewritten (e.g. truncated on resume): read it again
            self.offset, self.buffer = 0, b""
        if size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(size - self.offset)
        self.offset += len(chunk)
        data = self.buffer + chunk
        lines = data.split(b"\n")
        self.buffer = lines.pop()  # partial last line (or b"")
        out = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                out.append(json.loads(raw.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError):
                self.bad_lines += 1
        return out


class _RunSource:
    """Feeds new records of a run directory into a StageDashboard, in step order."""

    # Order of records at the same global step (metrics 2, samples 3, other events 5). A
    # stage_start may carry the previous stage's last step, so it sorts after stage_end.
    _ORDER: ClassVar[dict[str, int]] = {"resume": 0, "stage_end": 4, "stage_start": 6, "run_end": 9}

    def __init__(self, run_dir: Path, dash: StageDashboard) -> None:
        self.run_dir, self.dash = run_dir, dash
        self.metrics = _Tail(run_dir / rr.METRICS_FILE)
        self.completions = _Tail(run_dir / rr.COMPLETIONS_FILE)
        self.events = _Tail(run_dir / rr.EVENTS_FILE)
        self.info_loaded = False
        self.bad_records = 0

    def _build(self, cls: type, data: dict[str, Any]) -> Any:
        try:
            return rr.from_dict(cls, data)
        except (TypeError, ValueError):
            self.bad_records += 1
            return None

    def poll(self) -> bool:
        """Read whatever is new; True if anything was."""
        if not self.info_loaded:
            info = load_run_info(self.run_dir)
            if info is not None:
                self.info_loaded = True
                self.dash.view.set_info(info)  # not start(): the tails read the records
        items: list[tuple[int, int, str, Any]] = []
        for data in self.events.read():
            ev = self._build(RunEvent, data)
            if ev is not None:
                items.append((ev.global_step, self._ORDER.get(ev.kind, 5), "event", ev))
        for data in self.metrics.read():
            m = self._build(StepMetrics, data)
            if m is not None:
                items.append((m.global_step, 2, "metrics", m))
        for data in self.completions.read():
            s = self._build(CompletionSample, data)
            if s is not None:
                items.append((s.global_step, 3, "sample", s))
        if not items:
            return False
        items.sort(key=lambda x: (x[0], x[1]))
        samples = {x[0]: x[3] for x in items if x[2] == "sample"}
        for step, _, kind, record in items:
            if kind == "event":
                self.dash.event(record)
            elif kind == "metrics":
                self.dash.step(record, samples.pop(step, None))
            elif kind == "sample" and step in samples:
                self.dash.sample(samples.pop(step))
        return True

    def warnings(self) -> str | None:
        bad = self.metrics.bad_lines + self.completions.bad_lines + self.events.bad_lines
        bad += self.bad_records
        return f"skipped {bad} unreadable record line(s)" if bad else None


class RunDirError(ValueError):
    """A directory that is not a readable run directory."""


def load_run_info(run_dir: Path) -> RunInfo | None:
    try:
        return rr.read_run_info(run_dir)
    except (json.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
        raise RunDirError(f"invalid {run_dir / rr.RUN_INFO_FILE}: {exc}") from exc


def _thresholds_for(run_dir: Path) -> AlertThresholds:
    """The run's own ``dashboard.alerts`` from its config.yaml (defaults when absent)."""
    path = run_dir / rr.CONFIG_FILE
    if not path.exists():
        return AlertThresholds()
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RunDirError(f"invalid {path}: {str(exc).splitlines()[0]}") from exc
    try:
        return AlertThresholds.from_config(data if isinstance(data, dict) else {})
    except ValueError as exc:
        raise RunDirError(f"{path}: {exc}") from exc


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.exists():
        raise RunDirError(f"run directory not found: {run_dir}")
    if not run_dir.is_dir():
        raise RunDirError(f"not a directory: {run_dir}")
    markers = (rr.RUN_INFO_FILE, rr.METRICS_FILE, rr.EVENTS_FILE, rr.CONFIG_FILE, rr.STATE_FILE)
    if not any((run_dir / name).exists() for name in markers):
        raise RunDirError(f"not a run directory (none of {', '.join(markers)} found): {run_dir}")


def _parse_watch_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kk-train watch",
        description="Show the dashboard of a run directory: live while another process "
        "trains, or once for a finished run.",
    )
    parser.add_argument("run_dir", help="run directory (holds run.json, metrics.jsonl, ...)")
    parser.add_argument("--once", action="store_true", help="render once and exit")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between polls (default 1.0)"
    )
    parser.add_argument(
        "--no-dashboard",
        "--plain",
        dest="plain",
        action="store_true",
        help="plain log lines instead of the live dashboard",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not (args.interval > 0 and math.isfinite(args.interval)):
        parser.exit(2, f"kk-train watch: error: --interval must be > 0, got {args.interval}\n")
    return args


def watch_main(argv: Sequence[str] | None = None, *, console: Console | None = None) -> int:
    """``kk-train watch RUN_DIR [--once] [--interval S] [--no-dashboard]``; returns the exit code.

    Live mode follows the files until the run's ``run_end`` event (or Ctrl-C). Exit 2 with a
    one-line error for a missing or invalid run directory.
    """
    args = _parse_watch_args(argv)
    run_dir = Path(args.run_dir)
    console = console if console is not None else Console()
    try:
        _check_run_dir(run_dir)
        thresholds = _thresholds_for(run_dir)
        load_run_info(run_dir)  # fail early on a corrupt run.json
    except RunDirError as exc:
        print(f"kk-train watch: error: {exc}", file=sys.stderr)
        return 2

    if args.once:
        dash = StageDashboard(run_dir, live=False, console=console, thresholds=thresholds)
        dash.mode = "silent"
        source = _RunSource(run_dir, dash)
        try:
            source.poll()
        except RunDirError as exc:
            print(f"kk-train watch: error: {exc}", file=sys.stderr)
            return 2
        dash._clock = _finished_clock(dash.view)
        if dash.view.info is None and not dash.view.metrics:
            print(
                f"kk-train watch: error: no run.json or metrics yet in {run_dir}", file=sys.stderr
            )
            return 2
        console.print(_ScreenView(dash.view, dash._clock, fit_height=False))
        if dash.view.finished:
            console.print(summary_table(dash.view))
        _warn(source)
        return 0

    live = console.is_terminal and not console.is_dumb_terminal and not args.plain
    dash = StageDashboard(run_dir, live=live, console=console, thresholds=thresholds)
    dash.mode = "silent"  # replaying history: no per-step lines, no live redraws yet
    source = _RunSource(run_dir, dash)
    try:
        source.poll()
        dash.mode = "live" if live else "plain"
        if live:
            dash._start_live()
        elif dash.view.metrics:
            dash._say(plain_step_line(dash.view, dash.view.metrics[-1]))
        dash._clock = _finished_clock(dash.view) if dash.view.finished else time.time
        while not dash.view.finished:
            time.sleep(args.interval)
            if source.poll():
                dash._refresh()
            elif live:
                dash._refresh()  # the clock moves even without records
        dash._clock = _finished_clock(dash.view)
        dash.finish()
    except KeyboardInterrupt:
        dash.close()
        return 0
    except RunDirError as exc:
        dash.close()
        print(f"kk-train watch: error: {exc}", file=sys.stderr)
        return 2
    finally:
        dash.close()
    _warn(source)
    return 0


def _finished_clock(view: RunView) -> Callable[[], float]:
    """For a run that is not progressing, the clock stops at its last record."""
    if view.finished and view.finished_at is not None:
        at = view.finished_at
        return lambda: at
    return time.time


def _warn(source: _RunSource) -> None:
    message = source.warnings()
    if message:
        print(f"kk-train watch: warning: {message}", file=sys.stderr)
