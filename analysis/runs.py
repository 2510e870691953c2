"""Load a run directory and compute everything ``kk-analyze`` reports about it."""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.behaviour import BehaviourTable, completion_features, summarize_group
from analysis.curves import (
    Curves,
    Phase,
    detect_phases,
    dynamic_sampling_summary,
    stage_summaries,
)
from curriculum import run_records as rr

MAX_BUCKETS = 40  # points per behaviour curve


class RunDirError(Exception):
    """A run directory that cannot be analysed (one-line message)."""


@dataclass
class RunAnalysis:
    run_dir: Path
    label: str
    info: Any  # RunInfo | None
    curves: Curves
    table: BehaviourTable
    stage_summary: list[dict[str, Any]]
    phases: list[Phase]
    verdict: str
    buckets: list[dict[str, Any]] = field(default_factory=list)
    stage_behaviour: list[dict[str, Any]] = field(default_factory=list)
    overall_behaviour: dict[str, Any] = field(default_factory=dict)
    completion_stages: list[tuple[str, int, int]] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    dynamic_sampling: list[dict[str, Any]] = field(default_factory=list)  # per stage, if on


def _read(path: Path, cls: type, what: str) -> list[Any]:
    try:
        return list(rr.iter_records(path, cls))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    except (TypeError, KeyError) as exc:
        raise RunDirError(f"{path}: record does not match the {what} schema ({exc})") from None


def iter_completion_dicts(path: Path) -> Iterator[dict[str, Any]]:
    """completions.jsonl rows as plain dicts, with ``rr.iter_records``'s rules (a trailing
    partial line is skipped). Building CompletionSample objects (``from_dict``) would double
    the cost of a 100k-line file, and the fields read here are never NaN."""
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # the writer is mid-append
            if line.strip():
                yield json.loads(line)


COMPLETION_KEYS = ("stage", "global_step", "people", "kind", "completion", "solution_text_format")


def _add_row(table: BehaviourTable, row: dict[str, Any]) -> None:
    f = completion_features(row["completion"], row["solution_text_format"], int(row["people"]))
    table.add(row["stage"], int(row["global_step"]), int(row["people"]), row["kind"], f)


def _load_serial(path: Path) -> BehaviourTable:
    table = BehaviourTable()
    n = 0
    try:
        for n, row in enumerate(iter_completion_dicts(path), start=1):
            try:
                _add_row(table, row)
            except KeyError as exc:
                raise RunDirError(f"{path}: record {n} lacks field {exc.args[0]!r}") from None
            except (TypeError, ValueError, AttributeError) as exc:
                raise RunDirError(f"{path}: record {n} has a bad field ({exc})") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: malformed JSON at record {n + 1} ({exc.msg})") from None
    return table


def _load_range(job: tuple[str, int, int]) -> BehaviourTable:
    """Features of the whole lines in bytes [start, end) (a worker process runs this)."""
    path, start, end = job
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    lines = data.split(b"\n")
    # The last piece is empty when the range ends at a newline; otherwise (only possible in
    # the last range) it is a partial line the writer is still appending: skipped.
    table = BehaviourTable()
    for line in lines[:-1]:
        if line.strip():
            _add_row(table, json.loads(line))
    return table


PARALLEL_MIN_BYTES = 8_000_000  # about 10k completions: below this, processes cost more


