"""Rollout generation alone, apart from the optimizer step: HF ``generate`` against vLLM.

    .venv/bin/python benchmarks/bench_rollouts.py                 # explore + warm-up rows
    .venv/bin/python benchmarks/bench_rollouts.py --repeats 9 --settings explore
    .venv/bin/python benchmarks/bench_rollouts.py stages.explore.num_generations=16

For each setting it builds two ``KKGRPOTrainer``s the way ``kk-train`` builds a stage's
(``build_grpo_config`` of configs/default.yaml, the stage's data, rewards and the shipped
tiny base): one sampling with HF ``generate`` (``train.use_vllm=false``), one with the
colocated vLLM CPU engine (``train.use_vllm=true``: ``stages.scaleout.vllm_cpu`` builds it,
as in training). Both then sample the same rollout batches through TRL's own rollout code
(``GRPOTrainer._tokenize_prompts`` and ``_generate_single_turn``, what a training step
calls before scoring and the optimizer step), HF and vLLM alternating in one loop so that
both see the same machine load: ``prompts_per_step`` puzzles of the setting's person count,
each repeated ``num_generations`` times, new puzzles every repeat. One untimed batch each
first (vLLM's takes the weight sync from the policy and the engine's warm-up).

Printed, markdown-ready: one row per setting with the median over ``--repeats`` of the
seconds per rollout batch and of the process CPU seconds per batch, completion tokens/s
(EOS included, as TRL counts them), the HF/vLLM ratios, the peak RSS of this process (it
holds both trainers and the engine) and the load average before and after. Settings:
``explore`` (3-person puzzles, 4 x 8, T 1.2, top_k 0, max 400 tokens) and ``warmup``
(2-person, 4 x 8, T 1.0, top_k 50, max 224), both from the config. Intra-op threads: 1, as
``kk-train`` uses on two cores (``--threads``). Needs vLLM's CPU build (``make venv``).
"""

from __future__ import annotations

import argparse
import inspect
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# stage name -> person count of its rollout puzzles
SETTINGS = {"explore": 3, "warmup": 2}
# Prompt and context bounds the vLLM engine needs (the tiny prompts are ~100 tokens).
VLLM_OVERRIDES = ["train.max_prompt_length=256", "train.vllm_max_model_length=700"]
TRL_ROLLOUT = {
    "_tokenize_prompts": ["self", "prompts"],
    "_generate_single_turn": ["self", "prompt_ids", "images", "multimodal_fields"],
}


def _check_trl() -> None:
    """The two GRPOTrainer methods timed here, with the parameters this script passes."""
    import trl
    from trl import GRPOTrainer

    for name, params in TRL_ROLLOUT.items():
        fn = getattr(GRPOTrainer, name, None)
        got = list(inspect.signature(fn).parameters)[: len(params)] if callable(fn) else None
        if got != params:
            sys.exit(
                f"bench_rollouts: trl {trl.__version__}: GRPOTrainer.{name} takes {got}, not "
                f"{params}; this benchmark is written for trl 1.16.0"
            )


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _trainer(config: Any, stage: str, workdir: Path) -> Any:
    """A stage's trainer as ``kk-train`` builds it (no callbacks: nothing is trained)."""
    from curriculum.data import stage_dataset_records
    from stages.grpo_config import build_grpo_config
    from stages.stage_inputs import (
        build_dataset,
        build_reward_funcs,
        load_policy,
        resolve_base_model,
    )
    from stages.trainer import KKGRPOTrainer, quiet_trainer

    args = build_grpo_config(config, stage, output_dir=workdir / stage)
    model, tok = load_policy(resolve_base_model(config), config)
    prefill = bool(config.prompt.prefill_think)
    dataset, _ = build_dataset(
        stage_dataset_records(config, stage),
        tok,
        prefill_think=prefill,
        max_prompt_length=args.kk_max_prompt_length,
        shuffle_seed=None,
    )
    funcs, _ = build_reward_funcs(config.rewards, prefill)
    trainer = KKGRPOTrainer(
        model=model, args=args, reward_funcs=funcs, train_dataset=dataset, processing_class=tok
    )
    quiet_trainer(trainer)
    return trainer


def _batches(trainer: Any, stage: str, per: int, count: int) -> list[list[str]]:
    """``count`` rollout batches: ``per`` puzzles of the setting's person count from the
    stage's data, each repeated num_generations times (TRL's sampler order)."""
    people = SETTINGS[stage]
    rows = [r for r in trainer.train_dataset if int(r["people"]) == people]
    n = trainer.num_generations
    if not rows:
        sys.exit(f"bench_rollouts: stage {stage} has no {people}-person puzzles")
    out = []
    for b in range(count):
        picked = [rows[(b * per + i) % len(rows)]["prompt"] for i in range(per)]
        out.append([p for p in picked for _ in range(n)])
    return out


