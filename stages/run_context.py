"""``RunContext``: what the driver and its callbacks share while a run is going.

The run directory and its records (``curriculum.run_records``), the curriculum state
(``curriculum.state.CurriculumState``, saved to ``state.json``), the dashboard or the plain
printer, the alert checks, and the checkpoint folders. Only the main process writes the run
directory, prints and drives the dashboard; every process keeps the same state in memory.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from curriculum import run_records as rr
from curriculum.state import CurriculumState
from stages.checkpoints import remove_checkpoint, replace_checkpoint
from stages.dashboard.alerts import alert_event
from stages.scaleout.launch import is_main_process

__all__ = ["RunContext", "print_line", "safe_call"]


class RunContext:
    """What the callbacks share with the driver: run directory, records, dashboard, state."""

    def __init__(self, run_dir: Path, config: Any, *, dashboard: Any = None) -> None:
        self.run_dir = run_dir
        self.config = config
        self.dashboard = dashboard
        self.history: list[rr.StepMetrics] = rr.read_metrics(run_dir)
        self.interrupted = False
        self.alert_checker: Callable[[Sequence[rr.StepMetrics]], list[rr.RunEvent]] | None = None
        self.state = CurriculumState(stage=None)  # the driver loads state.json when it starts
        self.is_main = is_main_process()
        self.printer: Callable[[str], None] = print_line if self.is_main else _silent
        self.barrier: Callable[[], None] = lambda: None  # set to the trainer's wait_for_everyone

    # -- events and dashboard ---------------------------------------------------------------
    def event(
        self,
        kind: str,
        stage: str | None,
        message: str = "",
        data: dict[str, Any] | None = None,
        *,
        step: int | None = None,
    ) -> rr.RunEvent:
        ev = rr.RunEvent(
            time=time.time(),
            global_step=int(step if step is not None else self.state.global_step),
            kind=kind,
            stage=stage,
            message=message,
            data=dict(data or {}),
        )
        if self.is_main:
            rr.append_record(self.run_dir / rr.EVENTS_FILE, ev)
        if self.dashboard is not None:
            safe_call(self.dashboard.event, ev)
        elif message:
            self.printer(f"[{kind}] {message}")
        return ev

    def emit(self, ev: rr.RunEvent) -> None:
        """Append a ready-made event (alerts) and show it."""
        if self.is_main:
            rr.append_record(self.run_dir / rr.EVENTS_FILE, ev)
        if self.dashboard is not None:
            safe_call(self.dashboard.event, ev)
        else:
            self.printer(ev.message)

    def dashboard_step(
        self, metrics: rr.StepMetrics, sample: rr.CompletionSample | None
    ) -> list[rr.RunEvent] | None:
        """Show a step. With a dashboard, returns the alert events it raised (to record);
        without one, prints a plain line and returns None (the driver checks alerts)."""
        if self.dashboard is None:
            self.printer(_plain_line(metrics))
            return None
        try:
            alerts = self.dashboard.step(metrics, sample) or []
        except Exception as err:  # the dashboard must never stop a run
            warnings.warn(f"dashboard error: {err}", stacklevel=2)
            return None
        return [alert_event(a, time.time()) for a in alerts]

    # -- state.json ---------------------------------------------------------------------------
    def save_state(self) -> None:
        """Write ``self.state`` to state.json (main process; the others keep it in memory)."""
        if self.is_main:
            self.state.save(self.run_dir)

    # -- checkpoints --------------------------------------------------------------------------
    def adopt_checkpoint(
        self,
        src: Path,
        name: str,
        global_step: int,
        *,
        then: Callable[[CurriculumState], None] | None = None,
    ) -> Path:
        """Move a checkpoint TRL just wrote into checkpoints/<name> and record it in state.json.

        ``then``: a further change of the state that this checkpoint commits (a stage end),
        made before the one state.json write, so a kill leaves the old state or all of the
        new. An existing checkpoints/<name> is replaced by ``replace_checkpoint`` (renamed
        aside, never deleted first). Every process calls it after the trainer's save; they
        first wait for each other so that all shards are in the folder before the main
        process renames it."""
        self.barrier()
        ckpt_root = self.run_dir / rr.CHECKPOINTS_DIR
        self.state.last_checkpoint = f"{rr.CHECKPOINTS_DIR}/{name}"
        self.state.global_step = int(global_step)
        if then is not None:
            then(self.state)
        if not self.is_main:
            self.barrier()
            return ckpt_root / name
        ckpt_root.mkdir(parents=True, exist_ok=True)
        dst = replace_checkpoint(src, ckpt_root / name)
        self.save_state()
        self.prune_checkpoints()
        self.barrier()
        return dst

    def prune_checkpoints(self) -> None:
        keep = max(1, int(self.config.run.keep_checkpoints))
        root = self.run_dir / rr.CHECKPOINTS_DIR
        steps = sorted(
            (int(p.name.split("-", 1)[1]), p)
            for p in root.glob("step-*")
            if p.is_dir() and p.name.split("-", 1)[1].isdigit()
        )
        last = self.state.last_checkpoint
        for _, path in steps[:-keep]:
            if last and path == self.run_dir / last:
                continue
            remove_checkpoint(path)


def safe_call(fn: Callable, *args: Any) -> None:
    """Call a dashboard method; an error in it becomes a warning (it must never stop a run)."""
    try:
        fn(*args)
    except Exception as err:
        warnings.warn(f"dashboard error: {err}", stacklevel=2)


def print_line(line: str) -> None:
    print(line, flush=True)


def _silent(line: str) -> None:
    del line


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _plain_line(m: rr.StepMetrics) -> str:
    return (
        f"step {m.global_step} [{m.stage} {m.stage_step}] reward {_fmt(m.reward_mean)} "
        f"fmt_err {_fmt(m.format_error_ratio, '.2f')} correct {_fmt(m.all_correct_ratio, '.2f')} "
        f"len {_fmt(m.completion_length_mean, '.0f')} zero_std {_fmt(m.frac_zero_std_groups, '.2f')} "
        f"kl {_fmt(m.kl, '.4f')} lr {_fmt(m.learning_rate, '.2e')} T {_fmt(m.temperature, '.2f')} "
        f"{_fmt(m.step_seconds, '.1f')}s"
    )
