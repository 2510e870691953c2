"""What a kill -9 at any file-system operation of a checkpoint commit leaves, and what a
resume makes of it (no training: checkpoint folders are stand-ins with a weights file).

Every ``os.replace``, ``os.link``, file deletion and directory removal counts as one
operation; the test kills the commit (an exception no code catches, like SIGKILL) at the
1st, 2nd, ... operation until a commit runs through, and after each kill runs the resume's
own start-up (``Driver._prepare``, ``_resume_point``). Invariants: every visible checkpoint
folder is complete (a half-deleted one must never look complete), the checkpoint
state.json names exists, and a stage end is committed with its checkpoint in one write.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from curriculum import run_records as rr
from curriculum.config import load_config
from curriculum.state import CurriculumState
from stages.checkpoints import checkpoint_step, find_resume_checkpoint
from stages.driver import Driver
from stages.run_context import RunContext

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = "model.safetensors"  # sorts before trainer_state.json: deleted first


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the code under test catches a BaseException."""


class Killer:
    """Counts file-system operations; raises Killed at operation ``at`` (0 = never)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: int) -> None:
        self.at, self.count, self.state_writes = at, 0, 0
        real_replace, real_link = os.replace, os.link
        real_unlink, real_rmdir = os.unlink, os.rmdir

        def tick() -> None:
            self.count += 1
            if self.count == self.at:
                raise Killed

        def replace(src: Any, dst: Any, *a: Any, **k: Any) -> None:
            tick()
            real_replace(src, dst, *a, **k)
            if Path(dst).name == rr.STATE_FILE:
                self.state_writes += 1

        def link(src: Any, dst: Any, *a: Any, **k: Any) -> None:
            tick()
            real_link(src, dst, *a, **k)

        def rmtree(path: Any, ignore_errors: bool = False, **_: Any) -> None:
            # file by file, as shutil does: a kill leaves a partly deleted folder
            if not Path(path).exists():
                return
            for root, dirs, files in os.walk(path, topdown=False):
                for name in sorted(files):
                    tick()
                    real_unlink(os.path.join(root, name))
                for name in sorted(dirs):
                    tick()
                    real_rmdir(os.path.join(root, name))
            tick()
            real_rmdir(path)

        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "link", link)
        monkeypatch.setattr(shutil, "rmtree", rmtree)


def _config(*overrides: str) -> Any:
    return load_config(REPO / "configs" / "micro.yaml", list(overrides), check_paths=False)


def _checkpoint(path: Path, step: int, tag: str) -> None:
    path.mkdir(parents=True)
    (path / WEIGHTS).write_text(tag)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def _tag(path: Path) -> str | None:
    p = path / WEIGHTS
    return p.read_text() if p.is_file() else None


def _visible_checkpoints_complete(run_dir: Path) -> list[str]:
    """Names of visible checkpoint folders that look complete but lost their weights."""
    root = run_dir / rr.CHECKPOINTS_DIR
    return [
        p.name
        for p in root.iterdir()
        if not p.name.startswith(".") and checkpoint_step(p) is not None and _tag(p) is None
    ]


def _save_state(run_dir: Path, **fields: Any) -> None:
    state = CurriculumState(stage=fields.pop("stage", "warmup"), **fields)
    state.save(run_dir)


def _resume_startup(run_dir: Path, config: Any) -> Driver:
    driver = Driver(config, run_dir, resume=True)
    driver._prepare()
    return driver


def _kill_points(monkeypatch, setup, commit, check) -> int:
    """Run ``commit`` killed at operation 1, 2, ... (a fresh ``setup`` each time) until it
    completes; ``check(run_dir, killed)`` after each. Returns the operations of a commit."""
    at = 1
    while True:
        with monkeypatch.context() as mp:
            run_dir = setup(at)
            killer = Killer(mp, at)
            try:
                commit(run_dir, killer)
                killed = False
            except Killed:
                killed = True
        check(run_dir, killed)
        if not killed:
            return killer.count
        at += 1


def test_step_checkpoint_replaced_and_pruned_is_never_missing(tmp_path, monkeypatch):
    """on_save's commit of step-4 over a stale step-4 (left by a killed attempt), then the
    pruning of step-2 (keep_checkpoints 1)."""
    config = _config("run.keep_checkpoints=1")

    def setup(at: int) -> Path:
        run_dir = tmp_path / f"k{at}"
        root = run_dir / rr.CHECKPOINTS_DIR
        _checkpoint(root / "step-2", 2, "s2")
        _checkpoint(root / "step-4", 4, "stale4")
        _checkpoint(root / ".trainer" / "checkpoint-4", 4, "new4")
        _save_state(run_dir, stage="explore", global_step=2, last_checkpoint="checkpoints/step-2")
        return run_dir

    def commit(run_dir: Path, killer: Killer) -> None:
        ctx = RunContext(run_dir, config)
        ctx.state = CurriculumState.load(run_dir)
        ctx.adopt_checkpoint(run_dir / "checkpoints/.trainer/checkpoint-4", "step-4", 4)

    def check(run_dir: Path, killed: bool) -> None:
        driver = _resume_startup(run_dir, config)
        last = driver.ctx.state.last_checkpoint
        assert _visible_checkpoints_complete(run_dir) == []
        ckpt = find_resume_checkpoint(run_dir, last)
        assert ckpt == run_dir / last  # the checkpoint state.json names is there
        assert _tag(ckpt) == {"checkpoints/step-2": "s2", "checkpoints/step-4": "new4"}[last]
        if not killed:
            assert last == "checkpoints/step-4"
            assert sorted(os.listdir(run_dir / rr.CHECKPOINTS_DIR)) == ["step-4"]

    assert _kill_points(monkeypatch, setup, commit, check) > 4


@pytest.mark.parametrize("saved_at_stage_end", [False, True], ids=["new-save", "same-step"])
def test_stage_end_is_one_state_write_with_its_checkpoint(
    tmp_path, monkeypatch, saved_at_stage_end
):
    """``_finish_stage`` of a warm-up promoted at step 4: its checkpoint is the trainer's
    fresh save (``_train_stage`` saved it before releasing the trainer), or (same-step) the
    step-4 checkpoint on_save just committed. After any kill, state.json has the old state
    or all of the new one."""
    config = _config()
    planned_bounds = CurriculumState.fresh(config).stage_bounds

    class Trainer:  # what _train_stage's stage-end save uses of a trainer
        model = processing_class = None

        def __init__(self, run_dir: Path) -> None:
            self.args = type("Args", (), {"output_dir": str(run_dir / "checkpoints/.trainer")})

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            _checkpoint(Path(self.args.output_dir) / "checkpoint-4", 4, "w4")

    def setup(at: int) -> Path:
        run_dir = tmp_path / f"k{at}"
        root = run_dir / rr.CHECKPOINTS_DIR
        _checkpoint(root / "step-2", 2, "s2")
        last = "checkpoints/step-2"
        if saved_at_stage_end:
            _checkpoint(root / "step-4", 4, "w4")
            last = "checkpoints/step-4"
        _save_state(
            run_dir,
            global_step=4 if saved_at_stage_end else 2,
            last_checkpoint=last,
            stage_bounds=planned_bounds,
            stage_starts={"warmup": 1},
        )
        return run_dir

    def commit(run_dir: Path, killer: Killer) -> None:
        driver = Driver(config, run_dir)
        driver.ctx.state = CurriculumState.load(run_dir)
        killer.state_writes = 0
        root = run_dir / rr.CHECKPOINTS_DIR
        if saved_at_stage_end:
            driver._finish_stage("warmup", 4, root / "step-4", promoted="rule held")
        else:
            trainer = Trainer(run_dir)
            trainer._save_checkpoint(trainer.model, trial=None)
            saved = Path(trainer.args.output_dir) / "checkpoint-4"
            driver._finish_stage("warmup", 4, None, promoted="rule held", saved=saved)
        assert killer.state_writes == 1

    def check(run_dir: Path, killed: bool) -> None:
        state = CurriculumState.load(run_dir)
        ended = "warmup" in state.stage_ends
        assert ended == (state.last_checkpoint == "checkpoints/stage-warmup")
        if ended:
            assert state.promotions[0]["global_step"] == 4 and state.stage == "explore"
            assert state.bounds_of("explore")[0] == 5  # the later stages moved up
        assert ended or killed
        _resume_startup(run_dir, config)
        assert _visible_checkpoints_complete(run_dir) == []
        assert _tag(run_dir / state.last_checkpoint) in ("s2", "w4")

    _kill_points(monkeypatch, setup, commit, check)


def test_resume_from_the_promotion_steps_checkpoint_ends_the_stage_as_promoted(tmp_path):
    """Killed after on_save committed step-2, the step warmup was promoted at, and before
    the stage end: the resume ends warmup at step 2 as promoted (events.jsonl holds the
    promotion), instead of training it on to its planned end (step 3)."""
    config = _config("stages.warmup.steps=3")
    run_dir = tmp_path / "run"
    _checkpoint(run_dir / "checkpoints/step-2", 2, "s2")
    _save_state(
        run_dir,
        global_step=2,
        last_checkpoint="checkpoints/step-2",
        stage_bounds=CurriculumState.fresh(config).stage_bounds,
        stage_starts={"warmup": 1},
    )
    reason = "format_error_ratio 0.050 < 0.1 over the last 1 steps of warmup (stage step 2)"
    rr.append_record(
        run_dir / rr.EVENTS_FILE,
        rr.RunEvent(1.0, 2, "promotion", "warmup", "promoted", {"reason": reason}),
    )
    driver = _resume_startup(run_dir, config)
    ckpt = driver._resume_point()
    driver._run_stage("warmup", ckpt)
    state = CurriculumState.load(run_dir)
    assert state.stage_ends == {"warmup": 2} and state.stage == "explore"
    assert state.bounds_of("explore")[0] == 3
    assert [(p["stage"], p["global_step"], p["reason"]) for p in state.promotions] == [
        ("warmup", 2, reason)
    ]
    assert _tag(run_dir / "checkpoints/stage-warmup") == "s2"


def test_resume_truncates_events_like_metrics(tmp_path):
    """Resume from step-3 (explore, steps 3-4): the events after step 3 go, and so do the
    ones the resumed run writes again (the end of a stage the state no longer records)."""
    config = _config()
    run_dir = tmp_path / "run"
    _checkpoint(run_dir / "checkpoints/stage-warmup", 2, "w2")
    _checkpoint(run_dir / "checkpoints/step-3", 3, "s3")
    _save_state(
        run_dir,
        stage="explore",
        global_step=3,
        last_checkpoint="checkpoints/step-3",
        stage_bounds=[["warmup", 1, 2], ["explore", 3, 4], ["anneal", 5, 6]],
        stage_starts={"warmup": 1, "explore": 3, "anneal": 5},
        stage_ends={"warmup": 2, "explore": 4},  # written after step 3: rolled back
        completed_stages=["warmup", "explore"],
    )
    events = [
        (0, "eval", None),
        (0, "stage_start", "warmup"),
        (2, "stage_end", "warmup"),
        (2, "stage_start", "explore"),
        (3, "alert", "explore"),
        (4, "promotion", "explore"),  # after the checkpoint: rolled back
        (4, "stage_end", "explore"),
        (4, "stage_start", "anneal"),
        (3, "stage_end", "explore"),  # an end the state lacks, at the checkpoint's step
    ]
    for step, kind, stage in events:
        rr.append_record(run_dir / rr.EVENTS_FILE, rr.RunEvent(1.0, step, kind, stage))
    driver = _resume_startup(run_dir, config)
    assert driver._resume_point() == run_dir / "checkpoints/step-3"
    kept = [(e.global_step, e.kind, e.stage) for e in rr.read_events(run_dir)]
    assert kept == [*events[:5], (3, "resume", "explore")]
    assert CurriculumState.load(run_dir).stage_ends == {"warmup": 2}