def _rollout(trainer: Any, prompts: list[str], threads: int) -> tuple[float, float, int]:
    """(wall s, CPU s, completion tokens) of one rollout batch through TRL's code."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    ids, images, fields = trainer._tokenize_prompts(prompts)
    completions, _ = trainer._generate_single_turn(ids, images, fields, trainer.num_generations)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return wall, cpu, sum(len(c) for c in completions)


def bench_setting(
    stage: str, overrides: list[str], repeats: int, threads: int, workdir: Path
) -> str:
    """One markdown row: HF generate vs the colocated vLLM engine on ``stage``'s rollouts."""
    import torch

    from curriculum import load_config
    from stages.trainer import release_trainer

    load_before = _load()
    configs = {
        engine: load_config(
            None, [*VLLM_OVERRIDES, f"train.use_vllm={engine == 'vllm'}", *overrides]
        )
        for engine in ("hf", "vllm")
    }
    trainers = {engine: _trainer(configs[engine], stage, workdir) for engine in ("hf", "vllm")}
    stage_cfg = configs["hf"].stages[stage]
    batches = _batches(trainers["hf"], stage, int(stage_cfg.prompts_per_step), repeats + 1)
    runs: dict[str, list[tuple[float, float, int]]] = {"hf": [], "vllm": []}
    for engine in ("hf", "vllm"):  # untimed: vLLM's first batch syncs the policy's weights
        _rollout(trainers[engine], batches[0], threads)
    for prompts in batches[1:]:
        for engine in ("hf", "vllm"):
            runs[engine].append(_rollout(trainers[engine], prompts, threads))
    for trainer in trainers.values():
        release_trainer(trainer)

    def med(engine: str, i: int) -> float:
        return statistics.median(r[i] for r in runs[engine])

    def tok_s(engine: str) -> float:
        return statistics.median(r[2] / r[0] for r in runs[engine])

    wall = {e: med(e, 0) for e in runs}
    cpu = {e: med(e, 1) for e in runs}
    tps = {e: tok_s(e) for e in runs}
    mean_len = {e: statistics.mean(r[2] for r in runs[e]) / len(batches[0]) for e in runs}
    temp = stage_cfg.temperature.start
    setting = (
        f"{stage}: {SETTINGS[stage]} people, {stage_cfg.prompts_per_step} x "
        f"{stage_cfg.num_generations}, T {temp:g}, top_k {stage_cfg.top_k or 0}, max "
        f"{stage_cfg.max_completion_length or configs['hf'].train.max_completion_length}"
    )
    return (
        f"| {setting} | {wall['hf']:.2f} / {wall['vllm']:.2f} | {wall['hf'] / wall['vllm']:.2f}x "
        f"| {cpu['hf']:.2f} / {cpu['vllm']:.2f} | {tps['hf']:.0f} / {tps['vllm']:.0f} | "
        f"{tps['vllm'] / tps['hf']:.2f}x | {mean_len['hf']:.0f} / {mean_len['vllm']:.0f} | "
        f"{_peak_rss_mb():.0f} MB | {load_before} -> {_load()} | {torch.get_num_threads()} |"
    )


HEADER = (
    "| setting | s/batch HF / vLLM | speed-up | CPU s/batch HF / vLLM | tok/s HF / vLLM | "
    "tok/s ratio | mean completion tokens HF / vLLM | peak RSS | load (1/5/15 min) before -> "
    "after | torch threads after |\n|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed batches per engine")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("overrides", nargs="*", help="config overrides, as kk-train takes them")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from stages.driver import quiet_libraries
    from stages.scaleout.vllm_support import vllm_unavailable_reason

    reason = vllm_unavailable_reason()
    if reason is not None:
        sys.exit(f"bench_rollouts: {reason}")
    _check_trl()
    quiet_libraries()
    torch.set_num_threads(args.threads)
    print(
        f"median of {args.repeats} rollout batches per engine, alternating; {args.threads} "
        f"torch thread(s); RSS at start {_rss_mb():.0f} MB; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(HEADER)
    with tempfile.TemporaryDirectory(prefix="bench_rollouts_") as tmp:
        for stage in args.settings:
            print(
                bench_setting(stage, list(args.overrides), args.repeats, args.threads, Path(tmp)),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
