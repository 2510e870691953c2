"""Curriculum state: where a run is, persisted atomically to ``<run_dir>/state.json``.

The driver saves it after every stage change and every checkpoint; ``--resume`` loads it.
A reader (``kk-train watch``) sees the old or the new file, never half of one. Stage bounds
come from ``curriculum.schedules.stage_bounds`` over the stages' recorded first and last
steps, so an early promotion moves every later stage (which keeps its planned length).

>>> import tempfile
>>> from curriculum.config import load_config
>>> cfg = load_config(None, check_paths=False)
>>> state = CurriculumState.fresh(cfg)
>>> state.stage, state.global_step, state.bounds_of("explore")
('warmup', 0, (31, 45))
>>> state.promote("warmup", 25, "format learned")
>>> state.stage, state.bounds_of("warmup"), state.bounds_of("explore"), state.completed_stages
('explore', (1, 25), (26, 40), ['warmup'])
>>> with tempfile.TemporaryDirectory() as d:
...     _ = state.save(d)
...     CurriculumState.load(d) == state
True
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curriculum.run_records import STATE_FILE, atomic_write_text
from curriculum.schedules import stage_bounds

if TYPE_CHECKING:
    from curriculum.schema import RunConfig

__all__ = ["STATE_VERSION", "CurriculumState", "StateError"]

STATE_VERSION = 1


class StateError(ValueError):
    """state.json exists but cannot be read (one-line message)."""


@dataclass
class CurriculumState:
    stage: str | None  # current stage; None once every stage is done
    global_step: int = 0  # optimizer steps completed in the whole run
    # [name, first_step, last_step] per stage, 1-based inclusive; planned at start and
    # shifted when a stage is promoted early (later stages keep their lengths).
    stage_bounds: list[list[Any]] = field(default_factory=list)
    promotions: list[dict[str, Any]] = field(
        default_factory=list
    )  # {stage, global_step, reason, time}
    last_checkpoint: str | None = None  # path, relative to the run directory when inside it
    completed_stages: list[str] = field(default_factory=list)
    updated_at: float = 0.0
    version: int = STATE_VERSION
    stage_starts: dict[str, int] = field(default_factory=dict)  # first global step, once started
    stage_ends: dict[str, int] = field(default_factory=dict)  # last global step, once ended

    @classmethod
    def fresh(cls, config: RunConfig) -> CurriculumState:
        """The state before step 1: first stage, planned bounds."""
        bounds = [[name, first, last] for name, first, last in stage_bounds(config)]
        return cls(stage=bounds[0][0] if bounds else None, stage_bounds=bounds)

    # -- queries ---------------------------------------------------------------------

    def bounds_of(self, name: str) -> tuple[int, int]:
        for stage, first, last in self.stage_bounds:
            if stage == name:
                return int(first), int(last)
        raise KeyError(f"no stage {name!r} in state (stages: {self.stage_names()})")

    def stage_names(self) -> list[str]:
        return [b[0] for b in self.stage_bounds]

    @property
    def done(self) -> bool:
        return self.stage is None

    # -- transitions -----------------------------------------------------------------

    def start_stage(self, name: str, from_step: int) -> None:
        """``name`` runs from a checkpoint at global step ``from_step``: it starts at the next
        step, unless it had started at or before ``from_step`` (a resume inside the stage)."""
        started = self.stage_starts.get(name)
        if started is None or from_step < started:
            self.stage_starts[name] = from_step + 1
        self.stage = name

    def complete_stage(self, name: str, global_step: int) -> None:
        """Mark ``name`` finished at ``global_step`` and move to the next stage."""
        self.global_step = max(self.global_step, global_step)
        self.stage_ends[name] = global_step
        # The bounds held so far carry the planned lengths of the stages still to come.
        planned = [(n, int(last) - int(first) + 1) for n, first, last in self.stage_bounds]
        self.stage_bounds = [
            [n, first, last]
            for n, first, last in stage_bounds(planned, self.stage_starts, self.stage_ends)
        ]
        if name not in self.completed_stages:
            self.completed_stages.append(name)
        names = self.stage_names()
        later = names[names.index(name) + 1 :]
        self.stage = next((n for n in later if n not in self.completed_stages), None)

    def promote(self, name: str, global_step: int, reason: str) -> None:
        """End ``name`` early at ``global_step``; later stages start right after it."""
        self.promotions.append(
            {"stage": name, "global_step": global_step, "reason": reason, "time": time.time()}
        )
        self.complete_stage(name, global_step)

    # -- persistence -----------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        """Write state.json atomically (temp file, fsync, rename); returns its path."""
        self.updated_at = time.time()
        path = Path(run_dir) / STATE_FILE
        atomic_write_text(path, self.to_json())
        return path

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> CurriculumState | None:
        """The saved state, or None when the run directory has no state.json."""
        path = Path(run_dir) / STATE_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise StateError(f"cannot read {path}: {err}") from None
        if not isinstance(data, dict) or "stage" not in data:
            raise StateError(f"{path} is not a curriculum state (no 'stage' field)")
        if data.get("version", STATE_VERSION) > STATE_VERSION:
            raise StateError(
                f"{path} has state version {data['version']}; this kk-rl reads up to "
                f"{STATE_VERSION} (upgrade kk-rl)"
            )
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
