"""build_grpo_config: every `train` key reaches the GRPOConfig; the LR curve over stages."""

from __future__ import annotations

import dataclasses
import math

import pytest

pytest.importorskip("trl")

from curriculum.config import ConfigError, TrainConfig, apply_overrides, load_config
from curriculum.schedules import run_learning_rate, stage_bounds
from stages.grpo_config import KKGRPOConfig, build_grpo_config

# One valid, different value per train key (explore stage: it overrides nothing).
ALTERNATIVES = {
    "learning_rate": "3e-4",
    "lr_schedule": "linear",
    "lr_floor": "2e-5",
    "lr_decay_from": "anneal",
    "warmup_steps": "9",
    "beta": "0.05",
    "loss_type": "grpo",
    "scale_rewards": "batch",
    "epsilon": "0.3",
    "epsilon_high": "0.28",
    "num_iterations": "2",
    "steps_per_generation": "2",
    "importance_sampling_level": "sequence",
    "top_entropy_quantile": "0.5",
    "multi_objective_aggregation": "normalize_then_sum",
    "max_prompt_length": "300",
    "max_completion_length": "111",
    "mask_truncated_completions": "true",
    "repetition_penalty": "1.1",
    "disable_dropout": "true",
    "shuffle_dataset": "false",
    "gradient_accumulation_steps": "2",
    "per_device_train_batch_size": "16",
    "weight_decay": "0.1",
    "adam_beta1": "0.8",
    "adam_beta2": "0.99",
    "adam_epsilon": "1e-6",
    "max_grad_norm": "0.5",
    "optim": "adamw_torch_fused",
    "gradient_checkpointing": "true",
    "bf16": "true",
    "logging_steps": "2",
    "use_vllm": "true",
    "vllm_mode": "server",
    "vllm_gpu_memory_utilization": "0.5",
    "vllm_tensor_parallel_size": "2",
    "vllm_max_model_length": "2048",
    "vllm_importance_sampling_correction": "false",
    "vllm_importance_sampling_mode": "token_truncate",
    "extra": "{max_tool_calling_iterations: 3}",
}


@pytest.fixture(scope="module")
def config():
    return load_config(None, check_paths=False)


def _build(config, overrides=(), stage="explore", **kw):
    cfg = apply_overrides(config, list(overrides))
    return build_grpo_config(cfg, stage, output_dir="/tmp/kk-unused", **kw)


def test_every_train_key_is_consumed(config):
    keys = [f.name for f in dataclasses.fields(TrainConfig)]
    assert sorted(keys) == sorted(ALTERNATIVES), "update ALTERNATIVES for new train keys"
    base = _build(config).to_dict()
    for key in keys:
        changed = _build(config, [f"train.{key}={ALTERNATIVES[key]}"]).to_dict()
        diff = {k for k in base if base[k] != changed.get(k)}
        assert diff, f"train.{key} does not reach the GRPOConfig"


def test_stage_fields(config):
    args = _build(config, stage="warmup")
    assert isinstance(args, KKGRPOConfig)
    warm = config.stages["warmup"]
    assert args.num_generations == warm.num_generations
    assert args.max_completion_length == warm.max_completion_length  # stage override wins
    assert args.per_device_train_batch_size == warm.prompts_per_step * warm.num_generations
    assert args.generation_batch_size == warm.prompts_per_step * warm.num_generations
    assert args.max_steps == warm.steps  # last global step of the first stage
    assert args.temperature == warm.temperature.start and args.top_k == warm.top_k
    assert args.beta == config.train.beta
    assert not args.gradient_checkpointing and not args.bf16  # CPU defaults written out
    explore = _build(config, stage="explore")
    assert explore.kk_first_step == warm.steps + 1
    assert explore.max_steps == warm.steps + config.stages["explore"].steps
    later = _build(config, stage="explore", first_step=26)  # warm-up promoted at step 25
    assert (later.kk_first_step, later.max_steps) == (26, 25 + config.stages["explore"].steps)


def test_batch_split_over_world_size(config):
    args = _build(config, stage="explore", world_size=4)
    st = config.stages["explore"]
    assert args.per_device_train_batch_size * 4 == st.prompts_per_step * st.num_generations


def test_bad_inputs(config):
    with pytest.raises(ConfigError, match="unknown stage"):
        _build(config, stage="nope")
    with pytest.raises(ConfigError, match=r"train\.extra\.no_such_field"):
        _build(config, ["train.extra={no_such_field: 1}"])


def test_lr_factor_follows_effective_bounds(config):
    cfg = apply_overrides(
        config,
        [
            "stages.warmup.steps=10",
            "stages.explore.steps=10",
            "stages.anneal.steps=4",
            "stages.anneal.learning_rate_scale=0.5",
            "train.warmup_steps=2",
            "train.learning_rate=1e-4",
            "train.lr_floor=1e-5",
            "train.lr_schedule=linear",
            "train.lr_decay_from=anneal",
        ],
    )
    # warm-up promoted at step 6: explore 7-16, anneal 17-20.
    bounds = stage_bounds(cfg, starts={"warmup": 1}, ends={"warmup": 6})
    assert bounds == [("warmup", 1, 6), ("explore", 7, 16), ("anneal", 17, 20)]
    lr = {s: run_learning_rate(cfg, s, bounds) for s in range(1, 21)}
    assert lr[1] == pytest.approx(0.5e-4)  # warm-up 1/2
    assert lr[2] == pytest.approx(1e-4)
    assert lr[16] == pytest.approx(1e-4)  # peak until the anneal stage
    # Linear decay over steps 17..20 from 1e-4 to 1e-5, times the anneal scale 0.5.
    for step in range(17, 21):
        frac = (step - 16) / 4
        assert lr[step] == pytest.approx(0.5 * (1e-5 + 9e-5 * (1 - frac)))
    assert all(math.isfinite(v) and v > 0 for v in lr.values())
