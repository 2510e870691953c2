"""``analysis.md`` (tables and plots) and the rich terminal summary of ``kk-analyze``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from analysis.behaviour import PHRASE_NAMES

if TYPE_CHECKING:
    from analysis.runs import RunAnalysis

STAGE_COLUMNS = [
    ("reward_mean", "reward", "num"),
    ("all_correct_ratio", "accuracy", "pct"),
    ("lenient_accuracy", "lenient acc.", "pct"),
    ("format_error_ratio", "format error", "pct"),
    ("completion_length_mean", "length", "int"),
    ("truncation_ratio", "truncation", "pct"),
    ("frac_zero_std_groups", "zero-std", "pct"),
    ("kl", "KL", "sci"),
    ("temperature", "temperature", "num"),
    ("learning_rate", "LR", "sci"),
]


def fmt(value: float | None, kind: str) -> str:
    """>>> fmt(0.1234, "pct"), fmt(None, "num"), fmt(3e-7, "sci"), fmt(412.6, "int")
    ('12.3%', '-', '3.0e-07', '413')
    """
    if value is None or value != value:
        return "-"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "int":
        return f"{value:.0f}"
    if kind == "sci":
        return f"{value:.1e}" if value and abs(value) < 1e-2 else f"{value:.3g}"
    return f"{value:.3g}"


def _arrow(cell: dict[str, Any], kind: str) -> str:
    return f"{fmt(cell['start'], kind)} → {fmt(cell['end'], kind)}"


def stage_rows(run: RunAnalysis) -> list[list[str]]:
    rows = []
    for s in run.stage_summary:
        rows.append(
            [s["stage"], f"{s['first_step']}–{s['last_step']}", str(s["steps"])]
            + [_arrow(s[key], kind) for key, _label, kind in STAGE_COLUMNS]
        )
    return rows


BEHAVIOUR_COLUMNS = [
    ("completions", "completions"),
    ("mean words", "mean_words"),
    ("reflection /1k", "reflection_total_per_1k"),
    ("mixing", "mixing_share"),
    ("retry late", "retry_late_share"),
    ("repetition", "repetition_mean"),
    ("all-knight ans/truth", None),
    ("all-knave ans/truth", None),
    ("top pattern ans/truth", None),
]


DYNAMIC_SAMPLING_HEADER = [
    "stage",
    "steps",
    "groups generated",
    "zero-std generated",
    "dropped",
    "rounds/step (max)",
    "unfilled steps",
    "zero-std trained",
]


def dynamic_sampling_rows(run: RunAnalysis) -> list[list[str]]:
    """One row per stage that ran with dynamic sampling (``analysis.curves``)."""
    return [
        [
            d["stage"],
            str(d["steps"]),
            str(d["groups_generated"]),
            f"{d['zero_std_generated']} ({fmt(d['frac_zero_std_generated'], 'pct')})",
            str(d["zero_std_dropped"]),
            f"{d['rounds_mean']:.2f} ({d['rounds_max']})",
            str(d["unfilled_steps"]),
            fmt(d["frac_zero_std_trained"], "pct"),
        ]
        for d in run.dynamic_sampling
    ]


def behaviour_row(name: str, b: dict[str, Any]) -> list[str]:
    if not b.get("completions"):
        return [name, "0"] + ["-"] * (len(BEHAVIOUR_COLUMNS) - 1)
    top = b.get("top_pattern") or "-"
    return [
        name,
        str(b["completions"]),
        f"{b['mean_words']:.0f}",
        f"{b['reflection_total_per_1k']:.2f}",
        fmt(b["mixing_share"], "pct"),
        fmt(b["retry_late_share"], "pct"),
        fmt(b["repetition_mean"], "pct"),
        f"{fmt(b['all_knight_share'], 'pct')} / {fmt(b['all_knight_truth_share'], 'pct')}",
        f"{fmt(b['all_knave_share'], 'pct')} / {fmt(b['all_knave_truth_share'], 'pct')}",
        f"{top}: {fmt(b['top_pattern_share'], 'pct')} / {fmt(b['top_pattern_truth_share'], 'pct')}",
    ]


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(
    runs: Sequence[RunAnalysis], plots: dict[str, str], out_dir: os.PathLike[str] | str
) -> str:
    """The analysis report (plots referenced relative to ``out_dir``)."""
    main = runs[0]
    title = main.label if len(runs) == 1 else " vs ".join(r.label for r in runs)
    parts = [f"# Training analysis: {title}", ""]
    for run in runs:
        info = run.info
        model = f", model `{info.model}`" if info is not None and info.model else ""
        steps = int(run.curves.step.max()) if len(run.curves) else 0
        parts.append(
            f"- **{run.label}** (`{run.run_dir}`{model}): {len(run.curves)} logged steps "
            f"(last global step {steps}), {len(run.table)} sampled completions."
        )
    parts.append("")
    for run in runs:
        head = "## Stages" if len(runs) == 1 else f"## Stages: {run.label}"
        parts += [
            head,
            "",
            "Start → end of each stage (means over the first and last tenth of its steps).",
            "",
        ]
        header = ["stage", "steps", "n"] + [label for _k, label, _f in STAGE_COLUMNS]
        parts += [
            _md_table(header, stage_rows(run)) if run.stage_summary else "_no metrics recorded_",
            "",
        ]
    if any(run.dynamic_sampling for run in runs):
        parts += [
            "## Dynamic sampling",
            "",
            "Groups whose rewards were all equal were dropped and the batch refilled from the "
            "stage's next prompts; zero-std generated counts the groups before filtering, "
            "zero-std trained is the mean share left in the trained batches (when a step ran "
            "out of rounds).",
            "",
        ]
        for run in runs:
            if run.dynamic_sampling:
                if len(runs) > 1:
                    parts += [f"### {run.label}", ""]
                parts += [_md_table(DYNAMIC_SAMPLING_HEADER, dynamic_sampling_rows(run)), ""]
    parts += ["## Training phases (SPEC §7.3)", ""]
    for run in runs:
        pre = f"**{run.label}**: " if len(runs) > 1 else ""
        parts.append(f"{pre}{run.verdict}.")
        parts.append("")
        if run.phases:
            parts.append(
                _md_table(
                    ["phase", "steps", "evidence"],
                    [[p.name, f"{p.first_step}–{p.last_step}", p.evidence] for p in run.phases],
                )
            )
            parts.append("")
    if "curves" in plots:
        parts += [f"![training curves]({plots['curves']})", ""]
    parts += ["## Behaviour of sampled completions", ""]
    parts.append(
        "Reflection phrases per 1,000 words; mixing = share of completions with non-Latin "
        "letters inside `<think>`; retry late = content or a new `<think>` after `</answer>`; "
        "repetition = mean share of repeated word 4-grams; collapse columns: share of parsed "
        "answers with that pattern / share of the same puzzles whose solution has it."
    )
    parts.append("")
    header = ["stage"] + [c for c, _k in BEHAVIOUR_COLUMNS]
    for run in runs:
        if len(runs) > 1:
            parts += [f"### {run.label}", ""]
        rows = [behaviour_row(b["stage"], b) for b in run.stage_behaviour]
        if run.overall_behaviour:
            rows.append(behaviour_row("all", run.overall_behaviour))
        parts += [_md_table(header, rows) if rows else "_no completions recorded_", ""]
        if run.stage_behaviour:
            phr = [
                [b["stage"]] + [f"{b['reflection_per_1k'][p]:.2f}" for p in PHRASE_NAMES]
                for b in run.stage_behaviour
            ]
            parts += ["Reflection phrases per 1,000 words, by phrase:", ""]
            parts += [_md_table(["stage", *PHRASE_NAMES], phr), ""]
    if "behaviour" in plots:
        parts += [f"![behaviour]({plots['behaviour']})", ""]
    alerts = [e for run in runs for e in run.events if e.kind == "alert"]
    if alerts:
        parts += ["## Alerts raised during training", ""]
        parts += [f"- step {e.global_step} ({e.stage}): {e.message}" for e in alerts[:50]]
        parts.append("")
    parts += [
        "## Definitions",
        "",
        "- Curves come from `metrics.jsonl` (one record per optimizer step); behaviour from "
        "`completions.jsonl` (the samples the trainer kept), grouped into at most 40 step buckets.",
        "- Words are whitespace-separated; the analysis does not need the model's tokenizer.",
        "- Phases: format learning = format error falls by at least 0.2 (ends when 90% of the "
        "fall is done); then normal growth (length up at least 10%) or stable length; blow-up "
        "= length at 3x its minimum or truncation at 25% (curves smoothed over a twentieth of the run).",
        "",
    ]
    return "\n".join(parts)


def terminal_summary(runs: Sequence[RunAnalysis], console: Any) -> None:
    from rich.table import Table

    for run in runs:
        t = Table(title=f"{run.label}: stages (start → end)", title_justify="left")
        for col in ["stage", "steps", "n"] + [label for _k, label, _f in STAGE_COLUMNS]:
            t.add_column(col, overflow="fold")
        for row in stage_rows(run):
            t.add_row(*row)
        if run.stage_summary:
            console.print(t)
        if run.dynamic_sampling:
            d = Table(title=f"{run.label}: dynamic sampling", title_justify="left")
            for col in DYNAMIC_SAMPLING_HEADER:
                d.add_column(col, overflow="fold")
            for row in dynamic_sampling_rows(run):
                d.add_row(*row)
            console.print(d)
        console.print(f"[bold]phases[/]: {run.verdict}")
        for p in run.phases:
            console.print(f"  {p.name}: steps {p.first_step}–{p.last_step} ({p.evidence})")
        if run.stage_behaviour:
            b = Table(title=f"{run.label}: behaviour of sampled completions", title_justify="left")
            for col in ["stage"] + [c for c, _k in BEHAVIOUR_COLUMNS]:
                b.add_column(col, overflow="fold")
            for s in run.stage_behaviour:
                b.add_row(*behaviour_row(s["stage"], s))
            b.add_row(*behaviour_row("all", run.overall_behaviour), style="bold")
            console.print(b)
