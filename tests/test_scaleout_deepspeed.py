"""DeepSpeed ZeRO-2 on CPU: one real GRPO step through ``kk-train`` with configs/deepspeed/zero2.json.

DeepSpeed 0.19 runs on a CPU-only machine with its CPU accelerator (gloo, no oneCCL needed);
on first use it compiles a small shared-memory communication op with the system C++ compiler
(about a minute on 2 cores, cached in ~/.cache/torch_extensions afterwards). The process is
a one-member torchrun-style group (RANK/WORLD_SIZE set), as under ``accelerate launch``.
Skipped, with the reason, where deepspeed is not installed (``pip install 'kk-rl[deepspeed]'``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

if importlib.util.find_spec("deepspeed") is None:
    pytest.skip(
        "deepspeed is not installed (pip install 'kk-rl[deepspeed]'); the ZeRO-2 CPU step needs it",
        allow_module_level=True,
    )

PROBE = r"""
import json, os, sys
import deepspeed

_real = deepspeed.initialize


def initialize(*args, **kwargs):
    out = _real(*args, **kwargs)
    engine = out[0]
    with open(os.environ["KK_PROBE_OUT"], "w") as fh:
        json.dump(
            {
                "zero_stage": engine.zero_optimization_stage(),
                "optimizer": type(engine.optimizer).__name__,
                "bf16": engine.bfloat16_enabled(),
            },
            fh,
        )
    return out


deepspeed.initialize = initialize
from stages.cli import main

sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_zero2_runs_one_grpo_step_on_cpu(tmp_path: Path) -> None:
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("DeepSpeed's CPU accelerator compiles a C++ op at start; no C++ compiler")
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    report = tmp_path / "engine.json"
    run_dir = tmp_path / "run"
    env = dict(os.environ)
    env.update(
        RANK="0",
        LOCAL_RANK="0",
        WORLD_SIZE="1",
        LOCAL_WORLD_SIZE="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        KK_PROBE_OUT=str(report),
        PYTHONPATH=str(REPO),
    )
    cmd = [
        sys.executable,
        str(probe),
        "--config",
        str(REPO / "configs/micro.yaml"),
        "--stage",
        "1",
        "--max-steps",
        "1",
        "--no-dashboard",
        "--output-dir",
        str(run_dir),
        "eval.enabled=false",
        f"train.extra.deepspeed={REPO / 'configs/deepspeed/zero2.json'}",
        "train.extra.use_cpu=true",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    engine = json.loads(report.read_text())
    assert engine["zero_stage"] == 2
    assert engine["optimizer"] == "DeepSpeedZeroOptimizer"
    assert engine["bf16"] is False  # micro.yaml trains in fp32 ("auto" follows train.bf16)

    from curriculum.run_records import read_metrics

    metrics = read_metrics(run_dir)
    assert [m.global_step for m in metrics] == [1]
    assert metrics[0].loss is not None and metrics[0].loss == metrics[0].loss  # not NaN
