"""Build TRL's ``GRPOConfig`` for one curriculum stage from the run configuration.

``build_grpo_config(config, stage_name, output_dir=...)`` turns the YAML's ``train`` section
(shared by all stages) and one ``stages.<name>`` entry into a ``KKGRPOConfig``: TRL's
``GRPOConfig`` plus the curriculum fields TRL has no place for (``kk_*``: the stage, its
global step range, the temperature schedule, the run's LR curve), saved with every
checkpoint in ``training_args.bin``. Every key of ``train`` is consumed: passed to the TRL
field of the same name, or recorded in a ``kk_`` field (``lr_schedule``, ``lr_floor``,
``lr_decay_from``, ``warmup_steps``: the LR curve itself comes from
``curriculum.schedules.run_learning_rate``; ``max_prompt_length``: TRL 1.16 has none, so the
driver filters prompts by ``kk_max_prompt_length``). The callback anneals the temperature by
``KKGRPOConfig.stage_temperature`` (the ``kk_temperature_*`` fields) and checkpoints every
``kk_checkpoint_every`` steps; the driver hands ``max_generation_rounds`` (the
``kk_dynamic_sampling*`` fields) to the trainer.

Three deliberate differences from TRL defaults, so a stage is one step per global step:

* ``max_steps`` is the stage's **last global step** (a stage resumes from the previous
  stage's checkpoint, whose trainer state holds the global step); ``kk_first_step`` is the
  first.
* ``lr_scheduler_type`` is ``constant`` and ``warmup_steps`` 0: ``stages.trainer.KKGRPOTrainer``
  replaces the scheduler with a ``LambdaLR`` over the global step that follows
  ``curriculum.schedules`` (warm-up, decay to the floor, per-stage scale) across stages.
* ``save_strategy`` is ``no`` and ``ignore_data_skip`` true: the driver's callback asks for
  checkpoints (every ``run.checkpoint_every`` steps and at stage ends) and skips used prompts
  itself on resume.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from curriculum.config import ConfigError, StageConfig, TemperatureConfig
from curriculum.schedules import stage_bounds, temperature_at
from curriculum.validate import batch_plan

__all__ = ["KKGRPOConfig", "build_grpo_config"]


@dataclass
class KKGRPOConfig(GRPOConfig):
    """TRL's GRPOConfig plus the curriculum fields of one stage (all prefixed ``kk_``)."""

    kk_stage_name: str = field(
        default="", metadata={"help": "Curriculum stage of this trainer run."}
    )
    kk_stage_index: int = field(default=0, metadata={"help": "0-based position of the stage."})
    kk_first_step: int = field(default=1, metadata={"help": "First global step of the stage."})
    kk_stage_steps: int = field(default=1, metadata={"help": "Planned steps of the stage."})
    kk_total_steps: int = field(default=1, metadata={"help": "Planned steps of the run."})
    kk_prompts_per_step: int = field(default=1, metadata={"help": "Distinct prompts per step."})
    kk_temperature_start: float = field(default=1.0, metadata={"help": "Temperature, first step."})
    kk_temperature_end: float = field(default=1.0, metadata={"help": "Temperature, last step."})
    kk_temperature_schedule: str = field(default="constant", metadata={"help": "Schedule."})
    kk_lr_schedule: str = field(default="constant", metadata={"help": "constant|linear|cosine."})
    kk_lr_floor: float = field(default=0.0, metadata={"help": "LR at the last step of the run."})
    kk_lr_decay_from: str | None = field(default=None, metadata={"help": "Stage starting decay."})
    kk_warmup_steps: int = field(default=0, metadata={"help": "LR warm-up (global steps)."})
    kk_learning_rate_scale: float = field(default=1.0, metadata={"help": "Stage LR multiplier."})
    kk_max_prompt_length: int | None = field(default=None, metadata={"help": "Prompt token cap."})
    kk_checkpoint_every: int = field(default=0, metadata={"help": "Steps between checkpoints."})
    kk_keep_checkpoints: int = field(default=2, metadata={"help": "step-<N> checkpoints kept."})
    kk_samples_per_step: int = field(default=1, metadata={"help": "Completions logged per step."})
    kk_dynamic_sampling: bool = field(default=False, metadata={"help": "Refill zero-std groups."})
    kk_dynamic_sampling_max_rounds: int = field(
        default=1, metadata={"help": "Generation rounds per step with dynamic sampling."}
    )

    @property
    def max_generation_rounds(self) -> int | None:
        """``KKGRPOTrainer``'s ``max_generation_rounds``: None when dynamic sampling is off."""
        return self.kk_dynamic_sampling_max_rounds if self.kk_dynamic_sampling else None

    def stage_temperature(self, stage_step: int) -> float:
        """The sampling temperature scheduled for ``stage_step`` (1-based) of this stage."""
        schedule = TemperatureConfig(
            self.kk_temperature_start, self.kk_temperature_end, self.kk_temperature_schedule
        )
        steps = self.kk_stage_steps
        return float(temperature_at(StageConfig(temperature=schedule), stage_step, steps))


