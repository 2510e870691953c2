"""``kk-train watch RUN_DIR``: the dashboard of a run directory, read from its files.

Another process (the trainer) appends to metrics.jsonl, completions.jsonl and events.jsonl;
watch tails them, orders the new records by step and feeds them to a
:class:`StageDashboard`, so it shows the same screen as the training process. ``--once``
renders what is there and exits.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console

from curriculum import run_records as rr
from curriculum.run_records import CompletionSample, RunEvent, RunInfo, StepMetrics
from stages.dashboard.alerts import AlertThresholds
from stages.dashboard.log_lines import plain_step_line
from stages.dashboard.stage_dashboard import StageDashboard
from stages.dashboard.state import RunView
from stages.dashboard.summary import summary_table

__all__ = ["RunDirError", "load_run_info", "watch_main"]


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
    """The run's run.json (None before it is written); RunDirError when it is corrupt."""
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
    """RunDirError unless ``run_dir`` is a directory holding at least one run file."""
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
        dash.set_clock(_finished_clock(dash.view))
        if dash.view.info is None and not dash.view.metrics:
            print(
                f"kk-train watch: error: no run.json or metrics yet in {run_dir}", file=sys.stderr
            )
            return 2
        console.print(dash.screen(fit_height=False))
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
            dash.start_live()
        elif dash.view.metrics:
            dash.say(plain_step_line(dash.view, dash.view.metrics[-1]))
        dash.set_clock(_finished_clock(dash.view) if dash.view.finished else time.time)
        while not dash.view.finished:
            time.sleep(args.interval)
            if source.poll():
                dash.refresh()
            elif live:
                dash.refresh()  # the clock moves even without records
        dash.set_clock(_finished_clock(dash.view))
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
