"""The run configuration: a dataclass tree loaded from YAML with OmegaConf.

``load_config`` merges a YAML file over the dataclass defaults (a *structured* config, so a
misspelt key is an error, not a silently ignored setting), applies command-line dotlist
overrides, converts the result back into plain dataclasses and validates it.

>>> cfg = load_config(None, ["train.learning_rate=2e-4"], check_paths=False)
>>> cfg.train.learning_rate
0.0002
>>> list(cfg.stages)
['warmup', 'explore', 'anneal']
>>> load_config(None, ["train.lerning_rate=1"])
Traceback (most recent call last):
...
curriculum.config.ConfigError: unknown config key 'train.lerning_rate' (did you mean 'train.learning_rate'?)
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = [
    "ConfigError",
    "DashboardConfig",
    "EvalConfig",
    "ModelConfig",
    "PromotionConfig",
    "PromptConfig",
    "RunConfig",
    "RunSection",
    "StageConfig",
    "TemperatureConfig",
    "TrainConfig",
    "apply_overrides",
    "default_config_path",
    "load_config",
    "to_yaml",
]

REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A bad configuration: the message is one line naming the key, the numbers and the fix."""


# ----------------------------------------------------------------------------- schema


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
    extra: dict[str, Any] = field(default_factory=dict)  # further GRPOConfig keys, verbatim


@dataclass
class EvalConfig:
    enabled: bool = True
    people: list[int] = field(default_factory=lambda: [3])
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
    alerts: dict[str, Any] = field(default_factory=dict)  # stages.alerts.AlertThresholds fields


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


# ----------------------------------------------------------------------------- loading


def default_config_path() -> Path:
    """configs/default.yaml of this checkout."""
    return REPO_ROOT / "configs" / "default.yaml"


def _known_paths(cls: type, prefix: str = "") -> list[str]:
    out = []
    for f in fields(cls):
        out.append(prefix + f.name)
        t = f.default_factory() if callable(f.default_factory) else None  # type: ignore[misc]
        if is_dataclass(t):
            out.extend(_known_paths(type(t), prefix + f.name + "."))
    return out


_STAGE_KEYS = _known_paths(StageConfig)
_RUN_KEYS = _known_paths(RunConfig)


def _suggest(full_key: str) -> str:
    """' (did you mean ...?)' from the sibling keys of the misspelt one, or ''."""
    parts = full_key.split(".")
    parent, last = parts[:-1], parts[-1]
    if parent[:1] == ["stages"] and len(parent) >= 2:
        prefix, rel, keys = ".".join(parent[:2]) + ".", ".".join(parent[2:]), _STAGE_KEYS
    else:
        prefix, rel, keys = "", ".".join(parent), _RUN_KEYS
    siblings = [
        k.rsplit(".", 1)[-1] for k in keys if (k.rsplit(".", 1)[0] if "." in k else "") == rel
    ]
    match = difflib.get_close_matches(last, siblings, n=1, cutoff=0.6)
    if not match:
        return ""
    return f" (did you mean '{prefix}{rel + '.' if rel else ''}{match[0]}'?)"


def _one_line(err: OmegaConfBaseException, where: str) -> ConfigError:
    """Turn OmegaConf's multi-line error into a one-line ConfigError."""
    key = getattr(err, "full_key", None) or ""
    msg = str(getattr(err, "msg", None) or err).splitlines()[0].strip()
    if type(err).__name__ in ("ConfigAttributeError", "ConfigKeyError") and "not in" in msg:
        return ConfigError(f"unknown config key '{key}'{_suggest(key)}{where}")
    if type(err).__name__ == "KeyValidationError":
        return ConfigError(
            f"bad key at '{key}'{where}: {msg} (person counts are integers, e.g. people: {{3: 1.0}})"
        )
    if key:
        return ConfigError(f"bad value for '{key}'{where}: {msg}")
    return ConfigError(f"bad config{where}: {msg}")


def _parse_value(text: str) -> Any:
    # OmegaConf's own YAML reading of a dotlist value ("1e-4" is a float, "{3: 1.0}" a dict).
    node = OmegaConf.from_dotlist([f"v={text}"])
    return OmegaConf.to_container(node)["v"] if text.strip() else ""


def _norm_key(node: Any, part: str) -> Any:
    if isinstance(node, ListConfig):
        if not part.lstrip("-").isdigit():
            raise ConfigError(f"'{part}' is not a list index")
        return int(part)
    key_type = getattr(node._metadata, "key_type", Any)
    if key_type is int and part.lstrip("-").isdigit():
        return int(part)
    return part


