"""Paper estimate of GPU memory and step time for each GPU recipe (plan before you rent).

    python benchmarks/estimate_gpu.py            # markdown table for 8 x A100-80G
    python benchmarks/estimate_gpu.py --json     # the same numbers as JSON

Nothing here is measured: it is arithmetic on the model's shape, the recipe's sequence
lengths and rollout counts, and the stated hardware and efficiency assumptions below. Each
recipe states how it is launched in its first lines (``# launch: gpus=8 accelerate=...``);
the batch layout comes from ``curriculum.batch_plan``, exactly as the trainer will see it.

Memory per GPU (GiB = 2**30 bytes), P = parameters, N = training GPUs:

* policy + optimizer, by strategy (ZeRO paper accounting, Adam):
  - DeepSpeed ZeRO-2, bf16 weights: 2P + 14P/N  (bf16 weights; grads and fp32 master +
    Adam moments partitioned)
  - DeepSpeed ZeRO-3: 16P/N + one gathered layer
  - DDP with fp32 weights and bf16 autocast: 16P (4 weights + 4 grads + 8 Adam)
  - LoRA: 2P (frozen bf16 base) + 16 A (A = adapter parameters, fp32 with Adam)
* reference model (beta > 0, not LoRA): 2P bf16 (2P/N under ZeRO-3); fp32 under DDP: 4P
* activations with gradient checkpointing, micro-batch of b sequences of T = prompt +
  max_completion tokens: layers * b * T * h * 2 bytes (checkpoints) + 34 * b * T * h bytes
  (one layer recomputed; Korthikanti et al. 2022, no attention-score term with SDPA)
* vLLM colocate: utilization * GPU memory while generating (with sleep mode, freed while
  training, so the peak is max(generation phase, training phase))

Step time = generation + training:

* generation: each engine decodes S = generation batch / engines sequences; concurrency C
  is what the KV cache holds (KV bytes per token = 2 * layers * kv_heads * head_dim * 2);
  waves = ceil(S / C); a decode step costs max(weights + KV read / (bandwidth * eff_bw),
  2 P C / (peak * mfu)); decode steps per wave = the longest completion, assumed
  min(2 * mean completion, max_completion)
* training: FLOPs = tokens * P * (6 fwd+bwd + 2 recompute + 2 old log-probs [vLLM
  importance sampling] + 2 reference [beta > 0]); LoRA uses 4 instead of 6 (no weight
  gradients); time = FLOPs / (N * peak * mfu)

Assumptions (change them with flags): A100-80G 312 TFLOP/s bf16 dense, 2.04 TB/s HBM;
training MFU 0.35, decode bandwidth efficiency 0.6; mean completion tokens per stage
warm-up 600, explore 1500, anneal 2000 (Logic-RL-style length growth; the actual lengths
decide the real time); prompt 300 tokens on average.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPES_DIR = REPO_ROOT / "configs" / "recipes"
GIB = 2**30


@dataclass(frozen=True)
class Arch:
    """What the estimate needs of a model (from its config.json)."""

    params: float  # total parameters
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_bytes_per_token(self) -> int:
        """bf16 K and V of every layer for one token."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2

    def lora_params(self, rank: int) -> float:
        """LoRA on every linear layer of the decoder (q, k, v, o, gate, up, down)."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        per_layer = (h + h) + (h + kv) * 2 + (h + h) + (h + i) * 2 + (i + h)
        return float(rank * per_layer * self.layers)


# Shapes from the models' config.json files on the Hugging Face hub.
ARCHS: dict[str, Arch] = {
    "Qwen/Qwen2.5-7B-Instruct-1M": Arch(7.62e9, 28, 3584, 18944, 28, 4, 152064),
    "Qwen/Qwen2.5-3B-Instruct": Arch(3.09e9, 36, 2048, 11008, 16, 2, 151936),
    "Qwen/Qwen2.5-1.5B-Instruct": Arch(1.54e9, 28, 1536, 8960, 12, 2, 151936),
}


@dataclass(frozen=True)
class Hardware:
    name: str = "A100-80G"
    memory_gib: float = 80.0
    peak_flops: float = 312e12  # bf16 dense tensor core
    bandwidth: float = 2.039e12  # HBM2e bytes/s
    mfu: float = 0.35  # training model-FLOPs utilisation
    bw_eff: float = 0.6  # decode: fraction of peak bandwidth reached


@dataclass(frozen=True)
class Launch:
    gpus: int
    accelerate: str  # path of the accelerate config

    @property
    def strategy(self) -> str:
        name = Path(self.accelerate).stem
        return {"zero2": "zero2", "zero3": "zero3", "ddp": "ddp", "fsdp2": "zero3"}.get(
            name, "single"
        )


# docs/gpu.md's 8-GPU server-mode example: 4 trainer processes need twice the accumulation.
SERVER_EXAMPLE = (
    "train.use_vllm=true",
    "train.vllm_mode=server",
    "train.gradient_accumulation_steps=16",
)
MEAN_COMPLETION = {"warmup": 600, "explore": 1500, "anneal": 2000}
PROMPT_TOKENS = 300
_LAUNCH_RE = re.compile(r"^#\s*launch:\s*gpus=(\d+)\s+accelerate=(\S+)\s*$", re.MULTILINE)


def read_launch(path: Path) -> Launch:
    """The ``# launch: gpus=N accelerate=PATH`` line every recipe starts with."""
    m = _LAUNCH_RE.search(path.read_text(encoding="utf-8"))
    if m is None:
        raise ValueError(f"{path}: no '# launch: gpus=N accelerate=PATH' line")
    return Launch(int(m.group(1)), m.group(2))


