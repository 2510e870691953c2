"""What a run directory holds: the one schema shared by the trainer, the dashboard and analysis.

A run directory (``runs/<run-name>`` by default) contains::

    config.yaml          resolved configuration (written once, at start)
    run.json             RunInfo: run name, model, device, the stage plan
    state.json           curriculum state (owned by ``curriculum``; atomic writes)
    metrics.jsonl        one StepMetrics per optimizer step
    completions.jsonl    CompletionSample records (a sample every step)
    events.jsonl         RunEvent records: stage start / end, promotions, alerts, resume
    checkpoints/         HF checkpoints (stage ends and every K steps)
    report.md            final report

Writers append whole lines and flush, so a reader in another process (``kk-train watch``)
sees complete records or none. Readers skip a trailing partial line. This module imports
only the standard library, so the dashboard and ``analysis`` load fast.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

CONFIG_FILE = "config.yaml"
RUN_INFO_FILE = "run.json"
STATE_FILE = "state.json"
METRICS_FILE = "metrics.jsonl"
COMPLETIONS_FILE = "completions.jsonl"
EVENTS_FILE = "events.jsonl"
CHECKPOINTS_DIR = "checkpoints"
REPORT_FILE = "report.md"


@dataclass
class StagePlan:
    """One stage as planned at run start (what the dashboard timeline shows)."""

    name: str
    people: dict[str, float]  # person count (as str, JSON keys) -> weight
    num_generations: int
    prompts_per_step: int
    start_step: int  # first global step of the stage (1-based, inclusive)
    end_step: int  # last global step of the stage (inclusive); may end earlier on promotion
    temperature_start: float
    temperature_end: float
    temperature_schedule: str = "constant"
    learning_rate_start: float | None = None
    learning_rate_end: float | None = None


@dataclass
class RunInfo:
    run_name: str
    model: str
    device: str
    started_at: float  # unix time
    total_steps: int
    stages: list[StagePlan] = field(default_factory=list)
    output_dir: str = ""
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepMetrics:
    """One optimizer step. Ratios are in [0, 1]; None means "not measured at this step"."""

    stage: str
    global_step: int
    stage_step: int
    time: float  # unix time when the step ended
    step_seconds: float
    reward_mean: float
    reward_std: float
    rewards: dict[
        str, float
    ]  # reward function name -> batch mean (as TRL logs rewards/<name>/mean)
    format_error_ratio: float
    all_correct_ratio: float
    wrong_answer_ratio: float
    unparsed_ratio: float
    completion_length_mean: float
    completion_length_min: float
    completion_length_max: float
    truncation_ratio: float  # completions that hit max_completion_length without EOS
    frac_zero_std_groups: float  # trained groups whose rewards are all equal (no gradient)
    learning_rate: float
    temperature: float
    num_generations: int
    tokens_per_second: float
    loss: float | None = None
    kl: float | None = None
    entropy: float | None = None
    grad_norm: float | None = None
    # Answer collapse: the most common parsed role pattern in this batch (e.g. "KKKKK"),
    # its share of parsed answers, and its share among the true solutions of the batch.
    top_answer_pattern: str | None = None
    top_answer_pattern_share: float | None = None
    top_answer_pattern_truth_share: float | None = None
    exact_format_ratio: float | None = None  # 1 - format_error_ratio under the strict scheme
    lenient_accuracy: float | None = None  # answer right, read in any format
    # Dynamic sampling (stages.<name>.dynamic_sampling). frac_zero_std_groups above is the
    # share of the trained batch; these count what the step generated before filtering.
    # Records written before the feature load with the defaults (one round, nothing dropped).
    zero_std_groups_dropped: int = 0  # zero-std groups generated and not trained on
    generation_rounds: int = 1  # generation rounds of the step, its own included
    groups_generated: int | None = None  # groups generated in all rounds, before filtering
    zero_std_groups_generated: int | None = None  # zero-std groups among them
    batch_filled: bool | None = None  # all trained groups had reward spread; None = off
    # The batch the step's figures describe: its completions over all processes (gathered
    # before the ratios are computed) and the number of processes. Older records: None / 1.
    batch_completions: int | None = None
    world_size: int = 1


@dataclass
class CompletionSample:
    stage: str
    global_step: int
    puzzle_id: str
    people: int
    completion: str
    format: float
    answer: float
    total: float
    kind: str  # "correct" | "wrong" | "unparsed" | "format_error"
    reason: str
    solution_text_format: str  # the true answer
    temperature: float | None = None
    prompt: str | None = None


@dataclass
class RunEvent:
    time: float
    global_step: int
    kind: str  # "stage_start" | "stage_end" | "promotion" | "alert" | "resume" | "interrupt" | "run_end"
    stage: str | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: store them as strings so a NaN loss stays visible, not a crash."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _restore(value: Any) -> Any:
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def to_json_line(record: Any) -> str:
    data = asdict(record) if dataclasses.is_dataclass(record) else record
    return json.dumps(_clean(data), ensure_ascii=False, allow_nan=False) + "\n"


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build a record from a dict, ignoring unknown keys (newer writers) and restoring NaN."""
    known = {f.name for f in fields(cls)}
    kwargs = {k: _restore(v) for k, v in data.items() if k in known}
    if cls is RunInfo:
        kwargs["stages"] = [from_dict(StagePlan, s) for s in kwargs.get("stages", [])]
    return cls(**kwargs)


def append_record(path: str | os.PathLike[str], record: Any) -> None:
    """Append one record as a whole line (one write call, then flush)."""
    line = to_json_line(record)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()


def iter_records(path: str | os.PathLike[str], cls: type | None = None) -> Iterator[Any]:
    """Yield records of a JSONL file; a trailing partial line (writer mid-append) is skipped."""
    p = Path(path)
    if not p.exists():
        return
    with open(p, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # partial line being written right now
            line = line.strip()
            if not line:
                continue
            data = json.loads(line)
            yield from_dict(cls, data) if cls is not None else _restore(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; keep normal permissions
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_run_info(run_dir: str | os.PathLike[str], info: RunInfo) -> None:
    atomic_write_text(Path(run_dir) / RUN_INFO_FILE, json.dumps(_clean(asdict(info)), indent=2))


def read_run_info(run_dir: str | os.PathLike[str]) -> RunInfo | None:
    p = Path(run_dir) / RUN_INFO_FILE
    if not p.exists():
        return None
    return from_dict(RunInfo, json.loads(p.read_text(encoding="utf-8")))


def read_metrics(run_dir: str | os.PathLike[str]) -> list[StepMetrics]:
    return list(iter_records(Path(run_dir) / METRICS_FILE, StepMetrics))


def read_completions(run_dir: str | os.PathLike[str]) -> list[CompletionSample]:
    return list(iter_records(Path(run_dir) / COMPLETIONS_FILE, CompletionSample))


def read_events(run_dir: str | os.PathLike[str]) -> list[RunEvent]:
    return list(iter_records(Path(run_dir) / EVENTS_FILE, RunEvent))


def read_state(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    p = Path(run_dir) / STATE_FILE
    if not p.exists():
        return None
    return json.loads(p.read_text(encoding="utf-8"))
