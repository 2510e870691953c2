"""Two-process runs of the micro curriculum under ``accelerate launch`` on CPU, for the tests.

accelerate 1.15 starts several CPU processes only through mpirun: ``accelerate launch --cpu
--num_processes 2`` alone runs ONE process. So the runs use a torchrun-style launcher
(configs/accelerate/cpu_2proc.yaml, or the DeepSpeed configs) with ``ACCELERATE_USE_CPU=1``,
which makes transformers build a gloo process group on the CPU (DeepSpeed runs get
``use_cpu`` instead, see tests/test_multiprocess_deepspeed.py).

The run is the micro curriculum's full shape: three stages, an early promotion, the base
and every stage-end held-out evaluation. Each process runs the real ``stages.cli.main``
under a small probe that only *records*: what the trainer logged at every step (to compare
the two processes), where each process saw every stage end, which evaluations it took part
in, whether an earlier stage's trainer, model or optimizer is still alive when a stage
starts, its resident memory, the DeepSpeed engines and checkpoint loads, which files it
opened for writing inside the run directory, and whether it created a dashboard. Writers
in compiled code (safetensors, torch.save) are invisible to the probe; the trainer saves
checkpoints through transformers, which writes on the main process only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PROBE = r"""
import atexit, builtins, io, json, os, sys
from pathlib import Path

RUN_DIR = Path(os.environ["KK_PROBE_RUN_DIR"]).resolve()
OUT = Path(os.environ["KK_PROBE_OUT"])
RANK = int(os.environ.get("RANK", "0"))
record = {"rank": RANK, "writes": [], "logs": [], "dashboards": 0}
_real_open, _real_os_open = builtins.open, os.open


def _inside(path):
    try:
        return Path(os.fsdecode(path)).resolve().is_relative_to(RUN_DIR)
    except Exception:
        return False


def _open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
        if _inside(file):
            record["writes"].append(["open", os.fsdecode(file)])
    return _real_open(file, mode, *args, **kwargs)


def _os_open(path, flags, *args, **kwargs):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _inside(path):
        record["writes"].append(["os.open", os.fsdecode(path)])
    return _real_os_open(path, flags, *args, **kwargs)


def _wrap(name):
    real = getattr(os, name)

    def wrapper(path, *args, **kwargs):
        if _inside(path) or (args and isinstance(args[0], (str, os.PathLike)) and _inside(args[0])):
            record["writes"].append([name, os.fsdecode(path)])
        return real(path, *args, **kwargs)

    setattr(os, name, wrapper)


builtins.open = io.open = _open
os.open = _os_open
for _name in ("replace", "rename", "mkdir", "makedirs", "remove", "unlink"):
    _wrap(_name)

import transformers

_real_log = transformers.Trainer.log


def _log(self, logs, *args, **kwargs):
    record["logs"].append({k: v for k, v in logs.items() if isinstance(v, (int, float))})
    return _real_log(self, logs, *args, **kwargs)


transformers.Trainer.log = _log

import stages.dashboard as dashboard

_real_init = dashboard.StageDashboard.__init__


def _dash_init(self, *args, **kwargs):
    record["dashboards"] += 1
    return _real_init(self, *args, **kwargs)


dashboard.StageDashboard.__init__ = _dash_init


import gc, weakref

import stages.driver as driver

# Stage boundaries, evaluations and the handover, as each process saw them. The trainer,
# its model and optimizer of every finished stage are watched through weak references:
# the probe itself never collects, so a reference cycle the driver left counts as alive.
record.update(stage_ends=[], evals=[], handover=[])
_watched = []


def _rss_mb():
    with _real_open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def _alive():
    return sorted({kind for kind, ref in _watched if ref() is not None})


_real_run_stage = driver.Driver._run_stage


def _run_stage(self, name, *args, **kwargs):
    record["handover"].append({"stage": name, "rss_mb": _rss_mb(), "alive": _alive()})
    return _real_run_stage(self, name, *args, **kwargs)


driver.Driver._run_stage = _run_stage
_real_train = driver.KKGRPOTrainer.train


def _train(self, *args, **kwargs):
    try:
        return _real_train(self, *args, **kwargs)
    finally:
        for kind, obj in (("trainer", self), ("model", self.model), ("optimizer", self.optimizer)):
            if obj is not None:
                _watched.append((kind, weakref.ref(obj)))


driver.KKGRPOTrainer.train = _train
_real_finish = driver.Driver._finish_stage


def _finish(self, name, *args, **kwargs):
    out = _real_finish(self, name, *args, **kwargs)
    st = self.ctx.state
    record["stage_ends"].append([name, st.stage_ends.get(name), st.global_step])
    return out


driver.Driver._finish_stage = _finish
_real_eval = driver.evaluate_into_run


def _eval(ctx, label, *args, **kwargs):
    record["evals"].append(label)
    return _real_eval(ctx, label, *args, **kwargs)


driver.evaluate_into_run = _eval


record["deepspeed"] = {"engines": [], "loads": []}
if os.environ.get("KK_PROBE_DEEPSPEED"):
    import deepspeed

    _real_ds_init = deepspeed.initialize

    def _ds_initialize(*args, **kwargs):
        out = _real_ds_init(*args, **kwargs)
        engine = out[0]
        record["deepspeed"]["engines"].append(
            {
                "zero_stage": engine.zero_optimization_stage(),
                "optimizer": type(engine.optimizer).__name__,
                "bf16": engine.bfloat16_enabled(),
                "world_size": engine.world_size,
            }
        )
        return out

    deepspeed.initialize = _ds_initialize
    _real_load = deepspeed.DeepSpeedEngine.load_checkpoint

    def _ds_load(self, load_dir, *args, **kwargs):
        path, client = _real_load(self, load_dir, *args, **kwargs)
        record["deepspeed"]["loads"].append([os.fsdecode(load_dir), path is not None])
        return path, client

    deepspeed.DeepSpeedEngine.load_checkpoint = _ds_load


