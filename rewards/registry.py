"""Reward functions by name, with parameters, as YAML lists them.

```yaml
rewards:
  - {name: logic_rl_format, prefilled_think: true}
  - {name: logic_rl_answer, prefilled_think: true}
  - {name: repetition_penalty, weight: 0.5, ngram_size: 4}
```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rewards.functions import REWARD_CLASSES, RewardFunction

__all__ = ["available", "build_reward", "build_rewards", "describe", "reward_weights"]


def available() -> list[str]:
    """Names of every registered reward function.

    >>> available()[:3]
    ['logic_rl_format', 'logic_rl_answer', 'logic_rl']
    """
    return list(REWARD_CLASSES)


def describe(name: str) -> dict[str, Any]:
    """Default parameters of a reward function."""
    return dict(_lookup(name).defaults)


def _lookup(name: str) -> type[RewardFunction]:
    cls = REWARD_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown reward {name!r}; available: {', '.join(REWARD_CLASSES)}")
    return cls


def build_reward(name: str, **params: Any) -> RewardFunction:
    """Build one reward function; unknown names or parameters raise a one-line ValueError.

    >>> f = build_reward("logic_rl", prefilled_think=True)
    >>> f.__name__, f([".</think><answer>Zoey is a knight</answer>"], names=[["Zoey"]],
    ...               solution=[[True]])
    ('logic_rl', [3.0])
    """
    return _lookup(name)(**params)


def _plain(value: Any) -> Any:
    # OmegaConf containers -> plain Python, without importing omegaconf here
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value


def _split(spec: Any, position: int) -> tuple[str, float, dict[str, Any]]:
    if not isinstance(spec, Mapping):
        raise ValueError(f"rewards[{position}] must be a mapping with a 'name', got {spec!r}")
    params = _plain(spec)
    name = params.pop("name", None)
    if not isinstance(name, str):
        raise ValueError(
            f"rewards[{position}] has no 'name'; available: {', '.join(REWARD_CLASSES)}"
        )
    weight = params.pop("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ValueError(f"rewards[{position}] ({name}): weight must be a number, got {weight!r}")
    return name, float(weight), params


def build_rewards(specs: Iterable[Mapping[str, Any]]) -> list[RewardFunction]:
    """Build reward functions from YAML list items `{name, weight?, <params>}`.

    Each returned function carries its `weight` attribute (1.0 when not given); pass
    `reward_weights(specs)` to GRPOConfig.reward_weights.

    >>> fs = build_rewards([{"name": "logic_rl_format"}, {"name": "tag_count", "weight": 0.5}])
    >>> [(f.__name__, f.weight) for f in fs]
    [('logic_rl_format', 1.0), ('tag_count', 0.5)]
    """
    out: list[RewardFunction] = []
    names: set[str] = set()
    for i, spec in enumerate(specs):
        name, weight, params = _split(spec, i)
        try:
            fn = build_reward(name, **params)
        except ValueError as exc:
            raise ValueError(f"rewards[{i}]: {exc}") from None
        if name in names:
            # TRL logs by __name__; two of the same name would share one log column
            fn.__name__ = f"{name}_{i}"
        names.add(name)
        fn.weight = weight
        out.append(fn)
    return out


def reward_weights(specs: Iterable[Mapping[str, Any]]) -> list[float]:
    """The weights of `specs` in order (1.0 where not given).

    >>> reward_weights([{"name": "logic_rl"}, {"name": "overlong", "weight": 0.2}])
    [1.0, 0.2]
    """
    return [_split(spec, i)[1] for i, spec in enumerate(specs)]
