"""Smoke test on a real micro run: kk-train -> kk-analyze and kk-eval over its run directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from curriculum import run_records as rr


@pytest.mark.slow
def test_micro_run_analyze_and_eval(tmp_path: Path, bin_dir: Path, repo_root: Path):
    run = tmp_path / "run"
    train = subprocess.run(
        [str(bin_dir / "kk-train"), "--stage", "all", "--config", str(repo_root / "configs" / "micro.yaml"),
         "--output-dir", str(run), "--no-dashboard", "--max-steps", "1", "eval.enabled=false"],
        capture_output=True, text=True, timeout=900, cwd=repo_root,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    metrics = rr.read_metrics(run)
    completions = rr.read_completions(run)
    assert metrics and completions

    out = tmp_path / "analysis"
    proc = subprocess.run(
        [str(bin_dir / "kk-analyze"), str(run), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "analysis.json").read_text())
    (r,) = doc["runs"]
    assert r["steps"] == len(metrics) and r["completions"] == len(completions)
    assert [s["stage"] for s in r["stages"]] == list(dict.fromkeys(m.stage for m in metrics))
    assert (out / "curves.png").stat().st_size > 10_000
    assert (out / "behaviour.png").stat().st_size > 10_000
    assert "## Stages" in (out / "analysis.md").read_text()

    proc = subprocess.run(
        [str(bin_dir / "kk-eval"), "--model", str(run), "--people", "2", "--n", "2",
         "--max-new-tokens", "8"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ev = json.loads((run / "kk-eval" / "eval.json").read_text())
    info = rr.read_run_info(run)
    expected = [f"{info.run_name}/base"] + [f"{info.run_name}/stage-{s.name}" for s in info.stages]
    assert list(ev["models"]) == expected
    for res in ev["models"].values():
        assert res["groups"]["2"]["puzzles"] == 2
