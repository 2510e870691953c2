"""What a stage trains: the base model, the policy it starts from, its prompts, its rewards.

* ``resolve_base_model``: stage 0, the base model folder (``model.name_or_path: tiny`` builds
  or reuses the embedded tiny model in the cache) or a hub id;
* ``load_policy``: a model folder or hub id with ``model.dtype`` and ``model.init_kwargs``
  (for every stage's checkpoint too, so e.g. ``attn_implementation`` holds the whole run), and
  the check that ``prompt.style`` is the layout this model's prompts get;
* ``build_dataset``: the stage's puzzles (``curriculum.data``) as TRL prompts;
* ``build_reward_funcs``: the reward callables of the YAML ``rewards`` specs.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from curriculum.config import ConfigError
from rewards.registry import build_rewards, describe
from stages.model_io import (
    check_prompt_style,
    load_hub_model,
    load_model_and_tokenizer,
    prompt_for,
)

__all__ = [
    "build_dataset",
    "build_reward_funcs",
    "default_cache_dir",
    "load_policy",
    "resolve_base_model",
]


def default_cache_dir() -> Path:
    """Where the tiny base model is cached: $KK_CACHE_DIR, else .cache/ in the checkout."""
    env = os.environ.get("KK_CACHE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / ".cache"


def resolve_base_model(
    config: Any, progress: Callable[[int, int, str], None] | None = None
) -> Path | str:
    """Stage 0: the base model folder (the tiny model is built or reused from the cache)."""
    name = str(config.model.name_or_path)
    if name == "tiny":
        from stages.tiny.base import ensure_base_model
        from stages.tiny.model import TinyConfigError

        cache = Path(config.model.cache_dir) if config.model.cache_dir else default_cache_dir()
        try:
            return ensure_base_model(dict(config.model.tiny or {}), cache, progress=progress)
        except TinyConfigError as err:
            raise ConfigError(str(err).splitlines()[0]) from None
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.name_or_path {name} is not a model folder (no config.json)")
        return path
    if name.startswith((".", "/", "~")) or (os.sep in name and not _looks_like_hub_id(name)):
        raise ConfigError(f"model path not found: {name} (model.name_or_path)")
    return name  # a hub id; needs network or the local HF cache


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/"))


def _torch_dtype(name: str) -> Any:
    return {
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
        "auto": "auto",
    }.get(str(name), torch.float32)


def load_policy(path: Path | str, config: Any) -> tuple[Any, Any]:
    """Model (in train mode) and tokenizer from a folder or a hub id, loaded with
    ``model.dtype`` and ``model.init_kwargs``; ConfigError when ``prompt.style`` is not the
    layout this tokenizer's prompts get."""
    dtype = _torch_dtype(config.model.dtype)
    init_kwargs = dict(config.model.init_kwargs or {})
    if Path(str(path)).is_dir():
        model, tok = load_model_and_tokenizer(path, dtype=dtype, init_kwargs=init_kwargs)
    else:  # hub id
        model, tok = load_hub_model(str(path), dtype=dtype, init_kwargs=init_kwargs)
    try:
        check_prompt_style(str(config.prompt.style), tok, str(config.model.name_or_path))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    model.train()
    return model, tok


def _json_col(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def build_dataset(
    records: Sequence[dict[str, Any]],
    tokenizer: Any,
    *,
    prefill_think: bool,
    max_prompt_length: int | None,
    shuffle_seed: int | None,
    skip: int = 0,
) -> tuple[Any, int]:
    """A ``datasets.Dataset`` for TRL (dict/list columns as JSON strings); returns (dataset,
    dropped) where dropped counts prompts longer than ``max_prompt_length`` tokens.

    ``shuffle_seed`` shuffles the records first (None keeps their order); ``skip`` rotates
    the rows so that a resumed stage starts with the first prompt it has not used yet.
    """
    from datasets import Dataset

    recs = list(records)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(recs)
    rows, dropped = [], 0
    for rec in recs:
        prompt = prompt_for(rec, tokenizer, prefill_think)
        if max_prompt_length is not None:
            if len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) > max_prompt_length:
                dropped += 1
                continue
        rows.append(
            {
                "prompt": prompt,
                "id": str(rec.get("id", "")),
                "people": int(rec.get("people", len(rec.get("names", [])))),
                "names": _json_col(rec.get("names", [])),
                "solution": _json_col(rec.get("solution", [])),
                "knight_knave": _json_col(rec.get("knight_knave", {})),
                "solution_text_format": str(rec.get("solution_text_format", "")),
                "statements": str(rec.get("statements", "")),  # the trace_prefix reward's key
            }
        )
    if not rows:
        raise ConfigError(
            f"no training prompt fits train.max_prompt_length={max_prompt_length}; raise it"
        )
    if skip:
        k = skip % len(rows)
        rows = rows[k:] + rows[:k]
    return Dataset.from_list(rows), dropped


def build_reward_funcs(
    specs: Sequence[dict[str, Any]], prefill_think: bool
) -> tuple[list[Any], dict[str, float]]:
    """Reward callables from YAML specs; ``prefilled_think`` follows ``prompt.prefill_think``
    unless a spec sets it (a prefilled ``<think>`` is not in the completion)."""
    fixed = []
    for spec in specs:
        spec = dict(spec)
        name = spec.get("name")
        try:
            params = describe(name) if isinstance(name, str) else {}
        except ValueError:
            params = {}
        if "prefilled_think" in params and "prefilled_think" not in spec:
            spec["prefilled_think"] = bool(prefill_think)
        fixed.append(spec)
    try:
        funcs = build_rewards(fixed)
    except ValueError as err:
        raise ConfigError(str(err).splitlines()[0]) from None
    weights = {f.__name__: float(getattr(f, "weight", 1.0)) for f in funcs}
    return funcs, weights
