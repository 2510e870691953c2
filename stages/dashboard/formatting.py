"""How the dashboard writes numbers: ratios, durations, person mixes, temperatures.

Every value may be missing (``None``, shown as ``–``) or non-finite (shown as ``nan`` /
``inf``, so a broken run is visible rather than hidden), which is why the two checks on
such values live here too.

>>> pct(0.25), num(None), num(float("nan")), sci(3e-5)
('25.0%', '–', 'nan', '3.00e-05')
"""

from __future__ import annotations

import math

from curriculum.run_records import StagePlan

__all__ = [
    "at_least",
    "duration",
    "is_finite",
    "num",
    "pct",
    "people_mix",
    "sci",
    "short_reward_name",
    "temperature_text",
]


def is_finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def at_least(x: float | None, threshold: float) -> bool:
    """x >= threshold; a missing (None) or NaN value never counts."""
    return x is not None and x >= threshold


def pct(x: float | None) -> str:
    """A ratio as a percentage with one decimal."""
    if x is None:
        return "–"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.1%}"


def num(x: float | None, fmt: str = ".3f") -> str:
    """A number in ``fmt``."""
    if x is None:
        return "–"
    if not math.isfinite(x):
        return str(x)
    return format(x, fmt)


def sci(x: float | None) -> str:
    """Scientific notation (learning rates)."""
    if x is None:
        return "–"
    return f"{x:.2e}" if math.isfinite(x) else str(x)


def duration(seconds: float | None) -> str:
    """``3:05`` or ``1:02:03``.

    >>> duration(65), duration(3723.4), duration(None)
    ('1:05', '1:02:03', '–')
    """
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = int(max(0.0, seconds) + 0.5)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def people_mix(mix: dict[str, float] | None) -> str:
    """Person-count mix: ``3`` or ``3:50% 4:50%``.

    >>> people_mix({"3": 1.0}), people_mix({"3": 1, "4": 3})
    ('3', '3:25% 4:75%')
    """
    if not mix:
        return "–"
    total = sum(float(w) for w in mix.values()) or 1.0
    items = sorted(mix.items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else 0)
    if len(items) == 1:
        return str(items[0][0])
    return " ".join(f"{k}:{float(w) / total:.0%}" for k, w in items)


def _short_float(x: float) -> str:
    """A temperature with at least one decimal: ``1.0``, ``1.2``, ``0.95``."""
    text = f"{x:.2f}"
    return text[:-1] if text.endswith("0") else text


def temperature_text(plan: StagePlan) -> str:
    """The stage's sampling temperature, and its schedule when it changes within the stage."""
    start = _short_float(plan.temperature_start)
    if plan.temperature_end is None or plan.temperature_end == plan.temperature_start:
        return start
    end = _short_float(plan.temperature_end)
    return f"{start}→{end} {plan.temperature_schedule}"


def short_reward_name(name: str) -> str:
    """A reward's name without the logging prefix and suffix.

    >>> short_reward_name("logic_rl_format"), short_reward_name("rewards/answer/mean")
    ('format', 'answer')
    """
    for prefix in ("logic_rl_", "rewards/"):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
    return name.removesuffix("/mean")
