"""The whole dashboard screen: which sections go where for a given terminal size.

Wide screens (>= 100 columns, >= 30 rows when limited) get bordered panels; smaller ones a
compact layout with one fact per line and the key facts first, so a cropped bottom loses
only the sample. The sections themselves come from :mod:`stages.dashboard.panels`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text

from stages.dashboard.formatting import num, pct, sci
from stages.dashboard.panels import (
    alert_lines,
    completion_lines,
    events_line,
    header_text,
    history_lines,
    metric_cells,
    metric_lines,
    metrics_grid,
    progress_lines,
    sample_header,
    timeline_line,
    timeline_table,
    truth_text,
)
from stages.dashboard.state import RunView
from stages.dashboard.widgets import SideBySide, screen_rows

__all__ = ["ScreenView", "render_dashboard"]

_FULL_MIN_WIDTH = 100  # narrower terminals get the compact one-line-per-fact layout
_FULL_MIN_HEIGHT = 30


def _render_compact(view: RunView, width: int, height: int | None, now: float) -> Group:
    """One fact per line, no borders: fits 80x24 with the key facts at the top."""

    def line(t: Text) -> Text:
        t.no_wrap = True
        t.overflow = "ellipsis"
        return t

    rows: list[RenderableType] = [
        line(header_text(view, now)),
        line(timeline_line(view)),
        *progress_lines(view, max(10, width - 30)),
    ]
    m = view.last
    if m is not None:
        rows.append(
            line(
                Text(
                    f"reward {num(m.reward_mean, '.2f')}±{num(m.reward_std, '.2f')}  "
                    f"correct {pct(m.all_correct_ratio)}  fmt err {pct(m.format_error_ratio)}  "
                    f"wrong {pct(m.wrong_answer_ratio)}  unparsed {pct(m.unparsed_ratio)}"
                )
            )
        )
        rows.append(
            line(
                Text(
                    f"len {num(m.completion_length_mean, '.0f')}/max "
                    f"{num(m.completion_length_max, '.0f')}  trunc {pct(m.truncation_ratio)}  "
                    f"zero-std {pct(m.frac_zero_std_groups)}  KL {num(m.kl, '.3g')}  "
                    f"ent {num(m.entropy, '.2f')}"
                )
            )
        )
        rows.append(
            line(
                Text(
                    f"LR {sci(m.learning_rate)}  T {num(m.temperature, '.2f')}  "
                    f"tok/s {num(m.tokens_per_second, '.0f')}  step {num(m.step_seconds, '.1f')}s  "
                    f"loss {num(m.loss, '.3g')}",
                    style="dim",
                )
            )
        )
    else:
        rows.append(line(Text("waiting for the first step…", style="dim")))
    progress_rows = 1 + (1 if view.current is not None else 0)
    used = 2 + progress_rows + (3 if m is not None else 1)
    alert_limit = 3 if height is None or height >= 20 else 1
    alerts = [line(t) for t, _ in alert_lines(view, compact=True, limit=alert_limit)]
    rows += alerts
    used += len(alerts)
    events = events_line(view)
    if events is not None:
        rows.append(line(events))
        used += 1
    history = [line(t) for t in history_lines(view, width)]
    if height is None or height - used >= len(history) + 3:
        rows += history
        used += len(history)
    if view.sample is not None:
        budget = 40 if height is None else height - used - 3
        if budget >= 1:
            rows.append(Rule(style="dim"))
            rows.append(line(sample_header(view.sample)))
            rows.append(line(truth_text(view.sample)))
            body = completion_lines(view.sample.completion, budget, width)
            rows += body  # wrapped: a tiny model's completion is often one long line
    return Group(*rows)


def _render_full(view: RunView, width: int, height: int | None, now: float) -> Group:
    """Bordered panels: header and timeline; metrics beside history; alerts; the sample."""
    header_rows: list[RenderableType] = [header_text(view, now), *timeline_table(view)]
    events = events_line(view)
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
            *progress_lines(view, max(10, left_w - 28)),
            *metrics_grid(view),
            *metric_lines(view),
        ),
        title=Text(f"metrics · {view.current or '–'}"),
        title_align="left",
        border_style="blue",
        width=left_w,
    )
    history_body = [*history_lines(view, right_w - 4)]
    history_body.append(Text("│ = stage boundary; bright = current stage", style="dim"))
    history = Panel(
        Group(*history_body), title=Text("history"), title_align="left", border_style="blue"
    )
    row = SideBySide(metrics, history, left_w)
    metrics_h = 2 + 2 + (len(metric_cells(view)) + 1) // 2 + len(metric_lines(view))

    alerts = alert_lines(view, compact=False, limit=4)
    alerts_panel = Panel(
        Group(*(Padding(t, (0, 0, 0, indent)) if indent else t for t, indent in alerts)),
        title=Text("alerts"),
        title_align="left",
        border_style="red" if view.active_alerts() else "green",
    )
    alerts_h = 2 + sum(screen_rows(t.plain, width - 4 - indent) for t, indent in alerts)

    parts: list[RenderableType] = [header, row, alerts_panel]
    if view.sample is not None:
        s = view.sample
        used = header_h + metrics_h + alerts_h
        # 4: sample panel borders and header lines; 3: the rule, the Live cursor line, a spare.
        budget = 30 if height is None else height - used - 4 - 3
        if budget >= 2:
            body = completion_lines(s.completion, budget, width - 4)
            parts.append(
                Panel(
                    Group(sample_header(s), truth_text(s), Rule(style="dim"), *body),
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


class ScreenView:
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
