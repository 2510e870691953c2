"""The run configuration: the dataclass tree of ``curriculum.schema``, loaded from YAML.

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
curriculum.schema.ConfigError: unknown config key 'train.lerning_rate' (did you mean 'train.learning_rate'?)
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from curriculum.schema import (
    ConfigError,
    DashboardConfig,
    DynamicSamplingConfig,
    EvalConfig,
    ModelConfig,
    PromotionConfig,
    PromptConfig,
    RunConfig,
    RunSection,
    StageConfig,
    TemperatureConfig,
    TrainConfig,
)
from curriculum.validate import validate

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
    "apply_overrides",
    "default_config_path",
    "load_config",
    "to_yaml",
]

REPO_ROOT = Path(__file__).resolve().parent.parent


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
