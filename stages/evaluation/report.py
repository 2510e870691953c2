"""``report.md``: what a run measured, with 95% intervals, written at the end of ``kk-train``.

Sections:

1. training per stage, from ``metrics.jsonl``: exact-format rate of the training batches at
   the stage's start and end (first / last ``window`` steps pooled, Wilson 95% interval over
   the completions), lenient accuracy, mean response length, zero-std group fraction,
   truncation, KL, seconds per step;
2. held-out accuracy (``eval/*.json``, written by ``stages.evaluation.heldout.evaluate``) of
   the base model and after each stage, per person count, strict (format required) and lenient
   (answer read in any format), beside the trivial baselines (everyone a knight, everyone a
   knave, a random guess), so that a format-only gain cannot pass for reasoning;
3. plain-language findings computed from those numbers (interval overlaps, baselines).

Reads only the run directory (``curriculum.run_records``), so it can be re-run on any finished
run: ``python -m stages.evaluation.report RUN_DIR``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from curriculum import run_records as rr
from stages.evaluation.heldout import wilson_interval as wilson


def pct(value: float | None, low: float | None = None, high: float | None = None) -> str:
    """'43.0% [33.7, 52.8]'.

    >>> pct(0.5, 0.4, 0.6), pct(None)
    ('50.0% [40.0, 60.0]', '-')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if low is None or high is None:
        return f"{100 * value:.1f}%"
    return f"{100 * value:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def _num(value: Any, spec: str = ".1f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def pooled_rate(
    steps: list[rr.StepMetrics], field: str, batch: int
) -> tuple[float, float, float, int] | None:
    """(rate, low, high, completions) of a per-step ratio pooled over steps. Each step counts
    the completions it recorded (``batch_completions``: the global batch, all processes),
    else ``batch``, the planned one. Completions of one prompt are correlated, so the
    interval is a lower bound on the real uncertainty."""
    pairs = [(getattr(m, field), m.batch_completions or batch) for m in steps]
    pairs = [(v, k) for v, k in pairs if v is not None and not math.isnan(v) and k > 0]
    if not pairs:
        return None
    n = sum(k for _, k in pairs)
    successes = sum(v * k for v, k in pairs)
    low, high = wilson(successes, n)
    return successes / n, low, high, n


def _best_window(
    steps: list[rr.StepMetrics], w: int, batch: int
) -> tuple[float, float, float, int, int] | None:
    """The w-step window with the highest exact-format rate: (rate, low, high, n, first step)."""
    best = None
    for i in range(0, max(1, len(steps) - w + 1)):
        r = pooled_rate(steps[i : i + w], "exact_format_ratio", batch)
        if r is not None and (best is None or r[0] > best[0]):
            best = (*r, steps[i].global_step)
    return best


