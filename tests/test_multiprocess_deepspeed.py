"""DeepSpeed ZeRO-2 and ZeRO-3 with two CPU processes (configs/accelerate/zero2.yaml,
zero3.yaml): the micro curriculum's first two stages, then ``--resume`` from the ZeRO
checkpoint for the third. DeepSpeed 0.19 runs on a CPU-only machine with its CPU
accelerator; on first use it compiles a small shared-memory op with the system C++ compiler
(about a minute on 2 cores, cached in ~/.cache/torch_extensions afterwards).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from multiprocess_launch import EVALS, STAGE_ENDS, check_ranks_agree, launch_micro_curriculum


@pytest.mark.slow
@pytest.mark.parametrize(
    ("accelerate_config", "zero_stage", "optimizer"),
    [
        ("configs/accelerate/zero2.yaml", 2, "DeepSpeedZeroOptimizer"),
        ("configs/accelerate/zero3.yaml", 3, "DeepSpeedZeroOptimizer_Stage3"),
    ],
)
def test_two_cpu_processes_run_and_resume_the_curriculum_under_zero(
    tmp_path: Path, bin_dir: Path, accelerate_config: str, zero_stage: int, optimizer: str
) -> None:
    """The accelerate DeepSpeed configs with two CPU processes: warmup and explore, then a
    new launch resumes the run from explore's ZeRO checkpoint and trains anneal."""
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed is not installed (the dev extra installs it)")
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("DeepSpeed's CPU accelerator compiles a C++ op at start; no C++ compiler")
    zero = accelerate_config
    # On the CPU: ACCELERATE_USE_CPU would make accelerate leave DeepSpeed off (its state
    # turns the launcher's DeepSpeed plugin on only when not on the CPU), so the trainer gets
    # use_cpu instead; the configs' bf16 is for GPUs, micro.yaml trains in fp32.
    ds = ["train.extra.use_cpu=true"]
    launcher = ["--mixed_precision", "no"]
    env = {"KK_PROBE_DEEPSPEED": "1", "ACCELERATE_USE_CPU": ""}
    _, first, run_dir = launch_micro_curriculum(
        tmp_path, bin_dir, zero, *ds, stage="warmup,explore", launcher=launcher, env_extra=env
    )
    for r in first:
        assert r["stage_ends"] == STAGE_ENDS[:2], (r["rank"], r["stage_ends"])
        assert r["evals"] == EVALS[:3], (r["rank"], r["evals"])
    # Every process holds its own shard of the optimizer state in the stage checkpoint.
    shards = sorted(
        p.name for p in (run_dir / "checkpoints/stage-explore").rglob("*optim_states.pt")
    )
    assert len(shards) == 2 and any("rank_0" in n for n in shards), shards
    assert any("rank_1" in n for n in shards), shards

    _, second, _ = launch_micro_curriculum(
        tmp_path, bin_dir, zero, *ds, "--resume", stage="all", launcher=launcher, env_extra=env
    )
    check_ranks_agree(second, STAGE_ENDS[2:], EVALS[3:])
    for first_rank, r in zip(first, second, strict=True):
        engines = first_rank["deepspeed"]["engines"] + r["deepspeed"]["engines"]
        # Per stage: the policy's training engine, and the KL reference model's inference
        # engine (TRL's prepare_deepspeed: no optimizer; ZeRO-0 under ZeRO-2, under ZeRO-3
        # a ZeRO-3 engine whose "optimizer" is DeepSpeed's parameter-offload coordinator).
        trained = [e for e in engines if e["optimizer"] == optimizer]
        engine = {"zero_stage": zero_stage, "optimizer": optimizer, "bf16": False, "world_size": 2}
        assert trained == 3 * [engine], engines
        assert len(engines) == 6, engines
        # explore started from warmup's checkpoint; the resumed launch from explore's.
        loads = first_rank["deepspeed"]["loads"] + r["deepspeed"]["loads"]
        assert [(Path(d).name, ok) for d, ok in loads] == [
            ("stage-warmup", True),
            ("stage-explore", True),
        ], loads
        for hand in (first_rank["handover"], r["handover"]):
            assert all(h["alive"] == [] for h in hand), hand

    from curriculum.run_records import read_events, read_metrics

    metrics = read_metrics(run_dir)
    assert [m.global_step for m in metrics] == [1, 2, 3, 4, 5]
    assert all(m.world_size == 2 for m in metrics)
    assert [e.kind for e in read_events(run_dir)].count("resume") == 1
    assert (run_dir / "report.md").is_file()