def _is_structured(node: Any) -> bool:
    return isinstance(node, DictConfig) and node._metadata.object_type not in (None, dict)


def _apply_override(cfg: DictConfig, item: str) -> None:
    if "=" not in item:
        raise ConfigError(
            f"bad override '{item}': expected key=value, e.g. stages.explore.temperature.start=1.1"
        )
    key, text = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"bad override '{item}': empty key before '='")
    value = _parse_value(text)
    parts = key.split(".")
    node: Any = cfg
    try:
        with warnings.catch_warnings():
            # "x=1" on a float key becomes 1.0 (as intended); OmegaConf 2.4 warns about such conversions.
            warnings.filterwarnings("ignore", "Implicit conversion from", FutureWarning)
            for i, part in enumerate(parts):
                k = _norm_key(node, part)
                last = i == len(parts) - 1
                if isinstance(node, DictConfig) and k not in node:
                    if _is_structured(node):
                        known = ".".join(parts[: i + 1])
                        raise ConfigError(f"unknown config key '{known}'{_suggest(known)}")
                    if not last:
                        elem = node._metadata.element_type
                        node[k] = elem() if is_dataclass(elem) else {}  # e.g. a new stage
                if last:
                    target = node[k] if isinstance(node, DictConfig) and k in node else None
                    if isinstance(value, dict) and isinstance(target, DictConfig):
                        value = {_norm_key(target, str(kk)): v for kk, v in value.items()}
                    if isinstance(value, dict) and _is_structured(target):
                        node[k] = OmegaConf.merge(target, value)  # sections merge
                    else:
                        node[k] = value  # scalars, plain dicts (people, extra) and lists replace
                else:
                    node = node[k]
    except OmegaConfBaseException as err:
        raise _one_line(err, f" (override '{item}')") from None


def apply_overrides(config: RunConfig | DictConfig, overrides: Sequence[str]) -> RunConfig:
    """Return a new RunConfig with dotlist overrides applied (not validated)."""
    if isinstance(config, DictConfig):
        cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), config)
    else:
        cfg = OmegaConf.structured(config)  # already typed: struct mode, unknown keys fail
    for item in overrides:
        _apply_override(cfg, item)
    return _to_object(cfg)


def _to_object(cfg: DictConfig) -> RunConfig:
    try:
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise _one_line(err, "") from None


_YAML_CACHE: dict[tuple[str, int, int], Any] = {}


def _read_yaml(p: Path) -> Any:
    # Parsed files are cached by (path, mtime, size): merges never mutate their inputs, and
    # tests and the CLI load the same file many times.
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _YAML_CACHE:
        try:
            _YAML_CACHE[key] = OmegaConf.load(p)
        except Exception as err:  # yaml.YAMLError and friends: keep the first line only
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"cannot read YAML {p}: {first}") from None
    return _YAML_CACHE[key]


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    *,
    world_size: int = 1,
    check_paths: bool = True,
    validate_config: bool = True,
) -> RunConfig:
    """Load a YAML config (None = configs/default.yaml), apply overrides, validate.

    Raises ConfigError (one line) for a missing file, bad YAML, an unknown key, a value of
    the wrong type or a value that fails validation.
    """
    p = Path(path) if path is not None else default_config_path()
    if not p.is_file():
        raise ConfigError(f"config file not found: {p} (pass --config PATH to an existing YAML)")
    data = _read_yaml(p)
    if not isinstance(data, DictConfig):
        raise ConfigError(f"config {p} must be a YAML mapping at the top level")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), data)
    except OmegaConfBaseException as err:
        raise _one_line(err, f" in {p.name}") from None
    for item in overrides:
        _apply_override(cfg, item)
    config = _to_object(cfg)
    if validate_config:
        from curriculum.validate import validate

        validate(config, world_size=world_size, check_paths=check_paths)
    return config


def to_yaml(config: RunConfig) -> str:
    """The resolved config as YAML (what config.yaml in a run directory holds)."""
    return OmegaConf.to_yaml(OmegaConf.structured(config), sort_keys=False)


def from_yaml_text(text: str) -> RunConfig:
    """Parse YAML text (e.g. a run directory's config.yaml) into a RunConfig, unvalidated."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.create(text))
    except OmegaConfBaseException as err:
        raise _one_line(err, "") from None
    return _to_object(cfg)
