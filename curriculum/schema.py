"""The run configuration's schema: one dataclass per YAML section, and ``ConfigError``.

Only the shape and the defaults live here (no loading, no checks): the loader
(``curriculum.config``) calls the checks (``curriculum.validate``), and the checks raise
``ConfigError`` on these dataclasses without importing the loader. ``curriculum.config``
re-exports every name here; ``from curriculum.config import RunConfig`` stays the usual import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ConfigError",
    "DashboardConfig",
    "DynamicSamplingConfig",
    "EvalConfig",
    "ModelConfig",
    "PromotionConfig",
    "PromptConfig",
    "RunConfig",
    "RunSection",
    "StageConfig",
    "TemperatureConfig",
    "TrainConfig",
]


class ConfigError(ValueError):
    """A bad configuration: the message is one line naming the key, the numbers and the fix."""


@dataclass
class RunSection:
    name: str = "kk-default"
    output_dir: str | None = None  # null = runs/<name>
    seed: int = 0
    report_to: str = "none"  # "none" | "wandb" | "tensorboard" (comma-separated for several)
    checkpoint_every: int = 20  # optimizer steps between step-<N> checkpoints (0 = stage ends only)
    keep_checkpoints: int = 2  # step-<N> checkpoints kept (stage-<name> ones are always kept)
    samples_per_step: int = 1  # completions written to completions.jsonl per step


@dataclass
class ModelConfig:
    name_or_path: str = "tiny"  # "tiny" = build/reuse the embedded model; else HF id or folder
    dtype: str = "float32"  # float32 | bfloat16 | float16 | auto
    tiny: dict[str, Any] = field(default_factory=dict)  # passed as-is to ensure_base_model
    cache_dir: str | None = None  # where the tiny base model is cached (null = driver default)
    init_kwargs: dict[str, Any] = field(default_factory=dict)  # from_pretrained kwargs
    peft: dict[str, Any] | None = None  # LoraConfig kwargs; null = full fine-tuning


@dataclass
class PromptConfig:
    style: str = "base"  # "base" (plain text, "Assistant: <think>") | "chat" (chat template)
    prefill_think: bool = True  # the prompt already ends with "<think>"


@dataclass
class TrainConfig:
    """GRPOConfig-shaped fields shared by every stage (a stage may override a few)."""

    learning_rate: float = 1e-4
    lr_schedule: str = "cosine"  # constant | linear | cosine (after warm-up, down to lr_floor)
    lr_floor: float = 0.0  # LR at the last step of the decay
    lr_decay_from: str | None = None  # stage where the decay starts (null = right after warm-up)
    warmup_steps: int = 0
    beta: float = 0.0
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    epsilon: float = 0.2
    epsilon_high: float | None = None
    num_iterations: int = 1
    steps_per_generation: int | None = None
    importance_sampling_level: str = "token"
    top_entropy_quantile: float = 1.0
    multi_objective_aggregation: str = "sum_then_normalize"
    max_prompt_length: int | None = None
    max_completion_length: int = 256
    mask_truncated_completions: bool = False
    repetition_penalty: float = 1.0
    disable_dropout: bool = False
    shuffle_dataset: bool = True
    gradient_accumulation_steps: int = 1
    per_device_train_batch_size: int | None = None  # null = whole generation batch per step
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch"
    gradient_checkpointing: bool = False
    bf16: bool = False
    logging_steps: int = 1
    use_vllm: bool = False
    vllm_mode: str = "colocate"  # colocate | server
    vllm_gpu_memory_utilization: float = 0.3
    vllm_tensor_parallel_size: int = 1
    vllm_max_model_length: int | None = None
    vllm_importance_sampling_correction: bool = True  # TRL: reweight for vLLM's sampling
    vllm_importance_sampling_mode: str = "sequence_mask"
    extra: dict[str, Any] = field(default_factory=dict)  # further GRPOConfig keys, verbatim


@dataclass
class EvalConfig:
    enabled: bool = True
    people: list[int] = field(
        default_factory=lambda: [3]
    )  # 2 people: 18 puzzles in the reserved slice
    n: int = 200  # held-out puzzles per person count
    seed: int = 1234
    depth: int = 2
    width: int = 2
    max_new_tokens: int = 400
    batch_size: int = 64
    samples: int = 1  # completions per puzzle (pass@k needs > 1)
    temperature: float = 0.0  # 0 = greedy
    eval_base: bool = True  # evaluate the base model before stage 1
    after_each_stage: bool = True  # evaluate at every stage end (else only after the last)


@dataclass
class DashboardConfig:
    # The fields of stages.dashboard.alerts.AlertThresholds.
    alerts: dict[str, Any] = field(default_factory=dict)


@dataclass
class TemperatureConfig:
    start: float = 1.0
    end: float | None = None  # null = start (constant)
    schedule: str = "constant"  # constant | linear | cosine


@dataclass
class PromotionConfig:
    """Move to the next stage early; thresholds null = rule off."""

    format_error_below: float | None = None  # mean format_error_ratio over the window < this
    accuracy_at_least: float | None = None  # mean all_correct_ratio over the window >= this
    window: int = 5  # steps averaged
    min_steps: int = 0  # never promote before this stage step


@dataclass
class DynamicSamplingConfig:
    """DAPO-style dynamic sampling: groups whose rewards are all equal are dropped and the
    step's batch is refilled with groups of the stage's next prompts (off by default)."""

    enabled: bool = False
    max_rounds: int = 3  # generation rounds per step, the step's own included (1 = no refill)


@dataclass
class StageConfig:
    people: dict[int, float] = field(default_factory=dict)  # person count -> weight
    steps: int = 10
    num_generations: int = 8
    prompts_per_step: int = 4
    temperature: TemperatureConfig = field(default_factory=TemperatureConfig)
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    min_p: float | None = None
    max_completion_length: int | None = None  # null = train.max_completion_length
    beta: float | None = None  # null = train.beta
    learning_rate_scale: float = 1.0  # multiplies the run's LR curve inside this stage
    rewards: list[dict[str, Any]] | None = None  # null = the run's rewards
    promotion: PromotionConfig = field(default_factory=PromotionConfig)
    dynamic_sampling: DynamicSamplingConfig = field(default_factory=DynamicSamplingConfig)
    dataset_size: int | None = None  # null = steps * prompts_per_step (each prompt once)
    depth: int = 2  # puzzle generator: statement nesting depth
    width: int = 2  # puzzle generator: operands per and/or
    seed: int | None = None  # null = derived from run.seed and the stage name


@dataclass
class RunConfig:
    run: RunSection = field(default_factory=RunSection)
    model: ModelConfig = field(default_factory=ModelConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    rewards: list[dict[str, Any]] = field(default_factory=list)
    eval: EvalConfig = field(default_factory=EvalConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    stages: dict[str, StageConfig] = field(default_factory=dict)
