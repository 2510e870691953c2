"""The whole micro curriculum with two CPU processes over gloo (configs/accelerate/cpu_2proc.yaml):
both processes agree on every stage boundary and global step, take part in every held-out
evaluation, and release each stage's trainer; the run directory holds global-batch records
and the one-process report layout. tests/multiprocess_launch.py has the launcher and probe.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from multiprocess_launch import (
    EVALS,
    REPO,
    RSS_GROWTH_MB,
    TIMING,
    check_ranks_agree,
    launch_micro_curriculum,
    own_checkpoint_shard,
)


@pytest.mark.slow
def test_two_cpu_processes_run_the_whole_curriculum(tmp_path: Path, bin_dir: Path) -> None:
    proc, ranks, run_dir = launch_micro_curriculum(
        tmp_path, bin_dir, "configs/accelerate/cpu_2proc.yaml"
    )
    out = proc.stdout + proc.stderr
    check_ranks_agree(ranks)

    # Both processes computed the same step metrics (TRL gathers rewards across processes and
    # DDP all-reduces the gradients, so rewards, loss, KL, lengths and grad norm agree).
    def steps(r: dict) -> list[dict]:
        return [
            {k: v for k, v in log.items() if k not in TIMING}
            for log in r["logs"]
            if "reward" in log or "loss" in log
        ]

    s0, s1 = steps(ranks[0]), steps(ranks[1])
    assert len(s0) == 5 and len(s0) == len(s1)
    for a, b in zip(s0, s1, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key

    # Only the main process wrote the run directory and drove the dashboard. The one
    # exception is the trainer's own checkpoint: every process saves its RNG state
    # (rng_state_<rank>.pth) and, under DeepSpeed, its optimizer shard (*rank_<rank>*), into
    # the checkpoint folder, creating the folder if it gets there first.
    assert ranks[0]["writes"], "the main process wrote nothing into the run directory"
    others = [(op, p) for op, p in ranks[1]["writes"] if not own_checkpoint_shard(op, p)]
    assert others == [], others[:5]
    assert ranks[0]["dashboards"] >= 1 and ranks[1]["dashboards"] == 0
    # The main process prints the dashboard's lines ("step 1/5 ..."); a plain line
    # ("step 1 [...") or a second copy of a line could only come from the other process.
    assert out.count("step 1/") == 1, "the step log line was printed by more than one process"
    assert "step 1 [" not in out, "the second process printed step lines"
    assert out.count("[eval] base:") == 1, "the second process printed evaluation lines"

    from curriculum import load_config
    from curriculum.run_records import read_events, read_metrics

    # metrics.jsonl describes the global batch (both processes' completions) and says so.
    config = load_config(REPO / "configs/micro.yaml", check_paths=False)
    metrics = read_metrics(run_dir)
    assert [m.global_step for m in metrics] == [1, 2, 3, 4, 5]
    for m, log in zip(metrics, s0, strict=True):
        stage = config.stages[m.stage]
        assert m.world_size == 2
        assert m.batch_completions == stage.prompts_per_step * stage.num_generations
        assert m.groups_generated == stage.prompts_per_step
        assert m.reward_mean == pytest.approx(log["reward"], abs=1e-6)
    assert [e.stage for e in read_events(run_dir) if e.kind == "promotion"] == ["warmup"]

    # Each held-out evaluation covers the whole held-out set, not one process's share.
    for label in EVALS:
        result = json.loads((run_dir / "eval" / f"{label}.json").read_text())
        assert result["settings"]["records"] == int(config.eval.n), label
        assert result["settings"]["processes"] == 2, label

    # The report has the one-process layout: the same sections, a row per stage, a row per
    # evaluation, and warmup's promotion.
    report = (run_dir / "report.md").read_text()
    assert "- device: cpu (1 thread), 2 processes" in report
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections[:2] == [
        "## Training, per stage (from metrics.jsonl)",
        "## Held-out accuracy (greedy unless stated)",
    ]
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    stage_rows = [r for r in rows if r.split("|")[1].strip() in config.stages]
    assert [r.split("|")[2].strip() for r in stage_rows] == ["1-1", "2-3", "4-5"]
    assert "no" not in stage_rows[0].split("|")[-2]
    assert sum(f"| {label} (step" in report for label in EVALS) == len(EVALS)

    # Handover: when a stage starts, no earlier stage's trainer, model or optimizer is alive,
    # and resident memory stays within RSS_GROWTH_MB from the second stage to the end.
    for r in ranks:
        hand = r["handover"]
        assert [h["stage"] for h in hand] == ["warmup", "explore", "anneal", None]
        assert all(h["alive"] == [] for h in hand), (r["rank"], hand)
        growth = hand[-1]["rss_mb"] - hand[1]["rss_mb"]
        assert growth < RSS_GROWTH_MB, (r["rank"], hand)
