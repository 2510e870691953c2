"""The embedded tiny base model: build, pre-train, cache, load, and render prompts for it.

``ensure_base_model(cfg, cache_dir)`` returns a folder holding a small Qwen2-style
``transformers`` model and its word-level tokenizer (``stages.tokenizer``), pre-trained on
generated puzzles with the compact trace (``kk_puzzles.compact_trace``). In order:

1. the model shipped in ``stages/assets/tiny_base/`` when its manifest's config equals
   the requested one (so the default run needs no long pre-training);
2. a cached folder ``<cache_dir>/tiny-<key>`` where the key hashes the config and
   ``CODE_VERSION``;
3. otherwise it pre-trains one (``stages.pretrain``), writing to a temporary folder that
   is renamed into place only when complete.

``load_model_and_tokenizer(path)`` loads that folder (or any Hugging Face model folder)
with the right tokenizer class; ``prompt_for(record, tokenizer, prefill_think)`` renders a
puzzle as the model sees it in RL.

Config keys (``model.tiny`` in the YAML; every key optional):

>>> sorted(DEFAULT_TINY_CFG)[:4]
['batch_size', 'depth', 'exact_format_fraction', 'heads']
>>> resolve_cfg({"layers": 2})["layers"], resolve_cfg({})["hidden_size"]
(2, 192)
>>> resolve_cfg({})["minutes"], resolve_cfg({"steps": 5})["minutes"]  # steps given: a step budget
(52, None)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# Bump when a change to the tokenizer, trace, document layouts or training loop would
# make a cached model differ from a freshly built one.
CODE_VERSION = "tiny-v1"

ASSET_DIR = Path(__file__).resolve().parent / "assets" / "tiny_base"
MANIFEST_FILE = "manifest.json"
DONE_FILE = "kk_tiny_done.json"

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
    # pre-training
    "steps": 300,
    # wall-clock budget; when set it replaces `steps` (the LR cosine follows the clock)
    "minutes": 52,
    "batch_size": 16,
    "lr": 3e-3,
    "min_lr_ratio": 0.1,
    "warmup_steps": 8,
    "weight_decay": 0.01,
    "seed": 0,
    "people": {2: 0.4, 3: 0.6},
    "depth": 2,
    "width": 2,
    "role_words": "knight/knave",
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
    if "steps" in cfg and "minutes" not in cfg:
        out["minutes"] = None  # asking for a number of steps means a step budget
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
    if out["minutes"] is None and (not isinstance(out["steps"], int) or out["steps"] < 0):
        raise TinyConfigError(f"model.tiny.steps must be an integer >= 0, got {out['steps']!r}")
    if out["minutes"] is not None and not float(out["minutes"]) > 0:
        raise TinyConfigError(f"model.tiny.minutes must be > 0 or null, got {out['minutes']!r}")
    if not 0.0 <= float(out["exact_format_fraction"]) <= 1.0:
        raise TinyConfigError("model.tiny.exact_format_fraction must be in [0, 1]")
    return out


def cfg_key(cfg: Mapping[str, Any]) -> str:
    """Cache key: hash of the resolved config (minus run-time knobs) and CODE_VERSION."""
    resolved = resolve_cfg(cfg)
    resolved.pop("threads", None)
    blob = json.dumps({"cfg": resolved, "code": CODE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _comparable(cfg: Mapping[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(resolve_cfg(cfg), sort_keys=True, default=str))
    out.pop("threads", None)
    return out


def shipped_model(cfg: Mapping[str, Any]) -> Path | None:
    """The shipped asset folder when its manifest matches ``cfg`` and CODE_VERSION."""
    manifest_path = ASSET_DIR / MANIFEST_FILE
    if not manifest_path.is_file() or not (ASSET_DIR / "model.safetensors").is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("code_version") != CODE_VERSION:
        return None
    if _comparable(manifest.get("config", {})) != _comparable(cfg):
        return None
    return ASSET_DIR


def ensure_base_model(
    cfg: Mapping[str, Any] | None, cache_dir: Path | str, progress: Progress | None = None
) -> Path:
    """Folder of a pre-trained tiny model for ``cfg``: shipped, cached, or built now.

    Building writes into a temporary folder under ``cache_dir`` and renames it into place,
    so an interrupted build leaves nothing that looks finished.
    """
    resolved = resolve_cfg(cfg)
    shipped = shipped_model(resolved)
    if shipped is not None:
        return shipped
    cache_dir = Path(cache_dir)
    final = cache_dir / f"tiny-{cfg_key(resolved)}"
    if (final / DONE_FILE).is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache_dir))
    try:
        from stages.pretrain import pretrain

        summary = pretrain(resolved, tmp, progress=progress)
        (tmp / DONE_FILE).write_text(
            json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n"
        )
        if final.exists():  # a half-written leftover (no DONE file) or a concurrent build
            if (final / DONE_FILE).is_file():
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


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


def load_tokenizer_for(path: Path | str):
    """The tokenizer of a model folder: word-level ones by their own class, others by Auto."""
    from stages.tokenizer import is_word_level_folder, load_tokenizer

    if is_word_level_folder(path):
        return load_tokenizer(path)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model_and_tokenizer(path: Path | str, *, dtype: Any = None) -> tuple[Any, Any]:
    """Load any causal-LM folder (tiny or HF) with the right tokenizer class, in eval mode."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"not a model folder (no config.json): {path}")
    tokenizer = load_tokenizer_for(path)
    if dtype is None and is_tiny_tokenizer(tokenizer):
        import torch

        dtype = torch.float32  # the shipped weights are bf16; compute in fp32 on CPU
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    model.eval()
    return model, tokenizer


def is_tiny_tokenizer(tokenizer: Any) -> bool:
    from stages.tokenizer import TOKENIZER_MARKER

    return bool(getattr(tokenizer, "init_kwargs", {}).get(TOKENIZER_MARKER))


def tiny_prompt(record: Mapping[str, Any], prefill_think: bool = True) -> str:
    """The tiny model's prompt: ``kk_puzzles.prompts.base_prompt`` without the system text.

    The system text is instructions for instruction-following models; a model trained from
    scratch learns the layout from its pre-training documents instead, and the 70-odd
    prompt tokens it would add cost a fifth of the CPU time of pre-training and rollouts.

    >>> tiny_prompt({"quiz": "Who is who?"})
    'User: Who is who?\\nAssistant: <think>'
    """
    quiz = record.get("quiz")
    if not isinstance(quiz, str) or not quiz:
        raise ValueError("record has no 'quiz' text")
    return f"User: {quiz}\nAssistant:" + (" <think>" if prefill_think else "")


def prompt_for(record: Mapping[str, Any], tokenizer: Any, prefill_think: bool) -> str:
    """The prompt text for ``record`` as ``tokenizer``'s model sees it in RL and evaluation.

    The tiny model gets ``tiny_prompt``; a model whose tokenizer has a chat template gets
    that template over ``kk_puzzles.prompts.chat_messages`` (plus ``<think>`` when
    ``prefill_think``); any other gets ``kk_puzzles.prompts.base_prompt``.
    """
    from kk_puzzles import prompts

    if is_tiny_tokenizer(tokenizer):
        return tiny_prompt(record, prefill_think)
    if not getattr(tokenizer, "chat_template", None):
        return prompts.base_prompt(record, prefill_think=prefill_think)
    text = tokenizer.apply_chat_template(
        prompts.chat_messages(record), tokenize=False, add_generation_prompt=True
    )
    return text + "<think>" if prefill_think else text


def count_parameters(model: Any) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