def _has_accelerator() -> bool:
    import torch

    return bool(
        torch.cuda.is_available()
        or (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    )


def _report_to(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    items = [str(v).strip() for v in items if str(v).strip()]
    return [] if items in ([], ["none"]) else items


def build_grpo_config(
    config: Any,
    stage_name: str,
    *,
    output_dir: str | os.PathLike[str],
    world_size: int = 1,
    first_step: int | None = None,
) -> KKGRPOConfig:
    """The ``KKGRPOConfig`` of one stage.

    ``first_step`` is the stage's first global step (default: as planned; the driver passes the
    actual one when an earlier stage was promoted early). Raises ``curriculum.ConfigError``
    for an unknown stage, a batch that does not split evenly, or an unknown ``train.extra`` key.
    """
    if stage_name not in config.stages:
        raise ConfigError(
            f"unknown stage '{stage_name}' (stages: {', '.join(config.stages) or 'none'})"
        )
    train = config.train
    stage = config.stages[stage_name]
    names = list(config.stages)
    if first_step is None:
        first_step = {name: first for name, first, _ in stage_bounds(config)}[stage_name]
    steps = int(stage.steps)
    last_step = first_step + steps - 1

    ga = int(train.gradient_accumulation_steps)
    plan_batch = batch_plan(config, stage_name, world_size=world_size)
    per_device = plan_batch.per_device_train_batch_size
    steps_per_generation = plan_batch.steps_per_generation
    temp = stage.temperature
    t_end = temp.start if temp.end is None else temp.end
    beta = train.beta if stage.beta is None else stage.beta
    max_completion = (
        train.max_completion_length
        if stage.max_completion_length is None
        else stage.max_completion_length
    )
    reward_specs = stage.rewards if getattr(stage, "rewards", None) is not None else config.rewards
    weights = [float(spec.get("weight", 1.0)) for spec in reward_specs]

    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        run_name=f"{config.run.name}/{stage_name}",
        seed=int(config.run.seed),
        data_seed=int(config.run.seed),
        report_to=_report_to(config.run.report_to),
        # Step budget: a stage ends at its last global step (the trainer state carries on).
        max_steps=last_step,
        num_train_epochs=1,
        # Optimisation.
        learning_rate=float(train.learning_rate),
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=float(train.weight_decay),
        adam_beta1=float(train.adam_beta1),
        adam_beta2=float(train.adam_beta2),
        adam_epsilon=float(train.adam_epsilon),
        max_grad_norm=float(train.max_grad_norm),
        optim=str(train.optim),
        gradient_accumulation_steps=ga,
        per_device_train_batch_size=per_device,
        gradient_checkpointing=bool(train.gradient_checkpointing),
        bf16=bool(train.bf16),
        fp16=False,
        # GRPO.
        beta=float(beta),
        loss_type=str(train.loss_type),
        scale_rewards=train.scale_rewards,
        epsilon=float(train.epsilon),
        epsilon_high=None if train.epsilon_high is None else float(train.epsilon_high),
        num_iterations=int(train.num_iterations),
        steps_per_generation=int(steps_per_generation),  # train.steps_per_generation, resolved
        importance_sampling_level=str(train.importance_sampling_level),
        top_entropy_quantile=float(train.top_entropy_quantile),
        multi_objective_aggregation=str(train.multi_objective_aggregation),
        mask_truncated_completions=bool(train.mask_truncated_completions),
        repetition_penalty=float(train.repetition_penalty),
        disable_dropout=bool(train.disable_dropout),
        shuffle_dataset=bool(train.shuffle_dataset),
        reward_weights=weights,
        num_generations=int(stage.num_generations),
        max_completion_length=int(max_completion),
        # Sampling (the callback anneals the temperature through stages.temperature).
        temperature=float(temp.start),
        top_p=float(stage.top_p),
        top_k=int(stage.top_k or 0),
        min_p=None if stage.min_p is None else float(stage.min_p),
        # vLLM.
        use_vllm=bool(train.use_vllm),
        vllm_mode=str(train.vllm_mode),
        vllm_gpu_memory_utilization=float(train.vllm_gpu_memory_utilization),
        vllm_tensor_parallel_size=int(train.vllm_tensor_parallel_size),
        vllm_max_model_length=(
            None if train.vllm_max_model_length is None else int(train.vllm_max_model_length)
        ),
        vllm_importance_sampling_correction=bool(train.vllm_importance_sampling_correction),
        vllm_importance_sampling_mode=str(train.vllm_importance_sampling_mode),
        # Logging and saving: the driver's callback writes the run records every step.
        logging_steps=int(train.logging_steps),
        logging_first_step=True,
        save_strategy="no",
        save_only_model=False,
        ignore_data_skip=True,
        remove_unused_columns=False,
        log_completions=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        # Curriculum fields.
        kk_stage_name=stage_name,
        kk_stage_index=names.index(stage_name),
        kk_first_step=int(first_step),
        kk_stage_steps=steps,
        kk_total_steps=sum(int(s.steps) for s in config.stages.values()),
        kk_prompts_per_step=int(stage.prompts_per_step),
        kk_temperature_start=float(temp.start),
        kk_temperature_end=float(t_end),
        kk_temperature_schedule=str(temp.schedule),
        kk_lr_schedule=str(train.lr_schedule),
        kk_lr_floor=float(train.lr_floor),
        kk_lr_decay_from=train.lr_decay_from,
        kk_warmup_steps=int(train.warmup_steps),
        kk_learning_rate_scale=float(stage.learning_rate_scale),
        kk_max_prompt_length=(
            None if train.max_prompt_length is None else int(train.max_prompt_length)
        ),
        kk_checkpoint_every=int(config.run.checkpoint_every),
        kk_keep_checkpoints=int(config.run.keep_checkpoints),
        kk_samples_per_step=int(config.run.samples_per_step),
        kk_dynamic_sampling=bool(stage.dynamic_sampling.enabled),
        kk_dynamic_sampling_max_rounds=int(stage.dynamic_sampling.max_rounds),
    )
    if not _has_accelerator():
        kwargs["use_cpu"] = True  # lets bf16 run on CPU instead of failing the GPU check
    known = {f.name for f in dataclasses.fields(KKGRPOConfig)}
    for key, value in dict(train.extra or {}).items():
        if key not in known:
            raise ConfigError(
                f"train.extra.{key} is not a GRPOConfig field (trl 1.16); remove it or fix the name"
            )
        kwargs[key] = value
    try:
        return KKGRPOConfig(**kwargs)
    except ValueError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"stage '{stage_name}': {first}") from None