def _workers() -> int:
    env = os.environ.get("KK_ANALYZE_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


def load_behaviour(
    path: Path, workers: int | None = None, min_bytes: int = PARALLEL_MIN_BYTES
) -> BehaviourTable:
    """Stream completions.jsonl, keeping only per-completion features (not the texts).

    Large files are split at line boundaries over ``workers`` processes (default: up to 4
    CPUs, ``KK_ANALYZE_WORKERS`` overrides); results are concatenated in file order. Any
    error in a worker reruns the file serially for an exact one-line message.
    """
    workers = _workers() if workers is None else workers
    size = path.stat().st_size if path.is_file() else 0
    if workers <= 1 or size < min_bytes:
        return _load_serial(path)
    bounds = [0]
    with open(path, "rb") as fh:
        for i in range(1, workers):
            fh.seek(size * i // workers)
            fh.readline()
            bounds.append(max(fh.tell(), bounds[-1]))
    bounds.append(size)
    jobs = [(str(path), a, b) for a, b in itertools.pairwise(bounds) if b > a]
    import concurrent.futures
    import multiprocessing

    ctx = multiprocessing.get_context("fork") if sys.platform == "linux" else None
    try:
        with concurrent.futures.ProcessPoolExecutor(len(jobs), mp_context=ctx) as pool:
            parts = list(pool.map(_load_range, jobs))
    except (KeyError, TypeError, ValueError, AttributeError):
        return _load_serial(path)  # raises RunDirError naming the record
    table = parts[0]
    for part in parts[1:]:
        table.extend(part)
    return table


def bucket_index(steps: np.ndarray, max_buckets: int = MAX_BUCKETS) -> np.ndarray:
    """Bucket per completion: one per distinct step, or ``max_buckets`` equal step ranges.

    >>> bucket_index(np.array([1, 1, 2, 5])).tolist()
    [0, 0, 1, 2]
    >>> bucket_index(np.array([1, 2, 3, 4]), max_buckets=2).tolist()
    [0, 0, 1, 1]
    """
    distinct = np.unique(steps)
    if len(distinct) <= max_buckets:
        return np.searchsorted(distinct, steps)
    lo, hi = int(distinct[0]), int(distinct[-1])
    edges = np.linspace(lo, hi + 1, max_buckets + 1)
    return np.clip(np.searchsorted(edges, steps, side="right") - 1, 0, max_buckets - 1)


def analyse_run(run_dir: str | Path, label: str | None = None) -> RunAnalysis:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir}")
    metrics_path = run_dir / rr.METRICS_FILE
    completions_path = run_dir / rr.COMPLETIONS_FILE
    if not metrics_path.is_file() and not completions_path.is_file():
        raise RunDirError(f"{run_dir}: neither {rr.METRICS_FILE} nor {rr.COMPLETIONS_FILE} found")
    try:
        info = rr.read_run_info(run_dir)
    except (json.JSONDecodeError, TypeError) as exc:
        raise RunDirError(f"{run_dir / rr.RUN_INFO_FILE}: unreadable ({exc})") from None
    metrics = _read(metrics_path, rr.StepMetrics, "StepMetrics")
    metrics.sort(key=lambda m: m.global_step)
    curves = Curves(metrics)
    table = load_behaviour(completions_path)
    phases, verdict = detect_phases(curves)
    events = _read(run_dir / rr.EVENTS_FILE, rr.RunEvent, "RunEvent")
    name = label or (info.run_name if info is not None and info.run_name else run_dir.name)
    run = RunAnalysis(
        run_dir=run_dir,
        label=name,
        info=info,
        curves=curves,
        table=table,
        stage_summary=stage_summaries(curves),
        phases=phases,
        verdict=verdict,
        events=events,
        dynamic_sampling=dynamic_sampling_summary(curves),
    )
    if len(table):
        steps = np.array(table.step, dtype=np.int64)
        buckets = bucket_index(steps)
        for b in np.unique(buckets):
            members = np.flatnonzero(buckets == b)
            summary = summarize_group(table, members)
            summary["x"] = float(steps[members].mean())
            summary["first_step"] = int(steps[members].min())
            summary["last_step"] = int(steps[members].max())
            run.buckets.append(summary)
        # stages in order of first appearance by step
        stage_first: dict[str, int] = {}
        stage_last: dict[str, int] = {}
        for st, sp in zip(table.stage, table.step, strict=True):
            stage_first[st] = min(stage_first.get(st, sp), sp)
            stage_last[st] = max(stage_last.get(st, sp), sp)
        stage_arr = np.array(table.stage, dtype=object)
        for st in sorted(stage_first, key=stage_first.__getitem__):
            summary = summarize_group(table, np.flatnonzero(stage_arr == st))
            summary["stage"] = st
            run.stage_behaviour.append(summary)
            run.completion_stages.append((st, stage_first[st], stage_last[st]))
        run.overall_behaviour = summarize_group(table, np.arange(len(table)))
    return run
