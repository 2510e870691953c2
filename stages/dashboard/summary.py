"""The end-of-run table: per stage its status, steps, wall time and how it ended.

Printed once when the run finishes (and by ``kk-train watch`` for a finished run).
"""

from __future__ import annotations

from rich.table import Table

from stages.dashboard.formatting import duration, num, pct
from stages.dashboard.state import RunView

__all__ = ["summary_table"]


def summary_table(view: RunView) -> Table:
    """End-of-run table: per stage steps, wall time, and the last-5-step means of
    accuracy, format error, mean length, zero-std groups and truncation."""
    table = Table(
        title="run summary (accuracy etc.: mean of each stage's last 5 steps)",
        box=None,  # no borders: fits 80 columns with all nine columns
        pad_edge=False,
        header_style="bold underline",
    )
    table.add_column("stage", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for col in ("steps", "time", "accuracy", "fmt err", "mean len", "zero-std", "trunc"):
        table.add_column(col, justify="right", no_wrap=True)
    for name in view.stage_names():
        st = view.stats.get(name)
        if st is None or not st.steps:
            table.add_row(name, view.status(name), "0", "–", "–", "–", "–", "–", "–")
            continue
        table.add_row(
            name,
            view.status(name),
            str(st.steps),
            duration(st.seconds),
            pct(st.tail_mean("all_correct_ratio")),
            pct(st.tail_mean("format_error_ratio")),
            num(st.tail_mean("completion_length_mean"), ".1f"),
            pct(st.tail_mean("frac_zero_std_groups")),
            pct(st.tail_mean("truncation_ratio")),
        )
    return table
