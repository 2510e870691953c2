"""The training dashboard the trainer talks to: records in, one of three output modes out.

The trainer hands :class:`StageDashboard` each StepMetrics / CompletionSample / RunEvent as
it writes them; it keeps them in a :class:`RunView` and shows them:

* live: a ``rich.live.Live`` display (stdout is a terminal), re-rendered at most every
  ``min_refresh_interval`` seconds and never more often than keeps rendering CPU under 0.3% of
  wall time; stage transitions and alerts are also printed above it as a log;
* plain: one log line per step with the same numbers, alert lines, stage lines (CI, pipes,
  ``--no-dashboard``);
* silent: collect only (``kk-train watch --once`` renders once at the end).

>>> from rich.console import Console
>>> from curriculum.run_records import RunInfo
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

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.rule import Rule
from rich.text import Text

from curriculum import run_records as rr
from curriculum.run_records import CompletionSample, RunEvent, RunInfo, StepMetrics
from stages.dashboard.alerts import Alert, AlertThresholds
from stages.dashboard.layout import ScreenView, render_dashboard
from stages.dashboard.log_lines import (
    event_line,
    plain_step_line,
    run_start_line,
    stage_end_line,
    stage_start_line,
)
from stages.dashboard.state import RunView
from stages.dashboard.summary import summary_table

__all__ = ["StageDashboard"]

_RENDER_BUDGET = 0.003  # redraws may use at most this CPU time per second of wall time


class StageDashboard:
    """The training dashboard. The trainer calls, in order: ``start(info)``, then per stage
    ``stage_start(name)``, ``step(metrics, sample)`` each step, ``stage_end(name)``; any
    ``event(ev)``; ``finish()`` at the end; ``close()`` (or use it as a context manager).

    ``live=None``: live when the console is a terminal (pass ``live=False`` for
    ``--no-dashboard``). ``step`` returns the alerts that became active at that step, so
    the caller can record them (``stages.dashboard.alerts.alert_event``) in events.jsonl.
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

    def __enter__(self) -> StageDashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the trainer calls ---------------------------------------------------------------

    def start(self, info: RunInfo | None) -> None:
        """Show the run; a resumed run's earlier steps are read back from ``run_dir``."""
        self.view.set_info(info)
        metrics_file = self.run_dir / rr.METRICS_FILE
        if self.mode != "silent" and not self.view.metrics and metrics_file.exists():
            for m in rr.iter_records(metrics_file, StepMetrics):
                self.view.add_metrics(m)
            self.view.tracker.update([])  # old alerts are history, not news
        if self.mode == "live":
            self.start_live()
        elif info is not None and self.mode == "plain":
            self.say(run_start_line(info))

    def stage_start(self, name: str) -> None:
        if self.view.enter_stage(name):
            self._announce(stage_start_line(self.view, name))

    def step(self, metrics: StepMetrics, sample: CompletionSample | None = None) -> list[Alert]:
        """Record one optimizer step; returns the alerts that became active at it."""
        if metrics.stage != self.view.current and not self.view.is_earlier(
            metrics.stage, self.view.current
        ):
            self.stage_start(metrics.stage)
        new = self.view.add_metrics(metrics)
        if sample is not None:
            self.view.add_sample(sample)
        if self.mode == "plain":
            self.say(plain_step_line(self.view, metrics))
        for alert in new if self.mode != "silent" else ():
            if self.mode == "live":
                style = "bold red" if alert.severity == "critical" else "bold yellow"
                self._print_above(
                    Text(f"⚠ step {alert.global_step} {alert.title}: {alert.detail}", style=style)
                )
            else:
                self.say(alert.line())
        self.refresh()
        return new

    def sample(self, sample: CompletionSample) -> None:
        """Show a completion sample that arrived apart from its step's metrics."""
        self.view.add_sample(sample)
        self.refresh()

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
            self._announce(event_line(ev))

    def stage_end(self, name: str) -> None:
        if self.view.end_stage(name):
            self._announce(stage_end_line(self.view, name))

    def finish(self) -> None:
        """End of run: mark every started stage done, final redraw, the summary table."""
        if not self.view.finished:
            self.view.mark_finished(self._clock())
        self._stop_live()
        if not self._summary_printed:
            self._summary_printed = True
            self.say(summary_table(self.view))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_live()

    # -- output (``kk-train watch`` drives these directly) ------------------------------------

    def say(self, renderable: RenderableType | str) -> None:
        """Print a line (or a table) unless silent; strings are printed as they are."""
        if self.mode == "silent":
            return
        if isinstance(renderable, str):
            self.console.print(renderable, soft_wrap=True, highlight=False, markup=False)
        else:
            self.console.print(renderable)

    def start_live(self) -> None:
        if self._live is not None:
            return
        from rich.live import Live

        self._live = Live(
            self.screen(fit_height=True),
            console=self.console,
            auto_refresh=False,  # we redraw on new records, throttled
            transient=False,
            redirect_stdout=True,
            redirect_stderr=True,
            vertical_overflow="ellipsis",
        )
        self._live.start(refresh=True)

    def refresh(self, force: bool = False) -> None:
        """Redraw the live display, unless the last redraw was too recent for the budget."""
        if self._live is None:
            return
        interval = max(self.min_refresh_interval, self._render_cost / self.render_budget)
        if not force and time.perf_counter() - self._last_render < interval:
            return
        began = time.thread_time()
        self._live.refresh()
        self._rendered(began)

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Where "now" comes from (``watch`` stops it at a finished run's last record)."""
        self._clock = clock

    def screen(self, *, fit_height: bool) -> ScreenView:
        """The dashboard laid out at draw time for the console's size."""
        return ScreenView(self.view, lambda: self._clock(), fit_height=fit_height)

    def renderable(self, height: int | None = None, width: int | None = None) -> RenderableType:
        """The dashboard as it would be drawn now (tests, ``watch --once``)."""
        return render_dashboard(
            self.view, width=width or self.console.width, height=height, now=self._clock()
        )

    # -- internals ----------------------------------------------------------------------------

    def _announce(self, text: str) -> None:
        if self.mode == "silent":
            return
        if self.mode == "live":
            self._print_above(Rule(text.strip("= "), style="bold yellow"))
        else:
            self.say(text)

    def _print_above(self, renderable: RenderableType) -> None:
        """Print above the live display: rich redraws the display too, so count it as one."""
        began = time.thread_time()
        self.console.print(renderable)
        self._rendered(began)

    def _rendered(self, began_cpu: float) -> None:
        # The cost is this thread's CPU time: on a shared machine the wall time of a redraw
        # includes waiting for other processes, which is not load the dashboard adds.
        self._render_cost = time.thread_time() - began_cpu
        self.render_seconds += self._render_cost
        self.renders += 1
        self._last_render = time.perf_counter()

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None
