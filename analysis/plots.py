"""PNG plots of training curves and behaviour (matplotlib, Agg backend, atomic writes)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from analysis.runs import RunAnalysis

PHASE_COLOURS = {
    "format learning": "#8ecae6",
    "normal growth": "#b7e4c7",
    "stable length": "#e9ecef",
    "blow-up": "#f4a261",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Render to a temp file in the same folder, then rename: never a half-written PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        from analysis import _umask

        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        _plt().close(fig)
    return path


def _decorate(ax: Any, run: RunAnalysis, single: bool, label_stages: bool) -> None:
    """Stage boundaries as dashed lines; phases shaded when only one run is drawn."""
    stages = run.curves.stages() if len(run.curves) else run.completion_stages
    for i, (name, first, _last) in enumerate(stages):
        if i > 0:
            ax.axvline(first - 0.5, color="grey", linestyle="--", linewidth=0.8)
        if label_stages:
            ax.annotate(
                name, xy=(first, 1.0), xycoords=("data", "axes fraction"),
                xytext=(2, -10), textcoords="offset points", fontsize=7, color="grey",
            )  # fmt: skip
    if single:
        for ph in run.phases:
            ax.axvspan(
                ph.first_step - 0.5, ph.last_step + 0.5,
                color=PHASE_COLOURS.get(ph.name, "#eeeeee"), alpha=0.35, linewidth=0,
            )  # fmt: skip


CURVE_PANELS: list[tuple[str, list[tuple[str, str]]]] = [
    ("reward", [("reward_mean", "mean")]),
    ("accuracy", [("all_correct_ratio", "strict"), ("lenient_accuracy", "lenient")]),
    ("format error", [("format_error_ratio", "format error")]),
    ("completion length (tokens)", [("completion_length_mean", "mean")]),
    ("truncation ratio", [("truncation_ratio", "truncated")]),
    (
        "zero-std group fraction",
        [("frac_zero_std_groups", "trained"), ("frac_zero_std_generated", "generated")],
    ),
    ("KL", [("kl", "KL")]),
    ("temperature", [("temperature", "T")]),
    ("learning rate", [("learning_rate", "LR")]),
]


def plot_curves(runs: Sequence[RunAnalysis], path: Path) -> Path | None:
    """3x3 grid of training curves; several runs overlay in one colour each."""
    runs = [r for r in runs if len(r.curves)]
    if not runs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(3, 3, figsize=(14, 10), sharex=False)
    single = len(runs) == 1
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, series) in zip(axes.flat, CURVE_PANELS, strict=True):
        drawn = False
        for ri, run in enumerate(runs):
            c = run.curves
            for si, (name, label) in enumerate(series):
                y = c[name]
                if not np.isfinite(y).any():
                    continue
                colour = colours[(ri if not single else si) % len(colours)]
                lab = (
                    label
                    if single
                    else (f"{run.label}" if len(series) == 1 else f"{run.label} {label}")
                )
                ax.plot(c.step, y, color=colour, linewidth=1.2, label=lab,
                        linestyle="-" if si == 0 else ":")  # fmt: skip
                drawn = True
                if name == "completion_length_mean" and c.has("completion_length_max"):
                    ax.fill_between(c.step, c["completion_length_min"], c["completion_length_max"],
                                    color=colour, alpha=0.12, linewidth=0)  # fmt: skip
                if name == "reward_mean" and c.has("reward_std"):
                    ax.fill_between(c.step, y - c["reward_std"], y + c["reward_std"],
                                    color=colour, alpha=0.12, linewidth=0)  # fmt: skip
        if title == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("global step", fontsize=8)
        ax.tick_params(labelsize=8)
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", color="grey")
        else:
            _decorate(ax, runs[0], single, label_stages=title == "reward")
            if not single or len(series) > 1:
                ax.legend(fontsize=7)
    fig.suptitle(" vs ".join(r.label for r in runs) + ": training curves", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


BEHAVIOUR_PANELS = [
    "reflection phrases per 1k words",
    "language mixing (share with non-Latin letters in <think>)",
    "retry too late (content after </answer>)",
    "4-gram repetition rate",
    "answer collapse (parsed answers)",
    "outcome shares",
]


def plot_behaviour(runs: Sequence[RunAnalysis], path: Path) -> Path | None:
    """Behaviour over training, from completion buckets."""
    runs = [r for r in runs if r.buckets]
    if not runs:
        return None
    plt = _plt()
    from analysis.behaviour import PHRASE_NAMES

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    single = len(runs) == 1
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ri, run in enumerate(runs):
        x = np.array([b["x"] for b in run.buckets], dtype=float)
        colour = colours[ri % len(colours)]

        def col(key: str, sub: str | None = None, buckets: Any = run.buckets) -> np.ndarray:
            return np.array(
                [(b.get(key, {}) or {}).get(sub, np.nan) if sub else b.get(key, np.nan) for b in buckets],
                dtype=float,
            )  # fmt: skip

        ax = axes[0, 0]
        if single:
            for pi, name in enumerate(PHRASE_NAMES):
                y = col("reflection_per_1k", name)
                if np.nansum(y) > 0:
                    ax.plot(x, y, label=name, color=colours[pi % len(colours)], linewidth=1.1)
            ax.plot(x, col("reflection_total_per_1k"), label="all", color="black", linewidth=1.6)
        else:
            ax.plot(x, col("reflection_total_per_1k"), label=run.label, color=colour)
        axes[0, 1].plot(x, col("mixing_share"), color=colour, label=run.label)
        axes[0, 2].plot(x, col("retry_late_share"), color=colour, label=run.label)
        axes[1, 0].plot(x, col("repetition_mean"), color=colour, label=run.label)
        ax = axes[1, 1]
        pre = "" if single else f"{run.label} "
        ax.plot(x, col("all_knight_share"), color=colour if not single else colours[0],
                label=f"{pre}all-knight answers")  # fmt: skip
        ax.plot(x, col("all_knight_truth_share"), color=colour if not single else colours[0],
                linestyle=":", label=f"{pre}all-knight truth")  # fmt: skip
        ax.plot(x, col("top_pattern_share"), color=colour if not single else colours[1],
                linestyle="-." if not single else "-", label=f"{pre}top pattern answers")  # fmt: skip
        if single:
            ax.plot(x, col("all_knave_share"), color=colours[2], label="all-knave answers")
            ax.plot(x, col("top_pattern_truth_share"), color=colours[1], linestyle=":",
                    label="top pattern truth")  # fmt: skip
        ax = axes[1, 2]
        for ki, kind in enumerate(("correct", "wrong", "unparsed", "format_error")):
            y = col("kinds", kind)
            y = np.where(np.isnan(y), 0.0, y)
            ax.plot(x, y, color=colours[ki % len(colours)] if single else colour,
                    linestyle="-" if single else ["-", "--", ":", "-."][ki],
                    label=kind if single else f"{run.label} {kind}")  # fmt: skip
    for ax, title in zip(axes.flat, BEHAVIOUR_PANELS, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("global step", fontsize=8)
        ax.tick_params(labelsize=8)
        _decorate(ax, runs[0], single, label_stages=False)
        handles, _ = ax.get_legend_handles_labels()
        if handles and (not single or ax in (axes[0, 0], axes[1, 1], axes[1, 2])):
            ax.legend(fontsize=7)
    fig.suptitle(
        " vs ".join(r.label for r in runs) + ": behaviour of sampled completions", fontsize=12
    )
    fig.tight_layout()
    return _save(fig, path)
