"""What the dashboard knows about a run, built only from run records.

:class:`RunView` takes each StepMetrics / CompletionSample / RunEvent as the trainer writes
it (or as ``watch`` reads it back) and answers what every output mode asks: which stage is
running, each stage's status and steps, the steps left and the ETA, the active alerts.
Rendering lives elsewhere; nothing here draws.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from curriculum.run_records import CompletionSample, RunEvent, RunInfo, StagePlan, StepMetrics
from stages.dashboard.alerts import Alert, AlertThresholds, AlertTracker, check_alerts
from stages.dashboard.formatting import is_finite

__all__ = ["RunView", "StageStats"]


@dataclass
class StageStats:
    """One stage as its step records show it: step count, first and last step, wall time,
    the last five steps."""

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
            self.began = m.time - (max(0.0, m.step_seconds) if is_finite(m.step_seconds) else 0.0)
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
        self.stats: dict[str, StageStats] = {}
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
        recent = [x for x in recent if is_finite(x)]
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
        self.stats.setdefault(name, StageStats(name))
        return True

    def end_stage(self, name: str) -> bool:
        st = self.stats.setdefault(name, StageStats(name))
        if st.ended:
            return False
        st.ended = True
        return True

    def add_metrics(self, m: StepMetrics) -> list[Alert]:
        """Record one step; return the alerts that became active at it."""
        if self.metrics and m.global_step <= self.metrics[-1].global_step:
            self._rewind(m.global_step)  # a resumed run repeats steps after its checkpoint
        if not self.is_earlier(m.stage, self.current):  # a late record never moves us back
            self.enter_stage(m.stage)
        self.stats.setdefault(m.stage, StageStats(m.stage))
        self.metrics.append(m)
        self._alert_window.append(m)
        self.stats[m.stage].add(m)
        self.last_record_time = max(self.last_record_time or 0.0, m.time)
        new = self.tracker.update(check_alerts(self._alert_window, self.thresholds))
        self.alert_log.extend(new)
        return new

    def is_earlier(self, name: str, than: str | None) -> bool:
        """Whether stage ``name`` comes before stage ``than`` in the run's order."""
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
            self.stats.setdefault(m.stage, StageStats(m.stage)).add(m)
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
