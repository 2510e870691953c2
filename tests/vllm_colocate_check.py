"""Run in a subprocess by ``test_vllm_colocate.py``: colocated vLLM on a CPU, for real.

``python tests/vllm_colocate_check.py WORKDIR OUT_JSON`` builds a ``KKGRPOTrainer`` on the
shipped tiny base with ``use_vllm=True`` (colocate), compares vLLM's greedy output with HF
``generate`` (a separate, untouched copy of the model) before training, trains one step,
syncs the weights into the engine, compares again, frees the engine and writes what it saw
to OUT_JSON. A subprocess because the in-process engine initialises torch.distributed and
sets RANK/WORLD_SIZE in the environment, which must not leak into other tests.
"""

from __future__ import annotations

import json
import sys
import time
import weakref
from pathlib import Path
from typing import Any

MAX_TOKENS = 24


def _reward_distinct_words(completions: list[Any], **_: Any) -> list[float]:
    """Any reward with spread across a group, so one step moves the weights."""
    return [float(len(set(str(c).split()))) for c in completions]


def hf_greedy(
    prompts: list[list[int]],
    eos: int,
    state: dict[str, Any] | None = None,
    max_tokens: int = MAX_TOKENS,
) -> list[list[int]]:
    """HF ``generate``'s greedy completions (up to and including EOS) of the shipped tiny
    base, or of the base with ``state`` loaded; one prompt at a time (no padding)."""
    import torch

    from stages.model_io import load_model_and_tokenizer
    from stages.tiny.base import ASSET_DIR

    model, _ = load_model_and_tokenizer(ASSET_DIR)
    if state is not None:
        model.load_state_dict(state)
    model.eval()
    out = []
    with torch.no_grad():
        for ids in prompts:
            seq = model.generate(
                torch.tensor([ids]),
                max_new_tokens=max_tokens,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=eos,
            )[0, len(ids) :].tolist()
            out.append(seq[: seq.index(eos) + 1] if eos in seq else seq)
    return out


def main(workdir: str, out_path: str) -> None:
    from tiny_trainer import tiny_dataset, tiny_grpo_config
    from vllm import SamplingParams

    from kk_puzzles import generate
    from stages.model_io import load_model_and_tokenizer
    from stages.scaleout.vllm_cpu import release_engine
    from stages.tiny.base import ASSET_DIR
    from stages.trainer import KKGRPOTrainer

    model, tok = load_model_and_tokenizer(ASSET_DIR)
    dataset = tiny_dataset(tok, generate(2, 8, seed=0))
    args = tiny_grpo_config(
        Path(workdir) / "out",
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=16,
        beta=0.0,
        learning_rate=0.05,
        max_steps=1,
        seed=0,
        use_vllm=True,
        vllm_mode="colocate",
        vllm_max_model_length=1024,
    )
    trainer = KKGRPOTrainer(
        model=model,
        args=args,
        reward_funcs=[_reward_distinct_words],
        train_dataset=dataset,
        processing_class=tok,
    )
    gen = trainer.vllm_generation
    prompts = [tok(row["prompt"])["input_ids"] for row in dataset.select(range(3))]
    eos = int(tok.eos_token_id)
    params = SamplingParams(
        temperature=0.0, max_tokens=MAX_TOKENS, stop_token_ids=[eos], detokenize=False
    )

    def vllm_greedy() -> list[list[int]]:
        outs = gen.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outs]

    def weights() -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    result: dict[str, Any] = {"engine_dtype": str(gen.llm.llm_engine.model_config.dtype)}
    before = weights()
    result["vllm_before"] = vllm_greedy()
    result["hf_before"] = hf_greedy(prompts, eos, before)
    trainer.train()
    after = weights()
    result["weight_change"] = max(float((after[k] - before[k]).abs().max()) for k in before)
    result["vllm_stale"] = vllm_greedy()  # the step's own sync ran before it trained
    result["sync_is_ours"] = "use_reload_weights" in gen.sync_weights.__qualname__
    t0 = time.perf_counter()
    gen.sync_weights()
    result["sync_seconds"] = time.perf_counter() - t0
    result["vllm_after"] = vllm_greedy()
    result["hf_after"] = hf_greedy(prompts, eos, after)
    engine = weakref.ref(gen.llm)
    result["released"] = release_engine(trainer)
    result["engine_gone"] = engine() is None
    Path(out_path).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1], sys.argv[2])
