"""CurriculumState: transitions, round trip, and atomic state.json writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import curriculum.run_records as rr
from curriculum import CurriculumState, StateError, load_config

# The default's stage sizes follow the CPU budget; these tests pin their own.
STEPS_60_60_40 = ["stages.warmup.steps=60", "stages.explore.steps=60", "stages.anneal.steps=40"]


def _state() -> CurriculumState:
    return CurriculumState.fresh(load_config(None, STEPS_60_60_40))


def test_fresh_state_has_planned_bounds() -> None:
    s = _state()
    assert s.stage == "warmup" and s.global_step == 0 and not s.done
    assert s.stage_bounds == [["warmup", 1, 60], ["explore", 61, 120], ["anneal", 121, 160]]
    assert s.promotions == [] and s.completed_stages == [] and s.last_checkpoint is None


def test_complete_stages_in_order() -> None:
    s = _state()
    s.complete_stage("warmup", 60)
    assert (s.stage, s.global_step, s.completed_stages) == ("explore", 60, ["warmup"])
    s.complete_stage("explore", 120)
    s.complete_stage("anneal", 160)
    assert s.done and s.stage is None and s.completed_stages == ["warmup", "explore", "anneal"]


def test_promotion_shifts_later_stages() -> None:
    s = _state()
    s.promote("warmup", 23, "format_error_ratio 0.05 < 0.1")
    assert s.stage_bounds == [["warmup", 1, 23], ["explore", 24, 83], ["anneal", 84, 123]]
    assert s.stage == "explore" and s.global_step == 23
    assert s.promotions[0]["stage"] == "warmup" and s.promotions[0]["global_step"] == 23
    s.promote("explore", 50, "accuracy")
    assert s.bounds_of("anneal") == (51, 90)
    with pytest.raises(KeyError):
        s.bounds_of("nope")


def test_round_trip(tmp_path: Path) -> None:
    s = _state()
    s.promote("warmup", 10, "why")
    s.global_step = 17
    s.last_checkpoint = "checkpoints/step-17"
    path = s.save(tmp_path)
    assert path == tmp_path / rr.STATE_FILE
    loaded = CurriculumState.load(tmp_path)
    assert loaded == s
    assert rr.read_state(tmp_path)["last_checkpoint"] == "checkpoints/step-17"  # readers agree
    assert not [p for p in tmp_path.iterdir() if p.name != rr.STATE_FILE]  # no temp files


def test_load_missing_and_bad(tmp_path: Path) -> None:
    assert CurriculumState.load(tmp_path) is None
    (tmp_path / rr.STATE_FILE).write_text('{"stage": "warm', encoding="utf-8")
    with pytest.raises(StateError, match="cannot read"):
        CurriculumState.load(tmp_path)
    (tmp_path / rr.STATE_FILE).write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(StateError, match="not a curriculum state"):
        CurriculumState.load(tmp_path)
    (tmp_path / rr.STATE_FILE).write_text('{"stage": "a", "version": 99}', encoding="utf-8")
    with pytest.raises(StateError, match="state version 99"):
        CurriculumState.load(tmp_path)


def test_unknown_fields_from_newer_writers_are_ignored(tmp_path: Path) -> None:
    data = json.loads(_state().to_json())
    data["driver_note"] = "extra"
    (tmp_path / rr.STATE_FILE).write_text(json.dumps(data), encoding="utf-8")
    assert CurriculumState.load(tmp_path).stage == "warmup"


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_crash_mid_write_keeps_old_file(tmp_path: Path, monkeypatch, where: str) -> None:
    old = _state()
    old.save(tmp_path)
    before = (tmp_path / rr.STATE_FILE).read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # what Ctrl-C (or a dying process) does mid-write

    monkeypatch.setattr(rr.os, where, crash)
    new = _state()
    new.complete_stage("warmup", 60)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path)
    monkeypatch.undo()
    assert (tmp_path / rr.STATE_FILE).read_bytes() == before
    assert CurriculumState.load(tmp_path) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == [rr.STATE_FILE]


_WRITER = """
import sys
from curriculum.state import CurriculumState
s = CurriculumState(stage="warmup", stage_bounds=[["warmup", 1, 10**6]])
s.promotions = [{"stage": "x" * 2000, "global_step": i, "reason": "r"} for i in range(200)]
print("ready", flush=True)
while True:
    s.global_step += 1
    s.save(sys.argv[1])
"""


def test_kill_9_during_saves_leaves_a_whole_file(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        while not (tmp_path / rr.STATE_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # let it rewrite the file many times
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    state = CurriculumState.load(tmp_path)  # parses: the file is the old or the new one
    assert state is not None and state.global_step >= 1 and len(state.promotions) == 200