def recipe_paths() -> list[Path]:
    return sorted(RECIPES_DIR.glob("*/*.yaml"))


@dataclass
class StageEstimate:
    stage: str
    steps: int
    generation_batch: int
    micro_batch: int
    memory_generation_gib: float
    memory_training_gib: float
    generation_s: float
    training_s: float

    @property
    def step_s(self) -> float:
        return self.generation_s + self.training_s


def _policy_bytes(arch: Arch, strategy: str, n: int, lora_rank: int | None) -> float:
    p = arch.params
    if lora_rank is not None:
        return 2 * p + 16 * arch.lora_params(lora_rank)
    if strategy == "zero2":
        return 2 * p + 14 * p / n
    if strategy == "zero3":
        return 16 * p / n + 2 * p / arch.layers  # plus one gathered layer
    return 16 * p  # ddp / single: fp32 weights, grads and Adam moments


def _ref_bytes(arch: Arch, strategy: str, n: int, beta: float, lora: bool, fp32: bool) -> float:
    if beta == 0 or lora:  # LoRA: the reference is the base with adapters switched off
        return 0.0
    if strategy == "zero3":
        return 2 * arch.params / n
    return (4 if fp32 else 2) * arch.params


def _activation_bytes(arch: Arch, micro: int, seq: int) -> float:
    tokens = micro * seq
    return arch.layers * tokens * arch.hidden * 2 + 34 * tokens * arch.hidden


