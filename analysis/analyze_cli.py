"""``kk-analyze``: curves, behaviour statistics, phases, plots and a report for a run directory.

    kk-analyze runs/default
    kk-analyze runs/a --compare runs/b --compare runs/c --out figures/

Reads ``metrics.jsonl``, ``completions.jsonl``, ``events.jsonl`` and ``run.json``; writes
``curves.png``, ``behaviour.png``, ``analysis.md`` and ``analysis.json`` into ``--out``
(default ``RUN_DIR/analysis``), each atomically, and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from analysis import write_atomic
from kk_puzzles.cli_errors import CliError, OneLineParser, run_cli

PROG = "kk-analyze"


class _Error(CliError):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="run directory (metrics.jsonl, completions.jsonl)")
    p.add_argument("--compare", action="append", default=[], metavar="RUN_DIR",
                   help="another run to overlay; repeatable")  # fmt: skip
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/analysis)")
    p.add_argument("--no-plots", action="store_true", help="tables and report only")
    p.add_argument("--quiet", action="store_true", help="no terminal summary")
    return p


def to_json(runs: Sequence[Any]) -> dict[str, Any]:
    out = []
    for r in runs:
        out.append(
            {
                "label": r.label,
                "run_dir": str(r.run_dir),
                "steps": len(r.curves),
                "completions": len(r.table),
                "stages": r.stage_summary,
                "dynamic_sampling": r.dynamic_sampling,
                "phases": [asdict(p) for p in r.phases],
                "verdict": r.verdict,
                "stage_behaviour": r.stage_behaviour,
                "behaviour": r.overall_behaviour,
                "behaviour_buckets": r.buckets,
            }
        )
    return {"created_at": time.time(), "runs": out}


def run(argv: Sequence[str] | None = None) -> int:
    from analysis.runs import RunDirError, analyse_run

    args = build_parser().parse_args(argv)
    dirs = [args.run_dir, *args.compare]
    t0 = time.perf_counter()
    try:
        runs = [analyse_run(d) for d in dirs]
    except RunDirError as exc:
        raise _Error(str(exc)) from None
    labels = [r.label for r in runs]
    for i, r in enumerate(runs):  # distinct labels for overlays
        if labels.count(r.label) > 1:
            r.label = f"{r.label} ({Path(dirs[i]).name or dirs[i]})"
    out_dir = Path(args.out) if args.out else Path(args.run_dir) / "analysis"
    if out_dir.exists() and not out_dir.is_dir():
        raise _Error(f"--out {out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, str] = {}
    if not args.no_plots:
        from analysis.plots import plot_behaviour, plot_curves

        if plot_curves(runs, out_dir / "curves.png") is not None:
            plots["curves"] = "curves.png"
        if plot_behaviour(runs, out_dir / "behaviour.png") is not None:
            plots["behaviour"] = "behaviour.png"
    from analysis.report import markdown, terminal_summary

    write_atomic(out_dir / "analysis.md", markdown(runs, plots, out_dir))
    write_atomic(
        out_dir / "analysis.json",
        json.dumps(_finite(to_json(runs)), indent=1, allow_nan=False, default=_num) + "\n",
    )
    seconds = time.perf_counter() - t0
    if not args.quiet:
        from analysis import make_console

        console = make_console()
        terminal_summary(runs, console)
        files = [
            "analysis.md",
            "analysis.json",
            *(f for f in ("curves.png", "behaviour.png") if f[:-4] in plots),
        ]
        console.print(f"wrote {', '.join(str(out_dir / f) for f in files)} in {seconds:.1f} s")
    return 0


def _num(value: Any) -> Any:
    """numpy scalars -> Python numbers (json's fallback)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    """JSON has no NaN: unmeasured values become null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, run, argv)


if __name__ == "__main__":
    sys.exit(main())
