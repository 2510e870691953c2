"""vLLM's CPU build under TRL 1.16's colocate mode: what TRL does not do on a CPU.

TRL builds the colocated engine and syncs weights into it itself; on a CPU two of its steps
need help, and ``stages.trainer.KKGRPOTrainer`` applies both when the device is a CPU
(TRL's own code runs unchanged on CUDA):

1. ``cpu_engine_arguments()``: TRL calls ``LLM(...)`` with no dtype and the default
   compilation; while the trainer is built, ``trl.generation.vllm_generation.LLM`` is
   swapped for one that adds ``cpu_engine_settings`` (the policy's dtype, eager, in-process).
2. ``use_reload_weights(trainer)``: TRL's ``sync_weights`` hands each tensor to the vLLM
   model's ``load_weights``, which fails on a CPU (``'Parameter' object has no attribute
   'weight_loader'``: the CPU backend repacks linear weights for oneDNN and replaces the
   parameters). The trainer's generator gets a ``sync_weights`` that streams TRL's own
   named parameters (vLLM's names, PEFT adapters merged: ``_iter_named_params``) through
   vLLM's ``reload_weights``, which runs the loader's post-processing (the repacking) again
   for every layer it loads. A tied output head loads nothing of its own (it shares the
   embedding), so its packed copy of the old embedding would stay: it is repacked here too.
   Measured on the shipped base: all 50 tensors in 0.08 s, greedy output afterwards equal to
   HF ``generate`` on the new weights (``tests/test_vllm_colocate.py``).

Every stage builds a trainer, and TRL would build an engine with each: the first one is kept
and serves every later stage of the run (``cpu_engine_arguments``); ``release_engine``
frees it.
Every TRL and vLLM internal used here is checked when it is used; a mismatch raises
``TrlInternalsError`` naming the versions.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stages.scaleout.vllm_support import (
    cpu_engine_settings,
    cpu_head_sizes,
    head_size_problem,
    vllm_generator,
)
from stages.temperature import TrlInternalsError

__all__ = [
    "cpu_engine_arguments",
    "release_engine",
    "use_reload_weights",
    "wants_cpu_engine",
]


def wants_cpu_engine(args: Any) -> bool:
    """Whether a trainer with these GRPOConfig ``args`` starts a colocated engine on a CPU."""
    import torch

    return (
        bool(getattr(args, "use_vllm", False))
        and getattr(args, "vllm_mode", None) == "colocate"
        and not torch.cuda.is_available()
    )


def _internals_error(what: str) -> TrlInternalsError:
    import trl
    import vllm

    return TrlInternalsError(
        f"trl {trl.__version__} / vllm {vllm.__version__}: {what}; kk-rl's CPU colocate mode "
        "is written for trl 1.16.0 and vllm 0.31.0 (set train.use_vllm=false to sample with "
        "transformers)"
    )


# The process's one CPU engine: {"key": settings it was built with, "llm": vllm.LLM}.
_ENGINE: dict[str, Any] = {}
# TRL sets these for vLLM's external launcher; left set, the next stage's accelerate would
# take the process for a one-rank distributed run (a DDP-wrapped policy).
_LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
_ARCHITECTURE_KEYS = (
    "architectures",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "tie_word_embeddings",
)


def _engine_key(kwargs: dict[str, Any], config: dict[str, Any]) -> str:
    """What must match for a stage to reuse the engine: every engine argument but the model
    folder (the weights are synced from the policy before the first generation), the seed
    and max_num_seqs (a later stage's larger batch is served in more scheduler rounds),
    plus the model's architecture (``config``: its config.json)."""
    shape = {k: config.get(k) for k in _ARCHITECTURE_KEYS}
    rest = {k: v for k, v in kwargs.items() if k not in ("model", "seed", "max_num_seqs")}
    return json.dumps([shape, rest], sort_keys=True, default=str)


@contextlib.contextmanager
def cpu_engine_arguments(dtype: Any) -> Iterator[None]:
    """While active, TRL's colocated ``LLM(...)`` gets ``cpu_engine_settings(dtype)`` too,
    and returns the process's engine when one with the same settings exists: every stage
    builds a trainer, and one engine serves them all (a second in-process engine would
    tear down the torch.distributed group the first set up when the first is freed)."""
    import vllm
    from trl.generation import vllm_generation

    if getattr(vllm_generation, "LLM", None) is not vllm.LLM:
        raise _internals_error("trl.generation.vllm_generation does not build vllm.LLM")
    extra = cpu_engine_settings(dtype)
    real = vllm.LLM
    saved_env = {k: os.environ.get(k) for k in _LAUNCHER_ENV}

    def llm_on_cpu(**kwargs: Any) -> Any:
        kwargs.update(extra)
        model_config = json.loads(
            (Path(str(kwargs.get("model", ""))) / "config.json").read_text("utf-8")
        )
        key = _engine_key(kwargs, model_config)
        if _ENGINE.get("key") != key:
            problem = head_size_problem(model_config, cpu_head_sizes())
            if problem is not None:
                from curriculum import ConfigError

                raise ConfigError(problem)
            _ENGINE.clear()
            gc.collect()
            _ENGINE.update(key=key, llm=real(**kwargs))
        return _ENGINE["llm"]

    vllm_generation.LLM = llm_on_cpu
    try:
        yield
    finally:
        vllm_generation.LLM = real
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _in_process_worker(llm: Any) -> Any:
    """The engine's worker, when it runs in this process (else a TrlInternalsError)."""
    from vllm.v1.executor.uniproc_executor import UniProcExecutor

    executor = getattr(getattr(llm, "llm_engine", None), "model_executor", None)
    if not isinstance(executor, UniProcExecutor):
        raise _internals_error(
            f"the colocated engine's executor is {type(executor).__name__}, not in-process "
            "(UniProcExecutor): the weights iterator cannot reach it"
        )
    worker = getattr(executor.driver_worker, "worker", None)
    if not callable(getattr(worker, "reload_weights", None)):
        raise _internals_error(f"the engine's worker {type(worker).__name__} has no reload_weights")
    return worker


def _tied_output_head(model: Any) -> Any:
    """The vLLM model's output head when it shares the input embedding's weight, else None."""
    head = getattr(model, "lm_head", None)
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    if head is None or embed is None or getattr(head, "weight", None) is not embed.weight:
        return None
    if not callable(getattr(head.quant_method, "process_weights_after_loading", None)):
        raise _internals_error("the tied lm_head's quant_method cannot re-process its weight")
    return head


def use_reload_weights(trainer: Any) -> None:
    """Make ``trainer``'s colocated CPU engine take new weights through ``reload_weights``."""
    from trl import GRPOTrainer

    gen = vllm_generator(trainer)
    if gen is None or getattr(gen, "mode", None) != "colocate":
        return
    callers = (GRPOTrainer._generate_single_turn, GRPOTrainer._generate)
    if not all("sync_weights" in inspect.unwrap(f).__code__.co_names for f in callers):
        raise _internals_error("GRPOTrainer no longer calls vllm_generation.sync_weights")
    if not callable(getattr(gen, "_iter_named_params", None)):
        raise _internals_error("VLLMGeneration has no _iter_named_params")
    llm = gen.llm
    tied_head = _tied_output_head(_in_process_worker(llm).model_runner.get_model())

    def sync_weights() -> None:
        # TRL's names and PEFT merge; the generator is consumed in this process by the worker.
        llm.collective_rpc("reload_weights", kwargs={"weights_iterator": gen._iter_named_params()})
        if tied_head is not None:
            tied_head.quant_method.process_weights_after_loading(tied_head)
        llm.reset_prefix_cache()  # cached prefixes hold keys and values of the old weights
        gen._llm_weights_sleeping = False

    gen.sync_weights = sync_weights


def release_engine(trainer: Any) -> bool:
    """Drop ``trainer``'s colocated engine (and the process's cached one) and free its
    memory; True when there was one. Call it when no stage will follow."""
    gen = vllm_generator(trainer)
    llm = getattr(gen, "llm", None) if gen is not None else None
    if llm is None:
        return False
    gen.llm = None
    gen.__dict__.pop("sync_weights", None)  # its closure holds the engine
    if _ENGINE.get("llm") is llm:
        _ENGINE.clear()
    del llm
    gc.collect()
    return True