def stage_rows(run_dir: Path, window: int = 5) -> list[dict[str, Any]]:
    """Per-stage training statistics from metrics.jsonl and run.json."""
    metrics = rr.read_metrics(run_dir)
    info = rr.read_run_info(run_dir)
    plans = {p.name: p for p in (info.stages if info else [])}
    events = rr.read_events(run_dir)
    promoted = {
        e.stage: str(e.data.get("reason", e.message)) for e in events if e.kind == "promotion"
    }
    order: list[str] = list(plans) or []
    for m in metrics:
        if m.stage not in order:
            order.append(m.stage)
    rows = []
    for name in order:
        steps = [m for m in metrics if m.stage == name]
        if not steps:
            continue
        plan = plans.get(name)
        batch = plan.num_generations * plan.prompts_per_step if plan else 0
        w = max(1, min(window, len(steps) // 2 or 1))
        first, last = steps[:w], steps[-w:]
        rows.append(
            {
                "stage": name,
                "steps": len(steps),
                "range": f"{steps[0].global_step}-{steps[-1].global_step}",
                "window": w,
                "batch": batch,
                "format_start": pooled_rate(first, "exact_format_ratio", batch),
                "format_end": pooled_rate(last, "exact_format_ratio", batch),
                "lenient_start": pooled_rate(first, "lenient_accuracy", batch),
                "lenient_end": pooled_rate(last, "lenient_accuracy", batch),
                "correct_end": pooled_rate(last, "all_correct_ratio", batch),
                "format_best": _best_window(steps, w, batch),
                "length": _mean([m.completion_length_mean for m in steps]),
                "length_start": _mean([m.completion_length_mean for m in first]),
                "length_end": _mean([m.completion_length_mean for m in last]),
                "zero_std": _mean([m.frac_zero_std_groups for m in steps]),
                "truncation": _mean([m.truncation_ratio for m in steps]),
                "kl_end": _mean([m.kl for m in last if m.kl is not None]),
                "seconds": _mean([m.step_seconds for m in steps]),
                "temperature": f"{steps[0].temperature:.2f}->{steps[-1].temperature:.2f}",
                "lr": f"{steps[0].learning_rate:.2e}->{steps[-1].learning_rate:.2e}",
                "promoted": promoted.get(name),
                "top_pattern_end": last[-1].top_answer_pattern,
            }
        )
    return rows


def load_evals(run_dir: Path) -> list[dict[str, Any]]:
    """eval/base.json then eval/stage-<name>.json in stage order."""
    eval_dir = run_dir / "eval"
    out = []
    base = eval_dir / "base.json"
    if base.is_file():
        out.append(json.loads(base.read_text(encoding="utf-8")))
    info = rr.read_run_info(run_dir)
    names = [p.name for p in info.stages] if info else []
    found = {p.stem[len("stage-") :]: p for p in eval_dir.glob("stage-*.json")}
    for name in names + sorted(set(found) - set(names)):
        if name in found:
            out.append(json.loads(found[name].read_text(encoding="utf-8")))
    return out


def _rate(d: dict[str, Any] | None) -> tuple[float, float, float] | None:
    if not d:
        return None
    return float(d["value"]), float(d["low"]), float(d["high"])


def _fmt_rate(r: tuple[float, ...] | None) -> str:
    return pct(*r[:3]) if r else "-"


def _best(r: tuple[float, ...] | None) -> str:
    return f"{pct(*r[:3])} from step {r[4]}" if r else "-"


def findings(rows: list[dict[str, Any]], evals: list[dict[str, Any]]) -> list[str]:
    """Plain sentences computed from the numbers (no judgement without an interval)."""
    out = []
    if rows:
        first = rows[0]
        a, b = first["format_start"], first["format_end"]
        if a and b:
            learned = b[1] > a[2]
            out.append(
                f"Stage {first['stage']}: exact format {pct(a[0])} at the start, {pct(b[0])} at "
                f"the end; the intervals {'do not overlap (format learned)' if learned else 'overlap (no clear format gain)'}."
            )
    if len(evals) >= 2:
        base, final = evals[0], evals[-1]
        for people, g_final in sorted(final.get("groups", {}).items(), key=lambda kv: int(kv[0])):
            g_base = base.get("groups", {}).get(people)
            if not g_base:
                continue
            lb, lf = _rate(g_base["lenient"]), _rate(g_final["lenient"])
            sb, sf = _rate(g_base["strict"]), _rate(g_final["strict"])
            bl = final.get("baselines", {}).get(people, {})
            best = max((bl.get(k, 0.0) for k in ("all_knight", "all_knave", "random")), default=0)
            if lb and lf:
                if lf[1] > lb[2]:
                    verdict = "a lenient gain beyond the 95% intervals"
                elif lf[2] < lb[1]:
                    verdict = "a lenient loss beyond the 95% intervals"
                else:
                    verdict = "no lenient change beyond noise (intervals overlap)"
                out.append(
                    f"{people} people: lenient accuracy {pct(lb[0])} (base) -> {pct(lf[0])} "
                    f"({final.get('label')}): {verdict}; strict {pct(sb[0]) if sb else '-'} -> "
                    f"{pct(sf[0]) if sf else '-'}; best trivial strategy {pct(best)}."
                )
            if sf and lf and sf[0] > 0 and lf[2] < best:
                out.append(
                    f"{people} people: the final accuracy is not above the best trivial strategy "
                    f"({pct(best)}): any strict gain there is format, not reasoning."
                )
    for row in rows:
        if row["zero_std"] is not None and row["zero_std"] >= 0.9:
            out.append(
                f"Stage {row['stage']}: {pct(row['zero_std'])} of groups had zero reward spread "
                "(little gradient); see SPEC lesson 5."
            )
    return out


def _heldout_text(run_dir: Path) -> str:
    """The run's held-out set described from its own config.yaml."""
    import curriculum
    from curriculum.data import heldout_description

    return heldout_description(curriculum.load_config(str(run_dir / rr.CONFIG_FILE), []))


def render_report(run_dir: str | Path) -> str:
    """The report as Markdown text."""
    run_dir = Path(run_dir)
    info = rr.read_run_info(run_dir)
    metrics = rr.read_metrics(run_dir)
    rows = stage_rows(run_dir)
    evals = load_evals(run_dir)
    lines = [f"# kk-rl run report: {info.run_name if info else run_dir.name}", ""]
    if info:
        elapsed = (metrics[-1].time - info.started_at) if metrics else None
        lines += [
            f"- model: `{info.model}` (base folder `{info.extra.get('base_model', '-')}`)",
            f"- device: {info.device}",
            f"- optimizer steps: {metrics[-1].global_step if metrics else 0} "
            f"(planned {info.total_steps})",
            f"- wall time to the last step: {_num(elapsed / 60 if elapsed else None, '.1f')} min",
            f"- run directory: `{run_dir}`",
            "",
        ]
    lines += [
        "## Training, per stage (from metrics.jsonl)",
        "",
        "Exact-format rate and lenient accuracy of the sampled training completions, pooled over"
        " the first / last *w* steps of each stage, with Wilson 95% intervals over the"
        " completions (completions of one prompt are correlated: the real uncertainty is"
        " larger). Length in tokens.",
        "",
        "| stage | steps | w | exact format, start | exact format, end | exact format, best window |"
        " lenient acc., start |"
        " lenient acc., end | mean length (start -> end) | zero-std groups | truncated |"
        " KL (end) | T | LR | s/step | promoted |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {r['range']} | {r['window']} | {_fmt_rate(r['format_start'])} |"
            f" {_fmt_rate(r['format_end'])} | {_best(r['format_best'])} |"
            f" {_fmt_rate(r['lenient_start'])} |"
            f" {_fmt_rate(r['lenient_end'])} | {_num(r['length'], '.0f')}"
            f" ({_num(r['length_start'], '.0f')} -> {_num(r['length_end'], '.0f')}) |"
            f" {pct(r['zero_std'])} | {pct(r['truncation'])} | {_num(r['kl_end'], '.4f')} |"
            f" {r['temperature']} | {r['lr']} | {_num(r['seconds'], '.2f')} |"
            f" {r['promoted'] or 'no'} |"
        )
    lines += ["", "## Held-out accuracy (greedy unless stated)", ""]
    if not evals:
        lines += ["No held-out evaluation in this run (eval.enabled: false).", ""]
    else:
        settings = evals[0].get("settings", {})
        lines += [
            f"Held-out set (`eval/heldout.jsonl`): {_heldout_text(run_dir)}. Samples "
            f"{settings.get('samples', 1)}, temperature {settings.get('temperature', 0)}, "
            f"max_new_tokens {settings.get('max_new_tokens', '-')}. Strict = right answer in"
            " the exact format; lenient = right answer read in any format. Intervals: Wilson 95%"
            " over puzzles. Trivial strategies: exact expected accuracy on the same puzzles.",
            "",
            "| people | model | n | strict | lenient | format errors | truncated | mean length |",
            "|---|---|---|---|---|---|---|---|",
        ]
        people_counts = sorted({int(p) for e in evals for p in e.get("groups", {})})
        for people in people_counts:
            for e in evals:
                g = e.get("groups", {}).get(str(people))
                if not g:
                    continue
                lines.append(
                    f"| {people} | {e.get('label', '?')} (step {e.get('global_step', '-')}) |"
                    f" {g['puzzles']} | {_fmt_rate(_rate(g['strict']))} |"
                    f" {_fmt_rate(_rate(g['lenient']))} | {_fmt_rate(_rate(g['format_error']))} |"
                    f" {_fmt_rate(_rate(g['truncation']))} | {_num(g['mean_length'], '.0f')} |"
                )
            bl = evals[-1].get("baselines", {}).get(str(people), {})
            if bl:
                lines.append(
                    f"| {people} | *trivial: everyone a knight / knave / random guess* |"
                    f" {bl.get('n', '-')} | {pct(bl.get('all_knight'))} / {pct(bl.get('all_knave'))}"
                    f" / {pct(bl.get('random'))} | | | | |"
                )
        lines.append("")
    found = findings(rows, evals)
    if found:
        lines += ["## Findings (computed from the tables above)", ""]
        lines += [f"- {f}" for f in found]
        lines.append("")
    events = [e for e in rr.read_events(run_dir) if e.kind in ("promotion", "alert", "resume")]
    if events:
        lines += ["## Events", ""]
        for e in events[:40]:
            lines.append(f"- step {e.global_step} [{e.kind}] {e.message.splitlines()[0][:240]}")
        if len(events) > 40:
            lines.append(f"- ... {len(events) - 40} more in events.jsonl")
        lines.append("")
    return "\n".join(lines)


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.md`` into the run directory (atomically); returns its path."""
    path = Path(run_dir) / rr.REPORT_FILE
    rr.atomic_write_text(path, render_report(run_dir))
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m stages.evaluation.report RUN_DIR", file=sys.stderr)
        return 2
    print(write_report(args[0]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
