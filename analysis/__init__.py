"""Run analysis and evaluation: ``kk-eval`` (held-out accuracy per person count) and
``kk-analyze`` (curves, behaviour statistics, phases, plots, report) over run directories.

Modules: ``analysis.behaviour`` (per-completion statistics), ``analysis.curves`` (metrics,
stage summaries, phase detection), ``analysis.runs`` (load a run directory),
``analysis.plots``, ``analysis.report``, ``analysis.synthetic`` (synthetic runs),
``analysis.eval_cli`` and ``analysis.analyze_cli``. Evaluation itself lives in
``stages.evaluation.heldout`` (the trainer runs it too).
"""

from __future__ import annotations

from typing import Any

WIDE = 160  # columns for tables written to a pipe or a log file


def make_console(stderr: bool = False) -> Any:
    """A rich Console; when output is not a terminal, wide enough for the tables."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=WIDE)
    return console


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Any, text: str) -> None:
    """``curriculum.run_records.atomic_write_text`` plus ordinary permissions (mkstemp makes
    the temp file 0600, and a report should be readable like any other file)."""
    import os

    from curriculum.run_records import atomic_write_text

    atomic_write_text(path, text)
    os.chmod(path, 0o666 & ~_umask())
