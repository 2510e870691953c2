"""The embedded tiny model: its config (``model.tiny`` in the YAML) and a fresh Qwen2.

A small Qwen2-style ``transformers`` model over the word-level tokenizer
(``stages.tiny.tokenizer``), pre-trained by ``stages.tiny.pretrain`` on generated puzzles
with the compact trace; ``stages.tiny.base`` finds or builds the one a run starts from.

Config keys (every key optional):

>>> sorted(DEFAULT_TINY_CFG)[:4]
['batch_size', 'cast', 'depth', 'exact_format_fraction']
>>> resolve_cfg({"layers": 2})["layers"], resolve_cfg({})["hidden_size"]
(2, 192)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from curriculum.data import TINY_DEFAULT_CAST
from kk_puzzles.generator import CASTS

# Bump when a change to the tokenizer, trace, document layouts or training loop would
# make a cached model differ from a freshly built one.
CODE_VERSION = "tiny-v2"  # v2: fixed cast, reserved slice excluded, steps only


# Progress callback: (steps done, total steps or 0 when unknown, short message).
Progress = Callable[[int, int, str], None]

DEFAULT_TINY_CFG: dict[str, Any] = {
    # architecture (2.4M parameters at these sizes, the SPEC prototype's shape)
    "hidden_size": 192,
    "layers": 4,
    "heads": 6,
    "kv_heads": 6,
    "intermediate_size": 768,
    "max_positions": 2048,
    # pre-training, by steps (never by minutes: the model must not depend on machine load)
    "steps": 1000,
    "batch_size": 32,  # the SPEC prototype's batch
    "lr": 3e-3,
    "min_lr_ratio": 0.1,
    "warmup_steps": 20,
    "weight_decay": 0.01,
    "seed": 0,
    "people": {2: 0.3, 3: 0.7},  # only 166 two-person puzzles lie outside the slice
    "depth": 2,
    "width": 2,
    "role_words": "knight/knave",
    "cast": TINY_DEFAULT_CAST,  # "fixed": the pool's first N names in order; "random": any
    # share of documents in the exact <think></think><answer></answer> layout; the rest use
    # near-miss layouts, so the base model is weak on format and RL has something to teach
    "exact_format_fraction": 0.15,
    "prefill_fraction": 0.5,  # share of documents whose prompt ends with "<think>"
    "threads": None,  # torch threads (None = all cores)
}


class TinyConfigError(ValueError):
    """A bad ``model.tiny`` config: one line naming the key and the fix."""


def resolve_cfg(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with ``cfg``; unknown keys and bad values raise TinyConfigError."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULT_TINY_CFG))
    if unknown:
        raise TinyConfigError(
            f"unknown model.tiny key(s) {', '.join(unknown)}; known: {', '.join(sorted(DEFAULT_TINY_CFG))}"
        )
    out = {**DEFAULT_TINY_CFG, **cfg}
    people = {int(k): float(v) for k, v in dict(out["people"]).items()}
    if not people or any(k < 2 or v < 0 for k, v in people.items()) or sum(people.values()) <= 0:
        raise TinyConfigError(
            f"model.tiny.people must map counts >= 2 to weights >= 0, got {people}"
        )
    out["people"] = dict(sorted(people.items()))
    for key in ("hidden_size", "layers", "heads", "kv_heads", "intermediate_size", "batch_size"):
        if not isinstance(out[key], int) or out[key] <= 0:
            raise TinyConfigError(f"model.tiny.{key} must be a positive integer, got {out[key]!r}")
    if out["hidden_size"] % out["heads"] or out["heads"] % out["kv_heads"]:
        raise TinyConfigError(
            f"model.tiny.hidden_size ({out['hidden_size']}) must be divisible by heads "
            f"({out['heads']}), and heads by kv_heads ({out['kv_heads']})"
        )
    if not isinstance(out["steps"], int) or isinstance(out["steps"], bool) or out["steps"] < 0:
        raise TinyConfigError(f"model.tiny.steps must be an integer >= 0, got {out['steps']!r}")
    if out["cast"] not in CASTS:
        raise TinyConfigError(
            f"model.tiny.cast must be one of {', '.join(CASTS)}, got {out['cast']!r}"
        )
    if not 0.0 <= float(out["exact_format_fraction"]) <= 1.0:
        raise TinyConfigError("model.tiny.exact_format_fraction must be in [0, 1]")
    return out


def cfg_key(cfg: Mapping[str, Any]) -> str:
    """Cache key: hash of the resolved config (minus run-time knobs) and CODE_VERSION."""
    resolved = resolve_cfg(cfg)
    resolved.pop("threads", None)
    blob = json.dumps({"cfg": resolved, "code": CODE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_model(cfg: Mapping[str, Any], tokenizer: Any):  # -> Qwen2ForCausalLM
    """A freshly initialised Qwen2 model sized by ``cfg`` for ``tokenizer``'s vocabulary."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    c = resolve_cfg(cfg)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=c["hidden_size"],
        intermediate_size=c["intermediate_size"],
        num_hidden_layers=c["layers"],
        num_attention_heads=c["heads"],
        num_key_value_heads=c["kv_heads"],
        max_position_embeddings=c["max_positions"],
        tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
    )
    torch.manual_seed(int(c["seed"]))
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.eos_token_id
    return model


def count_parameters(model: Any) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
