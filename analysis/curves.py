"""Training curves from ``metrics.jsonl``: columns, per-stage summaries, SPEC §7.3 phases.

>>> smooth([0.0, 0.0, 3.0, 0.0, 0.0], 3).tolist()
[0.0, 1.0, 1.0, 1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Curves drawn and summarised: StepMetrics field -> label.
CURVES: dict[str, str] = {
    "reward_mean": "reward",
    "all_correct_ratio": "accuracy (strict)",
    "lenient_accuracy": "accuracy (lenient)",
    "format_error_ratio": "format error",
    "exact_format_ratio": "exact format",
    "completion_length_mean": "length (tokens)",
    "completion_length_min": "length min",
    "completion_length_max": "length max",
    "truncation_ratio": "truncation",
    "frac_zero_std_groups": "zero-std groups",
    "zero_std_groups_dropped": "zero-std groups dropped",
    "generation_rounds": "generation rounds",
    "kl": "KL",
    "entropy": "entropy",
    "loss": "loss",
    "learning_rate": "learning rate",
    "temperature": "temperature",
    "reward_std": "reward std",
    "top_answer_pattern_share": "top answer share",
}
SUMMARY_FIELDS = (
    "reward_mean",
    "all_correct_ratio",
    "lenient_accuracy",
    "format_error_ratio",
    "completion_length_mean",
    "truncation_ratio",
    "frac_zero_std_groups",
    "kl",
    "temperature",
    "learning_rate",
)

# Phase detection thresholds (documented in docs/analysis.md).
FORMAT_DROP_MIN = 0.2  # format error must fall at least this much for a "format learning" phase
FORMAT_DONE_FRACTION = 0.9  # phase 1 ends when 90% of the fall is done
SHRINK_MIN = 0.05  # length counts as shrinking when it fell at least 5% during phase 1
GROWTH_MIN = 0.10  # phase 2 counts as growth when length rose at least 10%
BLOWUP_LENGTH_FACTOR = 3.0  # blow-up: length at least 3x its minimum after phase 1 ...
BLOWUP_TRUNCATION = 0.25  # ... or a quarter of completions truncated ...
BLOWUP_TRUNCATION_RISE = 0.2  # ... after rising this much (truncated from the start is no blow-up)
MIN_STEPS_FOR_PHASES = 10


class Curves:
    """Metrics as numpy columns (NaN where a step did not measure a value)."""

    def __init__(self, metrics: Sequence[Any]) -> None:
        self.records = list(metrics)
        self.step = np.array([m.global_step for m in self.records], dtype=np.int64)
        self.stage = [m.stage for m in self.records]
        self.columns: dict[str, np.ndarray] = {}
        for name in CURVES:
            vals = [getattr(m, name, None) for m in self.records]
            self.columns[name] = np.array(
                [np.nan if v is None else float(v) for v in vals], dtype=np.float64
            )
        # Zero-std share of the groups generated, before dynamic sampling filtered them
        # (frac_zero_std_groups is the trained batch's); NaN for records without the counts.
        self.columns["frac_zero_std_generated"] = np.array(
            [_share(m.zero_std_groups_generated, m.groups_generated) for m in self.records],
            dtype=np.float64,
        )
        names = sorted({k for m in self.records for k in (m.rewards or {})})
        self.reward_components = {
            k: np.array([(m.rewards or {}).get(k, np.nan) for m in self.records], dtype=np.float64)
            for k in names
        }

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def has(self, name: str) -> bool:
        return name in self.columns and bool(np.isfinite(self.columns[name]).any())

    def stages(self) -> list[tuple[str, int, int]]:
        """(stage, first global step, last global step) in run order."""
        out: list[tuple[str, int, int]] = []
        for stage, step in zip(self.stage, self.step, strict=True):
            if out and out[-1][0] == stage:
                out[-1] = (stage, out[-1][1], int(step))
            else:
                out.append((stage, int(step), int(step)))
        return out


def _share(part: int | None, whole: int | None) -> float:
    return part / whole if part is not None and whole else np.nan


def dynamic_sampling_summary(curves: Curves) -> list[dict[str, Any]]:
    """Per stage that ran with dynamic sampling: groups generated and zero-std among them
    (before filtering), groups dropped, generation rounds per step, steps whose batch could
    not be filled, and the mean zero-std share of the trained batches. Empty when no step
    ran with it (``batch_filled`` is None on those records)."""
    out = []
    for stage, _first, _last in curves.stages():
        steps = [m for m in curves.records if m.stage == stage and m.batch_filled is not None]
        if not steps:
            continue
        generated = sum(m.groups_generated or 0 for m in steps)
        zero = sum(m.zero_std_groups_generated or 0 for m in steps)
        out.append(
            {
                "stage": stage,
                "steps": len(steps),
                "groups_generated": generated,
                "zero_std_generated": zero,
                "frac_zero_std_generated": zero / generated if generated else None,
                "zero_std_dropped": sum(m.zero_std_groups_dropped for m in steps),
                "rounds_mean": sum(m.generation_rounds for m in steps) / len(steps),
                "rounds_max": max(m.generation_rounds for m in steps),
                "unfilled_steps": sum(1 for m in steps if not m.batch_filled),
                "frac_zero_std_trained": _window_mean(
                    np.array([m.frac_zero_std_groups for m in steps], dtype=np.float64)
                ),
            }
        )
    return out


def _window_mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def edge_window(n: int) -> int:
    """Steps averaged for a stage's start / end value: a tenth of the stage, at least 1."""
    return max(1, n // 10)


def stage_summaries(curves: Curves) -> list[dict[str, Any]]:
    """Per stage: steps, and for each summary field the start, end and mean.

    start / end = mean over the first / last ``edge_window(n)`` steps of the stage.
    """
    out = []
    for stage, first, last in curves.stages():
        mask = (curves.step >= first) & (curves.step <= last)
        mask &= np.array([s == stage for s in curves.stage])
        n = int(mask.sum())
        w = edge_window(n)
        row: dict[str, Any] = {"stage": stage, "first_step": first, "last_step": last, "steps": n}
        for name in SUMMARY_FIELDS:
            col = curves[name][mask]
            row[name] = {
                "start": _window_mean(col[:w]),
                "end": _window_mean(col[-w:]),
                "mean": _window_mean(col),
            }
        out.append(row)
    return out


def smooth(values: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` points (odd), shrinking at the edges; NaN skipped."""
    x = np.asarray(values, dtype=np.float64)
    half = max(0, window // 2)
    ok = np.isfinite(x)
    filled = np.where(ok, x, 0.0)
    csum = np.concatenate([[0.0], np.cumsum(filled)])
    ccount = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(len(x))
    lo = np.clip(idx - half, 0, len(x))
    hi = np.clip(idx + half + 1, 0, len(x))
    count = ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum[hi] - csum[lo]) / np.maximum(count, 1), np.nan)


@dataclass
class Phase:
    name: str  # "format learning" | "normal growth" | "stable length" | "blow-up"
    first_step: int
    last_step: int
    evidence: str


def smoothing_window(n: int) -> int:
    """Centred window for phase detection: about a twentieth of the run, odd, at least 1."""
    w = max(1, n // 20)
    return w if w % 2 else w + 1


def detect_phases(curves: Curves) -> tuple[list[Phase], str]:
    """The three phases of SPEC §7.3, from smoothed format error, length and truncation.

    1. format learning: format error falls by at least FORMAT_DROP_MIN; the phase ends at
       the first step where 90% of the fall is done (length shrinking or not is reported).
    2. the steps after it up to any blow-up: "normal growth" if length rises by at least
       10% from its lowest point in that span, else "stable length".
    3. blow-up: from the first step after that minimum where length reaches 3x the minimum
       or truncation reaches 25% after rising at least 0.2 from its lowest level, to the end.
    Returns the phases found and a one-line verdict.
    """
    n = len(curves)
    if n < MIN_STEPS_FOR_PHASES:
        return [], f"too few steps ({n}) to detect phases"
    w = smoothing_window(n)
    steps = curves.step
    length = smooth(curves["completion_length_mean"], w)
    fmt_err = smooth(curves["format_error_ratio"], w)
    trunc = smooth(np.nan_to_num(curves["truncation_ratio"], nan=0.0), w)
    phases: list[Phase] = []
    t1 = 0
    if np.isfinite(fmt_err).any():
        f0 = float(fmt_err[np.isfinite(fmt_err)][0])
        fmin = float(np.nanmin(fmt_err))
        drop = f0 - fmin
        if drop >= FORMAT_DROP_MIN:
            target = fmin + (1 - FORMAT_DONE_FRACTION) * drop
            t1 = int(np.argmax(fmt_err <= target + 1e-12))
            l0, l1 = float(length[0]), float(length[t1])
            change = (l1 - l0) / l0 if l0 else 0.0
            shrink = "shrinking" if change <= -SHRINK_MIN else "not shrinking"
            phases.append(
                Phase(
                    "format learning",
                    int(steps[0]),
                    int(steps[t1]),
                    f"format error {f0:.2f} -> {float(fmt_err[t1]):.2f}; length {l0:.0f} -> "
                    f"{l1:.0f} ({100 * change:+.0f}%, {shrink})",
                ),
            )
    tail = length[t1:]
    if not np.isfinite(tail).any():
        return phases, _verdict(phases)
    tm = t1 + int(np.nanargmin(tail))
    lmin = float(length[tm])
    t3 = None
    trunc_floor = float(np.min(trunc[t1:]))
    for t in range(tm, n):
        truncating = (
            trunc[t] >= BLOWUP_TRUNCATION and trunc[t] - trunc_floor >= BLOWUP_TRUNCATION_RISE
        )
        if (lmin > 0 and length[t] >= BLOWUP_LENGTH_FACTOR * lmin) or truncating:
            t3 = t
            break
    start2 = t1 + 1 if phases else 0
    end2 = (t3 - 1) if t3 is not None else n - 1
    if end2 >= start2:
        seg = length[start2 : end2 + 1]
        lo = float(np.nanmin(seg))
        hi_after = float(np.nanmax(length[start2 + int(np.nanargmin(seg)) : end2 + 1]))
        grew = lo > 0 and (hi_after - lo) / lo >= GROWTH_MIN
        phases.append(
            Phase(
                "normal growth" if grew else "stable length",
                int(steps[start2]),
                int(steps[end2]),
                f"length {lo:.0f} -> {hi_after:.0f} ({100 * (hi_after - lo) / lo if lo else 0:+.0f}%)",
            )
        )
    if t3 is not None:
        phases.append(
            Phase(
                "blow-up",
                int(steps[t3]),
                int(steps[-1]),
                f"length {lmin:.0f} -> {float(np.nanmax(length[t3:])):.0f}, truncation up to "
                f"{100 * float(np.nanmax(trunc[t3:])):.0f}%",
            )
        )
    return phases, _verdict(phases)


def _verdict(phases: list[Phase]) -> str:
    names = [p.name for p in phases]
    if not names:
        return "no phase structure: format error never fell by 0.2 and length never grew"
    return " -> ".join(names)
