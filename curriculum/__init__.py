"""Curriculum: the run configuration, stage schedules, promotion rules, state and data.

Pure Python over OmegaConf and the standard library (no torch/transformers/trl at import
time), so ``kk-train --dry-run``, the dashboard and analysis load it fast.

>>> cfg = load_config(None, check_paths=False)
>>> [(name, first, last) for name, first, last in stage_bounds(cfg)]
[('warmup', 1, 30), ('explore', 31, 45), ('anneal', 46, 55)]
"""

from curriculum.config import (
    ConfigError,
    EvalConfig,
    ModelConfig,
    PromotionConfig,
    PromptConfig,
    RunConfig,
    RunSection,
    StageConfig,
    TemperatureConfig,
    TrainConfig,
    apply_overrides,
    default_config_path,
    from_yaml_text,
    load_config,
    to_yaml,
)
from curriculum.describe import describe
from curriculum.promotion import should_promote
from curriculum.schedules import (
    learning_rate_at,
    run_learning_rate,
    stage_at,
    stage_bounds,
    temperature_at,
    total_steps,
)
from curriculum.state import CurriculumState, StateError
from curriculum.validate import BatchPlan, batch_plan, select_stages, validate

__all__ = [
    "BatchPlan",
    "ConfigError",
    "CurriculumState",
    "EvalConfig",
    "ModelConfig",
    "PromotionConfig",
    "PromptConfig",
    "RunConfig",
    "RunSection",
    "StageConfig",
    "StateError",
    "TemperatureConfig",
    "TrainConfig",
    "apply_overrides",
    "batch_plan",
    "default_config_path",
    "describe",
    "from_yaml_text",
    "learning_rate_at",
    "load_config",
    "run_learning_rate",
    "select_stages",
    "should_promote",
    "stage_at",
    "stage_bounds",
    "temperature_at",
    "to_yaml",
    "total_steps",
    "validate",
]
