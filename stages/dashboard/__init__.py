"""The live stage dashboard of ``kk-train``, its alerts, and ``kk-train watch RUN_DIR``.

The dashboard only reads run records (:mod:`curriculum.run_records`): the trainer hands it
each StepMetrics / CompletionSample / RunEvent as it writes them, and ``kk-train watch``
tails the same records from a run directory, so both show the same screen. Alerts compare
recorded numbers with :class:`stages.dashboard.alerts.AlertThresholds`; nothing is
recomputed.

Modules, each importing only those above it:

* ``formatting``: how numbers, durations and person mixes are written;
* ``alerts``: thresholds, the alert checks and their texts (the driver uses them too);
* ``state``: :class:`RunView`, what the dashboard knows about a run;
* ``widgets``: rich building blocks that know nothing about runs (sparkline, columns, bars);
* ``panels``: each section of the screen, built from a RunView;
* ``layout``: the full and compact screens, by terminal size;
* ``log_lines``: plain mode's line per step and the stage / event lines;
* ``summary``: the end-of-run table;
* ``stage_dashboard``: :class:`StageDashboard`, what the trainer calls (live, plain, silent);
* ``watch``: ``kk-train watch``, following a run directory.
"""

from stages.dashboard.layout import render_dashboard
from stages.dashboard.log_lines import plain_step_line
from stages.dashboard.stage_dashboard import StageDashboard
from stages.dashboard.state import RunView
from stages.dashboard.summary import summary_table
from stages.dashboard.watch import watch_main
from stages.dashboard.widgets import sparkline

__all__ = [
    "RunView",
    "StageDashboard",
    "plain_step_line",
    "render_dashboard",
    "sparkline",
    "summary_table",
    "watch_main",
]