def _generation_seconds(
    arch: Arch,
    hw: Hardware,
    seqs_per_engine: int,
    tp: int,
    kv_budget_bytes: float,
    max_len: int,
    mean_completion: float,
    max_completion: int,
) -> float:
    longest = min(2 * mean_completion, max_completion)
    weights = 2 * arch.params / tp
    kv_tok = arch.kv_bytes_per_token / tp
    capacity = max(int(kv_budget_bytes // (kv_tok * max_len)), 1)
    conc = min(seqs_per_engine, capacity)
    waves = math.ceil(seqs_per_engine / conc)
    avg_context = PROMPT_TOKENS + longest / 2
    mem_t = (weights + conc * avg_context * kv_tok) / (hw.bandwidth * hw.bw_eff)
    flop_t = 2 * arch.params / tp * conc / (hw.peak_flops * hw.mfu)
    return waves * longest * max(mem_t, flop_t)


def estimate(
    path: Path,
    hw: Hardware | None = None,
    *,
    server_gpus: int = 0,
    overrides: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Memory and time per stage of one recipe (see the module docstring for the formulas).

    ``server_gpus`` > 0 estimates vLLM server mode instead: ``trl vllm-serve`` on that many
    GPUs (one engine, tensor parallel over all of them, 0.9 of their memory), the trainer on
    the recipe's GPUs minus those, with ``overrides`` applied (e.g. a larger accumulation).
    """
    from curriculum import batch_plan, load_config

    hw = hw or Hardware()
    launch = read_launch(path)
    n = launch.gpus - server_gpus
    cfg = load_config(path, list(overrides), world_size=n, check_paths=False)
    arch = ARCHS[cfg.model.name_or_path]
    tr = cfg.train
    extra = dict(tr.extra or {})
    lora_rank = int(cfg.model.peft["r"]) if cfg.model.peft else None
    strategy = launch.strategy
    fp32 = cfg.model.dtype == "float32"
    sleep = bool(extra.get("vllm_enable_sleep_mode", False))
    if server_gpus:  # vLLM lives on its own GPUs: nothing of it on the trainer's
        tp, engines, vllm_bytes, sleep = server_gpus, 1, 0.0, True
        kv_budget = max(server_gpus * (0.9 * hw.memory_gib - 2) * GIB - 2 * arch.params, 0.0)
    else:
        tp = tr.vllm_tensor_parallel_size if tr.use_vllm else 1
        engines = n // tp
        vllm_bytes = tr.vllm_gpu_memory_utilization * hw.memory_gib * GIB if tr.use_vllm else 0.0
        kv_budget = max(vllm_bytes - 2 * arch.params / tp - 2 * GIB, 0.0)  # minus weights, overhead
    stages = []
    for name, st in cfg.stages.items():
        plan = batch_plan(cfg, name, world_size=n)
        max_comp = st.max_completion_length or tr.max_completion_length
        seq = (tr.max_prompt_length or PROMPT_TOKENS) + max_comp
        beta = tr.beta if st.beta is None else st.beta
        static = _policy_bytes(arch, strategy, n, lora_rank) + _ref_bytes(
            arch, strategy, n, beta, lora_rank is not None, fp32
        )
        act = _activation_bytes(arch, plan.per_device_train_batch_size, seq)
        mem_gen = static + vllm_bytes
        mem_train = static + act + (0.0 if sleep else vllm_bytes)
        mean_comp = MEAN_COMPLETION.get(name, 1500)
        gen_s = _generation_seconds(
            arch,
            hw,
            plan.generation_batch_size // engines,
            tp,
            kv_budget,
            seq,
            mean_comp,
            max_comp,
        )
        tokens = plan.generation_batch_size * (PROMPT_TOKENS + mean_comp)
        per_token = (4 if lora_rank is not None else 6) + 2 + (2 if tr.use_vllm else 0)
        per_token += 2 if beta > 0 else 0
        train_s = tokens * arch.params * per_token / (n * hw.peak_flops * hw.mfu)
        stages.append(
            StageEstimate(
                name,
                st.steps,
                plan.generation_batch_size,
                plan.per_device_train_batch_size,
                mem_gen / GIB,
                mem_train / GIB,
                gen_s,
                train_s,
            )
        )
    total_h = sum(s.steps * s.step_s for s in stages) / 3600
    if server_gpus:
        vllm = f"server on {server_gpus} (TP {server_gpus})"
    elif tr.use_vllm:
        vllm = f"{tr.vllm_mode} {tr.vllm_gpu_memory_utilization}"
    else:
        vllm = "off"
    return {
        "recipe": str(path.relative_to(REPO_ROOT)),
        "model": cfg.model.name_or_path,
        "gpus": n,
        "strategy": strategy + ("+lora" if lora_rank else ""),
        "vllm": vllm,
        "stages": [asdict(s) | {"step_s": s.step_s} for s in stages],
        "peak_memory_gib": max(max(s.memory_generation_gib, s.memory_training_gib) for s in stages),
        "total_hours": total_h,
        "gpus_label": f"{n}+{server_gpus}" if server_gpus else str(n),
        "hardware": asdict(hw),
    }


def markdown(rows: list[dict[str, Any]], hw: Hardware) -> str:
    out = [
        f"Estimated on paper for {hw.name} ({hw.memory_gib:g} GiB, {hw.peak_flops / 1e12:g} "
        f"TFLOP/s bf16, {hw.bandwidth / 1e12:.2f} TB/s; MFU {hw.mfu}, decode bandwidth "
        f"efficiency {hw.bw_eff}; mean completion tokens "
        + ", ".join(f"{k} {v}" for k, v in MEAN_COMPLETION.items())
        + ").",
        "",
        "| recipe | GPUs | strategy | vLLM | stage | gen batch | micro-batch | GiB/GPU "
        "generating | GiB/GPU training | s/step (gen + train) | stage hours |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for s in r["stages"]:
            out.append(
                f"| {Path(r['recipe']).parent.name}/{Path(r['recipe']).name} | {r['gpus_label']} | "
                f"{r['strategy']} | {r['vllm']} | {s['stage']} | {s['generation_batch']} | "
                f"{s['micro_batch']} | {s['memory_generation_gib']:.0f} | "
                f"{s['memory_training_gib']:.0f} | {s['step_s']:.0f} ({s['generation_s']:.0f} + "
                f"{s['training_s']:.0f}) | {s['steps'] * s['step_s'] / 3600:.1f} |"
            )
    out.append("")
    out.append("| recipe | peak GiB/GPU | fits | total hours |")
    out.append("|---|---|---|---|")
    for r in rows:
        fits = "yes" if r["peak_memory_gib"] <= hw.memory_gib * 0.95 else "NO"
        out.append(
            f"| {r['recipe']} ({r['vllm']}) | {r['peak_memory_gib']:.0f} | {fits} | "
            f"{r['total_hours']:.1f} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", help="recipe YAMLs (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    parser.add_argument("--memory-gib", type=float, default=80.0)
    parser.add_argument("--mfu", type=float, default=0.35)
    parser.add_argument("--bw-eff", type=float, default=0.6)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    hw = Hardware(memory_gib=args.memory_gib, mfu=args.mfu, bw_eff=args.bw_eff)
    paths = [Path(p).resolve() for p in args.recipes] or recipe_paths()
    rows = [estimate(p, hw) for p in paths]
    if not args.recipes:  # the worked server-mode example of docs/gpu.md
        rows.append(
            estimate(
                RECIPES_DIR / "qwen2.5-7b-instruct-1m" / "logic_rl_3stage.yaml",
                hw,
                server_gpus=4,
                overrides=SERVER_EXAMPLE,
            )
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(markdown(rows, hw), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