def _dump():
    import torch.distributed as dist

    record["handover"].append({"stage": None, "rss_mb": _rss_mb(), "alive": _alive()})
    record["state"] = json.loads((RUN_DIR / "state.json").read_text()) if RANK == 0 else None

    if dist.is_available() and dist.is_initialized():
        record["world_size"] = dist.get_world_size()
        record["backend"] = str(dist.get_backend())
    with _real_open(OUT / f"rank{RANK}.json", "w") as fh:
        json.dump(record, fh)


atexit.register(_dump)

from stages.cli import main

sys.exit(main(sys.argv[1:]))
"""


def own_checkpoint_shard(op: str, path: str, rank: int = 1) -> bool:
    """A write that transformers/DeepSpeed make on every process by design."""
    name = Path(path).name
    if re.fullmatch(rf"rng_state_{rank}\.pth", name) or re.search(rf"rank_{rank}(\D|$)", name):
        return True
    # Creating (parents of) the checkpoint folder; files elsewhere stay forbidden.
    return op in ("mkdir", "makedirs") and "checkpoints" in Path(path).parts


# Per-step values that depend on the wall clock, not on the computation.
TIMING = ("step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second")


# The micro curriculum's three stages with promotion and every held-out evaluation on:
# warmup promotes at its first step (accuracy >= 0 always holds), so the later stages move
# one step earlier: explore 2-3, anneal 4-5.
OVERRIDES = [
    "eval.after_each_stage=true",
    "stages.warmup.promotion.accuracy_at_least=0.0",
    "stages.warmup.promotion.window=1",
    "stages.warmup.promotion.min_steps=1",
]
STAGE_ENDS = [["warmup", 1, 1], ["explore", 3, 3], ["anneal", 5, 5]]
EVALS = ["base", "stage-warmup", "stage-explore", "stage-anneal"]
# Growth of a process's resident memory from the second stage's start to the run's end.
# A stage of the micro model (~50k parameters) leaves a few MB of allocator noise; a stage
# whose trainer was never released keeps its policy, reference model, optimizer state,
# data loader and accelerate state: the weak references below catch that exactly, the RSS
# bound catches anything big they do not watch.
RSS_GROWTH_MB = 64.0


def launch_micro_curriculum(
    tmp_path: Path,
    bin_dir: Path,
    accelerate_config: str,
    *extra: str,
    stage: str = "all",
    launcher: Sequence[str] = (),
    env_extra: dict[str, str] | None = None,
    timeout: int = 600,
) -> tuple[subprocess.CompletedProcess, list[dict], Path]:
    """The micro curriculum under ``accelerate launch`` with two CPU processes and the probe:
    (the finished process, each rank's probe record, the run directory). ``extra``: more
    kk-train arguments, ``launcher``: more ``accelerate launch`` ones; a second launch into
    the same ``tmp_path`` continues the run. The processes stay on the CPU through
    ``ACCELERATE_USE_CPU=1`` unless ``env_extra`` sets it to ""."""
    # Build (or reuse) the micro base model first, in this one process: two processes that
    # both find the tiny-model cache empty race to build it (a cache race, not what these
    # tests are about).
    from curriculum import load_config
    from stages.stage_inputs import resolve_base_model

    resolve_base_model(load_config(REPO / "configs/micro.yaml", check_paths=False))

    run_dir = tmp_path / "run"
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = dict(os.environ)
    env.update(
        ACCELERATE_USE_CPU="1",
        KK_PROBE_RUN_DIR=str(run_dir),
        KK_PROBE_OUT=str(tmp_path),
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(REPO),
    )
    env.update(env_extra or {})
    if not env["ACCELERATE_USE_CPU"]:
        del env["ACCELERATE_USE_CPU"]
    cmd = [
        str(bin_dir / "accelerate"),
        "launch",
        "--config_file",
        str(REPO / accelerate_config),
        "--num_processes",
        "2",
        *launcher,
        str(probe),
        "--config",
        str(REPO / "configs/micro.yaml"),
        "--stage",
        stage,
        "--no-dashboard",
        "--output-dir",
        str(run_dir),
        *OVERRIDES,
        *extra,
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as err:
        tail = ((err.stdout or b"").decode() + (err.stderr or b"").decode())[-3000:]
        pytest.fail(f"two-process run still going after {timeout} s (a hang?):\n{tail}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # Two members of one gloo group: the run was really distributed.
    assert [r.get("world_size") for r in ranks] == [2, 2], ranks[0].get("world_size")
    assert all(r.get("backend") == "gloo" for r in ranks)
    return proc, ranks, run_dir


def check_ranks_agree(
    ranks: list[dict], stage_ends: list = STAGE_ENDS, evals: list[str] = EVALS
) -> None:
    """Both processes crossed the same stage boundaries at the same global steps and took
    part in the same evaluations; at the end the run's state holds all three stages."""
    for r in ranks:
        assert r["stage_ends"] == stage_ends, (r["rank"], r["stage_ends"])
        assert r["evals"] == evals, (r["rank"], r["evals"])
    state = ranks[0]["state"]
    assert state["completed_stages"] == ["warmup", "explore", "anneal"]
    assert state["global_step"] == 5
    assert {k: state["stage_ends"][k] for k in ("warmup", "explore", "anneal")} == {
        "warmup": 1,
        "explore": 3,
        "anneal": 5,
    }
