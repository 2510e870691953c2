"""Loading any causal-LM folder (tiny or Hugging Face, or a LoRA adapter folder over one)
and rendering prompts for it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stages.tiny.tokenizer import TOKENIZER_MARKER, is_word_level_folder, load_tokenizer


def load_tokenizer_for(path: Path | str):
    """The tokenizer of a model folder: word-level ones by their own class, others by Auto."""
    if is_word_level_folder(path):
        return load_tokenizer(path)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


ADAPTER_CONFIG = "adapter_config.json"  # what peft saves beside the adapter weights


def is_adapter_folder(path: Path | str) -> bool:
    """A LoRA checkpoint (``model.peft`` runs): adapter weights, no full model config."""
    p = Path(path)
    return (p / ADAPTER_CONFIG).is_file() and not (p / "config.json").is_file()


def adapter_base(path: Path | str) -> str:
    """The base model an adapter folder was trained over (its ``base_model_name_or_path``)."""
    try:
        base = json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8"))[
            "base_model_name_or_path"
        ]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(
            f"{Path(path) / ADAPTER_CONFIG} names no base_model_name_or_path"
        ) from None
    return str(base)


def load_model_and_tokenizer(
    path: Path | str, *, dtype: Any = None, init_kwargs: Mapping[str, Any] | None = None
) -> tuple[Any, Any]:
    """Load any causal-LM folder (tiny or HF) with the right tokenizer class, in eval mode.

    ``init_kwargs``: further ``from_pretrained`` arguments (``model.init_kwargs``, e.g.
    ``attn_implementation``); a ``dtype`` among them wins over ``dtype``. A LoRA adapter
    folder is loaded over its base model and merged into it (``load_merged_adapter``).
    """
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if is_adapter_folder(path):
        return load_merged_adapter(path, dtype=dtype, init_kwargs=init_kwargs)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"not a model folder (no config.json): {path}")
    tokenizer = load_tokenizer_for(path)
    if dtype is None and is_tiny_tokenizer(tokenizer):
        import torch

        dtype = torch.float32  # the shipped weights are bf16; compute in fp32 on CPU
    kwargs = dict(init_kwargs or {})
    if dtype is not None:
        kwargs.setdefault("dtype", dtype)
    model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    model.eval()
    return model, tokenizer


def load_hub_model(
    name: str, *, dtype: Any = None, init_kwargs: Mapping[str, Any] | None = None
) -> tuple[Any, Any]:
    """A causal LM and its tokenizer by hub id (the network or the local HF cache); a
    ``dtype`` in ``init_kwargs`` wins over ``dtype``."""
    from transformers import AutoModelForCausalLM

    kwargs = dict(init_kwargs or {})
    if dtype is not None:
        kwargs.setdefault("dtype", dtype)
    model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    return model, load_tokenizer_for(name)


def load_merged_adapter(
    path: Path, *, dtype: Any = None, init_kwargs: Mapping[str, Any] | None = None
) -> tuple[Any, Any]:
    """The base model of adapter folder ``path`` with the adapter merged in (a plain model:
    what evaluation and generation use), and the tokenizer the checkpoint saved."""
    from stages.scaleout.launch import import_peft

    peft = import_peft(ValueError, f"{path} is a LoRA adapter checkpoint")
    base = adapter_base(path)
    if Path(base).is_dir():
        model, tok = load_model_and_tokenizer(base, dtype=dtype, init_kwargs=init_kwargs)
    elif base.startswith((".", "/", "~")):
        raise FileNotFoundError(f"the base model of adapter {path} is gone: {base}")
    else:  # a hub id: the network or the local HF cache
        model, tok = load_hub_model(base, dtype=dtype, init_kwargs=init_kwargs)
    if (path / "tokenizer_config.json").is_file():
        tok = load_tokenizer_for(path)  # the trainer saves its tokenizer with the adapter
    model = peft.PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    model.eval()
    return model, tok


def is_tiny_tokenizer(tokenizer: Any) -> bool:
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


def prompt_style_of(tokenizer: Any) -> str:
    """The prompt layout ``prompt_for`` gives this tokenizer's model: "chat" when it has a chat
    template, else "base" (plain text; the tiny model's own short variant included)."""
    if is_tiny_tokenizer(tokenizer) or not getattr(tokenizer, "chat_template", None):
        return "base"
    return "chat"


def check_prompt_style(style: str, tokenizer: Any, model_name: str) -> None:
    """Raise ValueError (one line) when ``prompt.style`` names another layout than the one
    ``prompt_for`` gives this model: the layout follows the tokenizer, in training and in
    every evaluation, so the config states it and the run stops if the model disagrees."""
    actual = prompt_style_of(tokenizer)
    if style != actual:
        has = "has a chat template" if actual == "chat" else "has no chat template"
        raise ValueError(
            f"prompt.style is {style!r} but the tokenizer of {model_name} {has}, so its "
            f"prompts are {actual!r} ones; set prompt.style: {actual}"
        )


def prompt_for(record: Mapping[str, Any], tokenizer: Any, prefill_think: bool) -> str:
    """The prompt text for ``record`` as ``tokenizer``'s model sees it in RL and evaluation.

    The tiny model gets ``tiny_prompt``; a model whose tokenizer has a chat template gets
    that template over ``kk_puzzles.prompts.chat_messages`` (plus ``<think>`` when
    ``prefill_think``); any other gets ``kk_puzzles.prompts.base_prompt``.
    """
    from kk_puzzles import prompts

    if is_tiny_tokenizer(tokenizer):
        return tiny_prompt(record, prefill_think)
    if prompt_style_of(tokenizer) == "base":
        return prompts.base_prompt(record, prefill_think=prefill_think)
    text = tokenizer.apply_chat_template(
        prompts.chat_messages(record), tokenize=False, add_generation_prompt=True
    )
    return text + "<think>" if prefill_think else text
