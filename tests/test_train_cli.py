"""kk-train command line: user errors exit 2 with one line, --dry-run prints the plan."""

from __future__ import annotations

import subprocess

import pytest


def _run(bin_dir, repo_root, *args, timeout=120):
    return subprocess.run(
        [str(bin_dir / "kk-train"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=repo_root,
    )


def _one_line_error(res, *needles):
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert res.stderr.startswith("kk-train: error: ")
    assert res.stderr.count("\n") == 1, res.stderr  # one line, no traceback
    for needle in needles:
        assert needle in res.stderr, res.stderr


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["train.lerning_rate=1e-4"], ["unknown config key", "train.learning_rate"]),
        (["stages.warmup.temperature.start=-1"], ["temperature"]),
        (["stages.warmup.num_generations=1"], ["num_generations"]),
        (["model.name_or_path=/no/such/model"], ["/no/such/model"]),
        (["--stage", "7"], ["unknown stage"]),
        (["--max-steps", "0"], ["--max-steps"]),
        (["--config", "/no/such.yaml"], ["config file not found"]),
        (["not_an_override"], ["key=value"]),
    ],
)
def test_user_errors_exit_2(bin_dir, repo_root, tmp_path, args, needles):
    res = _run(bin_dir, repo_root, "--output-dir", str(tmp_path / "run"), *args)
    _one_line_error(res, *needles)
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_existing_run_needs_resume(bin_dir, repo_root, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.json").write_text('{"stage": "explore", "completed_stages": ["warmup"]}')
    (run / "metrics.jsonl").write_text("")
    res = _run(bin_dir, repo_root, "--output-dir", str(run), "--config", "configs/micro.yaml")
    _one_line_error(res, "--resume")
    # Running only the next stage of that run is allowed (warmup is complete): not an error
    # at the run-directory check (a dry run stops before any training).
    res = _run(bin_dir, repo_root, "--output-dir", str(run), "--stage", "2", "--dry-run")
    assert res.returncode == 0, res.stderr


def test_dry_run_prints_resolved_stages(bin_dir, repo_root, tmp_path):
    res = _run(
        bin_dir,
        repo_root,
        "--dry-run",
        "--output-dir",
        str(tmp_path / "run"),
        "stages.explore.temperature.start=1.1",
        "train.learning_rate=4e-7",
        "train.lr_floor=2e-7",
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "lr 4e-07" in lines[0]
    explore = next(line for line in lines if line.startswith("explore"))
    assert "1.10 -> 1.10" in explore
    assert not (tmp_path / "run").exists()


def test_max_steps_caps_every_stage(bin_dir, repo_root):
    res = _run(bin_dir, repo_root, "--dry-run", "--max-steps", "5")
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines()[3:]]
    assert [r[1] for r in rows] == ["1-5", "6-10", "11-15"]


def test_help(bin_dir, repo_root):
    res = _run(bin_dir, repo_root, "--help")
    assert res.returncode == 0
    for flag in ("--stage", "--resume", "--max-steps", "--dry-run", "--no-dashboard", "watch"):
        assert flag in res.stdout
