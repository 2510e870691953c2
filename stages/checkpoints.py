"""Checkpoint folders of a run directory, and the records a resume must drop.

``checkpoints/step-<N>`` (every ``run.checkpoint_every`` steps, the newest
``run.keep_checkpoints`` kept) and ``checkpoints/stage-<name>`` (stage ends, always kept) are
HF Trainer checkpoints; a folder counts once its ``trainer_state.json`` is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from curriculum import run_records as rr

__all__ = ["checkpoint_step", "find_resume_checkpoint", "truncate_records"]


def checkpoint_step(path: Path) -> int | None:
    """Global step of a checkpoint folder (its trainer_state.json), None when incomplete."""
    p = Path(path) / "trainer_state.json"
    if not p.is_file():
        return None
    try:
        return int(json.loads(p.read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError):
        return None


def find_resume_checkpoint(run_dir: Path, last_checkpoint: str | None) -> Path | None:
    """state.json's last checkpoint when complete, else the newest complete one on disk."""
    if last_checkpoint and checkpoint_step(run_dir / last_checkpoint) is not None:
        return run_dir / last_checkpoint
    best: tuple[int, Path] | None = None
    for p in (run_dir / rr.CHECKPOINTS_DIR).glob("*-*"):
        if p.name.startswith("."):
            continue
        step = checkpoint_step(p)
        if step is not None and (best is None or step > best[0]):
            best = (step, p)
    return best[1] if best else None


def truncate_records(run_dir: Path, last_step: int) -> int:
    """Drop metrics / completions written after ``last_step`` (they will be redone); returns
    how many metrics lines were dropped."""
    dropped = 0
    for name in (rr.METRICS_FILE, rr.COMPLETIONS_FILE):
        path = run_dir / name
        if not path.exists():
            continue
        keep, lost = [], 0
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            if not line.endswith("\n"):
                lost += 1
                continue
            try:
                step = int(json.loads(line).get("global_step", 0))
            except (ValueError, AttributeError):
                lost += 1
                continue
            if step <= last_step:
                keep.append(line)
            else:
                lost += 1
        if lost:
            rr.atomic_write_text(path, "".join(keep))
        if name == rr.METRICS_FILE:
            dropped = lost
    return dropped
