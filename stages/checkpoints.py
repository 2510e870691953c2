"""Checkpoint folders of a run directory, and the records a resume must drop.

``checkpoints/step-<N>`` (every ``run.checkpoint_every`` steps, the newest
``run.keep_checkpoints`` kept) and ``checkpoints/stage-<name>`` (stage ends, always kept) are
HF Trainer checkpoints; a folder counts once its ``trainer_state.json`` is written.

A kill -9 may land anywhere, so no folder operation leaves a moment without the checkpoint
``state.json`` points to:

* ``replace_checkpoint``: an existing destination is renamed aside (``.<name>.replaced``),
  the new folder renamed in, then the aside deleted; ``recover_checkpoints`` (run at start)
  puts an aside back when the move-in never happened, and deletes it otherwise;
* ``remove_checkpoint``: renamed to a hidden ``.<name>.deleting`` first, so a half-deleted
  folder (which may still hold its ``trainer_state.json``) never counts as complete.

Hidden names (a leading dot) are never resume candidates.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Collection
from pathlib import Path

from curriculum import run_records as rr

__all__ = [
    "checkpoint_step",
    "copy_checkpoint",
    "find_resume_checkpoint",
    "recover_checkpoints",
    "remove_checkpoint",
    "replace_checkpoint",
    "truncate_records",
]

ASIDE_SUFFIX = ".replaced"  # the old folder while a replace is under way
TRASH_SUFFIX = ".deleting"  # a folder being deleted
COPY_SUFFIX = ".copying"  # a copy being made, renamed in by replace_checkpoint
# Events a resumed run writes again, so a resume drops them (see truncate_records).
REPEATED_EVENTS = ("stage_start", "stage_end", "run_end")


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


def _aside(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}{ASIDE_SUFFIX}")


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint folder: a rename to a hidden name first (atomic), then the tree."""
    path = Path(path)
    if not path.exists():
        return
    trash = path.with_name(f".{path.name.lstrip('.')}{TRASH_SUFFIX}")
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def copy_checkpoint(src: Path, root: Path, name: str) -> Path:
    """Copy ``src`` to a hidden folder of ``root`` (for ``replace_checkpoint`` to rename in as
    ``name``): hard links where the file system has them (no data copied: checkpoints are
    never written to once adopted), else copies. A leftover of a killed copy is dropped first
    (``recover_checkpoints`` drops them too)."""
    tmp = Path(root) / f".{name}{COPY_SUFFIX}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=_link_or_copy)
    return tmp


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # no hard links here (some network / FAT file systems)
        shutil.copy2(src, dst)


def replace_checkpoint(src: Path, dst: Path) -> Path:
    """Move the complete folder ``src`` to ``dst`` (same file system): an existing ``dst`` is
    renamed aside, ``src`` renamed in, then the aside deleted. At every moment ``dst`` or its
    aside holds a complete checkpoint (``recover_checkpoints`` sorts out a kill between)."""
    src, dst = Path(src), Path(dst)
    _recover_one(_aside(dst))  # a replace of dst that was killed half-way
    aside = _aside(dst)
    if dst.exists():
        os.replace(dst, aside)
    os.replace(src, dst)
    remove_checkpoint(aside)
    return dst


def _recover_one(aside: Path) -> None:
    if not aside.exists():
        return
    dst = aside.with_name(aside.name[1 : -len(ASIDE_SUFFIX)])
    if dst.exists():
        remove_checkpoint(aside)  # the move-in happened; only the delete was left
    else:
        os.replace(aside, dst)  # killed between the rename aside and the move-in


def recover_checkpoints(root: Path) -> None:
    """Finish what a killed ``replace_checkpoint`` / ``remove_checkpoint`` left in ``root``."""
    root = Path(root)
    if not root.is_dir():
        return
    for p in sorted(root.iterdir()):
        if p.name.startswith(".") and p.name.endswith(ASIDE_SUFFIX):
            _recover_one(p)
    for p in sorted(root.iterdir()):
        if p.name.startswith(".") and p.name.endswith((TRASH_SUFFIX, COPY_SUFFIX)):
            shutil.rmtree(p, ignore_errors=True)


def truncate_records(run_dir: Path, last_step: int, ended_stages: Collection[str] = ()) -> int:
    """Drop the records a resume from a checkpoint at ``last_step`` writes again; returns how
    many metrics lines were dropped.

    metrics / completions: the lines after ``last_step``. events: those after ``last_step``,
    and the ones the resumed run repeats: the start of a stage that starts after
    ``last_step``, the end of a stage not in ``ended_stages`` (the stages state.json records
    as ended at or before ``last_step``), the run end.
    """
    dropped = 0
    for name in (rr.METRICS_FILE, rr.COMPLETIONS_FILE, rr.EVENTS_FILE):
        path = run_dir / name
        if not path.exists():
            continue
        keep, lost = [], 0
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            try:
                record = json.loads(line) if line.endswith("\n") else None
                step = int(record.get("global_step", 0))
            except (ValueError, AttributeError):
                record = None
            if record is None:
                lost += 1
            elif step > last_step or (
                name == rr.EVENTS_FILE and _repeated(record, step, last_step, ended_stages)
            ):
                lost += 1
            else:
                keep.append(line)
        if lost:
            rr.atomic_write_text(path, "".join(keep))
        if name == rr.METRICS_FILE:
            dropped = lost
    return dropped


def _repeated(event: dict, step: int, last_step: int, ended: Collection[str]) -> bool:
    kind = event.get("kind")
    if kind == "stage_start":
        return step >= last_step  # its stage starts at last_step + 1: it starts again
    if kind == "stage_end":
        return event.get("stage") not in ended
    return kind == "run_end"
