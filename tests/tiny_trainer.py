"""A bare TRL ``GRPOTrainer`` on a tiny random Qwen2 model, for tests and the driver benchmark.

Not part of a training run: ``kk-train`` uses ``stages.driver``. This builds the smallest
real setup (C's word-level tokenizer, a random Qwen2 saved to disk so TRL can load a
reference model from it, a few generated puzzles, the ``logic_rl_format`` reward) so that
tests can check what TRL actually does (temperature, loss signs) on real objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_model_and_tokenizer(
    folder: str | Path,
    *,
    hidden_size: int = 32,
    layers: int = 1,
    seed: int = 0,
    records: list[dict[str, Any]] | None = None,
) -> tuple[Any, Any, Path]:
    """A random tiny Qwen2 with the word-level tokenizer, saved to ``folder``.

    With ``records`` the vocabulary covers just their prompts and answers (fast); without,
    the tokenizer's full puzzle-language vocabulary (slow to derive).
    """
    from kk_puzzles.prompts import base_prompt
    from stages.tiny.model import build_model
    from stages.tiny.tokenizer import build_tokenizer, save_tokenizer

    folder = Path(folder)
    if records is None:
        tok = build_tokenizer()
    else:
        texts = [base_prompt(r) + " " + r["solution_text_format"] for r in records]
        tok = build_tokenizer(texts)
    cfg = {
        "hidden_size": hidden_size,
        "layers": layers,
        "heads": 2,
        "kv_heads": 2,
        "intermediate_size": 2 * hidden_size,
        "max_positions": 512,
        "seed": seed,
    }
    model = build_model(cfg, tok)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    save_tokenizer(tok, folder)
    model.config._name_or_path = str(folder)
    return model, tok, folder


def tiny_dataset(tokenizer: Any, records: list[dict[str, Any]]) -> Any:
    """Puzzles as a TRL dataset (prompt + JSON-string puzzle columns)."""
    from stages.stage_inputs import build_dataset

    dataset, _ = build_dataset(
        records, tokenizer, prefill_think=True, max_prompt_length=None, shuffle_seed=None
    )
    return dataset


def tiny_grpo_config(output_dir: str | Path, **fields: Any) -> Any:
    """A ``GRPOConfig`` for CPU tests: fp32, no checkpoints, no shuffling, constant LR,
    top-k/top-p off; ``fields`` set the rest (or override these)."""
    from trl import GRPOConfig

    settings: dict[str, Any] = {
        "top_k": 0,
        "top_p": 1.0,
        "lr_scheduler_type": "constant",
        "report_to": [],
        "bf16": False,
        "gradient_checkpointing": False,
        "logging_steps": 1,
        "save_strategy": "no",
        "disable_tqdm": True,
        "shuffle_dataset": False,
        "optim": "adamw_torch",
    }
    return GRPOConfig(output_dir=str(output_dir), **{**settings, **fields})


def make_tiny_trainer(
    workdir: str | Path,
    *,
    trainer_cls: Any = None,
    beta: float = 0.0,
    temperature: float = 1.0,
    num_generations: int = 4,
    prompts_per_step: int = 2,
    max_completion_length: int = 8,
    max_steps: int = 2,
    loss_type: str = "dapo",
    learning_rate: float = 1e-3,
    n_prompts: int = 8,
    hidden_size: int = 32,
    seed: int = 0,
    callbacks: list[Any] | None = None,
    extra_args: dict[str, Any] | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
    reward_funcs: list[Any] | None = None,
) -> Any:
    """A ready ``GRPOTrainer`` (or ``trainer_cls``) on the tiny random model; ``reward_funcs``
    replaces the default ``logic_rl_format`` reward."""
    from trl import GRPOTrainer

    from kk_puzzles import generate
    from rewards.registry import build_rewards

    workdir = Path(workdir)
    records = generate(2, n_prompts, seed=seed)
    model, tok, _ = tiny_model_and_tokenizer(
        workdir / "model", hidden_size=hidden_size, seed=seed, records=records
    )
    args = tiny_grpo_config(
        workdir / "out",
        per_device_train_batch_size=num_generations * prompts_per_step,
        num_generations=num_generations,
        max_completion_length=max_completion_length,
        beta=beta,
        temperature=temperature,
        loss_type=loss_type,
        learning_rate=learning_rate,
        max_steps=max_steps,
        seed=seed,
        **(extra_args or {}),
    )
    rewards = reward_funcs or build_rewards([{"name": "logic_rl_format", "prefilled_think": True}])
    cls = trainer_cls or GRPOTrainer
    return cls(
        model=model,
        args=args,
        reward_funcs=rewards,
        train_dataset=tiny_dataset(tok, records),
        processing_class=tok,
        callbacks=callbacks,
        **(trainer_kwargs or {}),
    )
