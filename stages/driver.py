"""The curriculum driver: one TRL ``GRPOTrainer`` run per stage, chained through checkpoints.

``run_training(config, run_dir=..., stages=..., resume=...)`` does, in order:

1. stage 0: the base model (``stages.tiny.base.ensure_base_model`` for ``model.name_or_path:
   tiny``, else the given folder or hub id); the held-out set (``curriculum.data``); the
   base model's held-out evaluation;
2. for each stage: a ``KKGRPOTrainer`` resumed from the previous stage's checkpoint, so the
   global step, the optimizer state (AdamW moments), the RNG state and the LR scheduler carry
   on (the LR follows ``curriculum.schedules`` over the global step through a ``LambdaLR``);
   the callback writes run records every step, anneals the temperature, saves
   ``checkpoints/step-<N>`` every ``run.checkpoint_every`` steps and may promote early; the
   stage ends with ``checkpoints/stage-<name>`` and a held-out evaluation;
3. ``report.md`` (``stages.report``).

The reference model of the KL term is the base model for the whole run (TRL would otherwise
load it from the folder the policy was loaded from, i.e. the previous stage's checkpoint).
``--resume`` continues from ``state.json``'s last checkpoint: metrics written after it are
dropped, the stage's used prompts are skipped, and the run ends at the same global step as an
uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR
from trl import GRPOTrainer
from trl.trainer.grpo_trainer import RepeatSampler

from stages import run_records as rr
from stages.callbacks import BatchRecorder, KKRunCallback, RecordingReward
from stages.grpo_config import build_grpo_config

TRAINER_DIR = ".trainer"  # Trainer.output_dir: checkpoints are written here, then moved
EVAL_DIR = "eval"
HELDOUT_FILE = "heldout.jsonl"


class RunInterrupted(Exception):
    """Ctrl-C: the driver saved a checkpoint (when a stage was running) and stopped."""


class RunSetupError(ValueError):
    """A user error found while setting up the run (bad run directory, missing checkpoint)."""


def is_main_process() -> bool:
    """Rank 0 of a distributed launch (torchrun / accelerate set RANK), or a single process.

    Only the main process writes the run directory, prints and drives the dashboard; every
    process trains (and saves its own checkpoint shards through transformers).
    """
    try:
        return int(os.environ.get("RANK", "0")) == 0
    except ValueError:
        return True


def _config_error(message: str) -> Exception:
    from curriculum.config import ConfigError

    return ConfigError(message)


# ----------------------------------------------------------------------------------- trainer


class KKGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with the run's LR curve over the global step and chain-friendly resume.

    * ``lr_factor(global_step) -> float`` multiplies ``args.learning_rate`` (1-based global
      step); the ``LambdaLR`` built from it is continuous across stages because its step
      counter is restored from the previous stage's ``scheduler.pt`` and the factor is
      re-applied after loading.
    * The sampler never shuffles: the driver orders (and, on resume, rotates) the dataset.
    * ``ref_model_path``: folder the reference model is loaded from (the base model).
    * ``weights_loaded_from``: the policy was loaded from this checkpoint already, so the
      resume does not load the weights a second time.
    """

    def __init__(
        self,
        *args: Any,
        lr_factor: Callable[[int], float] | None = None,
        ref_model_path: str | None = None,
        weights_loaded_from: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._kk_lr_factor = lr_factor or (lambda step: 1.0)
        self._kk_weights_from = weights_loaded_from
        model = kwargs.get("model", args[0] if args else None)
        original = None
        if ref_model_path is not None and hasattr(model, "config"):
            # TRL builds the reference from config._name_or_path; point it at the base model.
            original = model.config._name_or_path
            model.config._name_or_path = str(ref_model_path)
        try:
            super().__init__(*args, **kwargs)
        finally:
            if original is not None:
                model.config._name_or_path = original

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        if self.lr_scheduler is None:
            factor = self._kk_lr_factor

            # A plain function (not an object) so LambdaLR's state_dict does not pickle it.
            def lr_lambda(done_steps: int) -> float:
                return factor(done_steps + 1)

            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lr_lambda)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or self.lr_scheduler is None:
            return
        # The scheduler restored its step counter; re-apply this run's curve at that step
        # (the LR of the next step), whatever curve the saved scheduler followed.
        sched = self.lr_scheduler
        done = int(self.state.global_step)
        sched.last_epoch = done
        base = float(self.args.learning_rate)
        sched.base_lrs = [base for _ in sched.base_lrs]
        lr = base * self._kk_lr_factor(done + 1)
        for group in self.optimizer.param_groups:
            group["initial_lr"] = base
            group["lr"] = lr
        sched._last_lr = [lr for _ in sched.base_lrs]

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        if (
            model is None
            and self._kk_weights_from is not None
            and Path(resume_from_checkpoint).resolve() == Path(self._kk_weights_from).resolve()
        ):
            return  # same weights already in memory
        super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _get_train_sampler(self, dataset: Any = None) -> Any:
        if dataset is None:
            dataset = self.train_dataset
        return RepeatSampler(
            data_source=dataset,
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            shuffle=False,
            seed=self.args.seed,
        )


# ----------------------------------------------------------------------------- LR schedule


def effective_bounds(
    config: Any, actual: dict[str, tuple[int, int | None]], skipped: Sequence[str] = ()
) -> list[tuple[str, int, int]]:
    """(name, first, last) global steps per stage: actual where known, planned lengths after.

    ``actual[name] = (first, last)`` for finished stages (last may be below the plan after a
    promotion) and ``(first, None)`` for the running one. ``skipped`` stages take no steps.

    >>> from curriculum.config import load_config
    >>> cfg = load_config(None, ["stages.warmup.steps=10", "stages.explore.steps=20",
    ...                          "stages.anneal.steps=5"], check_paths=False)
    >>> effective_bounds(cfg, {"warmup": (1, 4)})
    [('warmup', 1, 4), ('explore', 5, 24), ('anneal', 25, 29)]
    """
    out, nxt = [], 1
    for name, stage in config.stages.items():
        if name in skipped and name not in actual:
            out.append((name, nxt, nxt - 1))
            continue
        first, last = actual.get(name, (nxt, None))
        if last is None:
            last = first + int(stage.steps) - 1
        out.append((name, first, last))
        nxt = last + 1
    return out


def make_lr_factor(config: Any, bounds: list[tuple[str, int, int]]) -> Callable[[int], float]:
    """Multiplier of train.learning_rate at a global step: curriculum.schedules' curve over the
    (effective) run, times the stage's learning_rate_scale."""
    from curriculum.schedules import learning_rate_at

    train = config.train
    base = float(train.learning_rate)
    total = max(last for _, _, last in bounds) if bounds else 1
    decay_start = 0
    if train.lr_decay_from is not None:
        for name, first, _ in bounds:
            if name == train.lr_decay_from:
                decay_start = first - 1

    def factor(global_step: int) -> float:
        scale = 1.0
        for name, first, last in bounds:
            if first <= global_step <= last:
                scale = float(config.stages[name].learning_rate_scale)
        if base <= 0:
            return 0.0
        return learning_rate_at(train, global_step, total, decay_start=decay_start) * scale / base

    return factor


# ----------------------------------------------------------------------------- run context


class RunContext:
    """What the callbacks share with the driver: run directory, records, dashboard, state."""

    def __init__(self, run_dir: Path, config: Any, *, dashboard: Any = None) -> None:
        self.run_dir = run_dir
        self.config = config
        self.dashboard = dashboard
        self.history: list[rr.StepMetrics] = rr.read_metrics(run_dir)
        self.interrupted = False
        self.alert_checker: Callable[[Sequence[rr.StepMetrics]], list[rr.RunEvent]] | None = None
        self.state: dict[str, Any] = rr.read_state(run_dir) or {}
        self.is_main = is_main_process()
        self.printer: Callable[[str], None] = _print if self.is_main else _silent
        self.barrier: Callable[[], None] = lambda: None  # set to the trainer's wait_for_everyone

    # -- events and dashboard ---------------------------------------------------------------
    def event(
        self,
        kind: str,
        stage: str | None,
        message: str = "",
        data: dict[str, Any] | None = None,
        *,
        step: int | None = None,
    ) -> rr.RunEvent:
        ev = rr.RunEvent(
            time=time.time(),
            global_step=int(step if step is not None else self.state.get("global_step", 0)),
            kind=kind,
            stage=stage,
            message=message,
            data=dict(data or {}),
        )
        if self.is_main:
            rr.append_record(self.run_dir / rr.EVENTS_FILE, ev)
        if self.dashboard is not None:
            _safe(self.dashboard.event, ev)
        elif message:
            self.printer(f"[{kind}] {message}")
        return ev

    def emit(self, ev: rr.RunEvent) -> None:
        """Append a ready-made event (alerts) and show it."""
        if self.is_main:
            rr.append_record(self.run_dir / rr.EVENTS_FILE, ev)
        if self.dashboard is not None:
            _safe(self.dashboard.event, ev)
        else:
            self.printer(ev.message)

    def dashboard_step(
        self, metrics: rr.StepMetrics, sample: rr.CompletionSample | None
    ) -> list[rr.RunEvent] | None:
        """Show a step. With a dashboard, returns the alert events it raised (to record);
        without one, prints a plain line and returns None (the driver checks alerts)."""
        if self.dashboard is None:
            self.printer(_plain_line(metrics))
            return None
        try:
            alerts = self.dashboard.step(metrics, sample) or []
        except Exception as err:  # the dashboard must never stop a run
            warnings.warn(f"dashboard error: {err}", stacklevel=2)
            return None
        try:
            from stages.alerts import alert_event
        except ImportError:
            return []
        return [alert_event(a, time.time()) for a in alerts]

    # -- state.json ---------------------------------------------------------------------------
    def save_state(self, **updates: Any) -> None:
        self.state.update(updates)  # every process keeps the same state in memory
        if self.is_main:
            _save_state(self.run_dir, self.state)

    # -- checkpoints --------------------------------------------------------------------------
    def adopt_checkpoint(self, src: Path, name: str, global_step: int) -> Path:
        """Move a checkpoint TRL just wrote into checkpoints/<name> (a rename: all or nothing).

        Every process calls it after the trainer's save; they first wait for each other so that
        all shards are in the folder before the main process renames it."""
        self.barrier()
        rel = f"{rr.CHECKPOINTS_DIR}/{name}"
        ckpt_root = self.run_dir / rr.CHECKPOINTS_DIR
        if not self.is_main:
            self.state.update(last_checkpoint=rel, global_step=int(global_step))
            self.barrier()
            return ckpt_root / name
        dst = ckpt_root / name
        ckpt_root.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(src, dst)
        self.save_state(last_checkpoint=rel, global_step=int(global_step))
        self.prune_checkpoints()
        self.barrier()
        return dst

    def prune_checkpoints(self) -> None:
        keep = max(1, int(self.config.run.keep_checkpoints))
        root = self.run_dir / rr.CHECKPOINTS_DIR
        steps = sorted(
            (int(p.name.split("-", 1)[1]), p)
            for p in root.glob("step-*")
            if p.is_dir() and p.name.split("-", 1)[1].isdigit()
        )
        last = self.state.get("last_checkpoint")
        for _, path in steps[:-keep]:
            if last and path == self.run_dir / last:
                continue
            shutil.rmtree(path, ignore_errors=True)


def _safe(fn: Callable, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as err:  # the dashboard must never stop a run
        warnings.warn(f"dashboard error: {err}", stacklevel=2)


def _silent(line: str) -> None:
    del line


def _print(line: str) -> None:
    print(line, flush=True)


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _plain_line(m: rr.StepMetrics) -> str:
    return (
        f"step {m.global_step} [{m.stage} {m.stage_step}] reward {_fmt(m.reward_mean)} "
        f"fmt_err {_fmt(m.format_error_ratio, '.2f')} correct {_fmt(m.all_correct_ratio, '.2f')} "
        f"len {_fmt(m.completion_length_mean, '.0f')} zero_std {_fmt(m.frac_zero_std_groups, '.2f')} "
        f"kl {_fmt(m.kl, '.4f')} lr {_fmt(m.learning_rate, '.2e')} T {_fmt(m.temperature, '.2f')} "
        f"{_fmt(m.step_seconds, '.1f')}s"
    )


def _save_state(run_dir: Path, state: dict[str, Any]) -> None:
    try:
        from curriculum.state import CurriculumState  # type: ignore[import-not-found]
    except ImportError:
        CurriculumState = None
    if CurriculumState is not None:
        try:
            import dataclasses

            known = {f.name for f in dataclasses.fields(CurriculumState)}
            obj = CurriculumState(**{k: v for k, v in state.items() if k in known})
            obj.save(run_dir)
            extra = {k: v for k, v in state.items() if k not in known}
            if not extra:
                return
            data = json.loads((run_dir / rr.STATE_FILE).read_text(encoding="utf-8"))
            data.update(extra)
            rr.atomic_write_text(run_dir / rr.STATE_FILE, json.dumps(data, indent=2))
            return
        except (TypeError, ValueError, AttributeError):
            pass  # fall back to our own writer (same file, same field names)
    rr.atomic_write_text(run_dir / rr.STATE_FILE, json.dumps(state, indent=2, default=str))


# ------------------------------------------------------------------------------ model & data


def default_cache_dir() -> Path:
    env = os.environ.get("KK_CACHE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / ".cache"


def resolve_base_model(
    config: Any, progress: Callable[[int, int, str], None] | None = None
) -> Path | str:
    """Stage 0: the base model folder (the tiny model is built or reused from the cache)."""
    name = str(config.model.name_or_path)
    if name == "tiny":
        from stages.tiny.base import ensure_base_model
        from stages.tiny.model import TinyConfigError

        cache = Path(config.model.cache_dir) if config.model.cache_dir else default_cache_dir()
        try:
            return ensure_base_model(dict(config.model.tiny or {}), cache, progress=progress)
        except TinyConfigError as err:
            raise _config_error(str(err).splitlines()[0]) from None
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise _config_error(f"model.name_or_path {name} is not a model folder (no config.json)")
        return path
    if name.startswith((".", "/", "~")) or (os.sep in name and not _looks_like_hub_id(name)):
        raise _config_error(f"model path not found: {name} (model.name_or_path)")
    return name  # a hub id; needs network or the local HF cache


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/"))


def _torch_dtype(name: str) -> Any:
    return {
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
        "auto": "auto",
    }.get(str(name), torch.float32)


def load_policy(path: Path | str, config: Any) -> tuple[Any, Any]:
    """Model and tokenizer from a folder (the tiny model's word-level tokenizer included)."""
    from stages.model_io import load_model_and_tokenizer

    if Path(str(path)).is_dir():
        model, tok = load_model_and_tokenizer(path, dtype=_torch_dtype(config.model.dtype))
    else:  # hub id
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs = dict(config.model.init_kwargs or {})
        kwargs.setdefault("dtype", _torch_dtype(config.model.dtype))
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        tok = AutoTokenizer.from_pretrained(str(path))
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    model.train()
    return model, tok


def render_prompt(record: dict[str, Any], tokenizer: Any, prefill_think: bool) -> str:
    from stages.evaluation import render_prompt as _render

    return _render(record, tokenizer, prefill_think)


def heldout_records(config: Any) -> list[dict[str, Any]]:
    """The held-out evaluation set (curriculum.data; disjoint from every stage's data)."""
    try:
        from curriculum.data import heldout_records as _heldout
    except ImportError:  # pragma: no cover - older curriculum without data helpers
        return _fallback_heldout(config)
    return list(_heldout(config))


def stage_records(config: Any, stage_name: str, exclude_ids: set[str]) -> list[dict[str, Any]]:
    """The stage's training puzzles (curriculum.data), none of them in ``exclude_ids``."""
    try:
        from curriculum.data import stage_dataset_records
    except ImportError:  # pragma: no cover
        return _fallback_stage(config, stage_name, exclude_ids)
    return list(stage_dataset_records(config, stage_name, exclude_ids=exclude_ids))


def _fallback_heldout(config: Any) -> list[dict[str, Any]]:
    from kk_puzzles import generate

    ev = config.eval
    out: list[dict[str, Any]] = []
    for people in ev.people:
        out += generate(
            int(people), int(ev.n), seed=int(ev.seed) + int(people), depth=ev.depth, width=ev.width
        )
    return out


def _fallback_stage(config: Any, name: str, exclude: set[str]) -> list[dict[str, Any]]:
    from kk_puzzles import generate

    st = config.stages[name]
    n = int(st.dataset_size or int(st.steps) * int(st.prompts_per_step))
    people = {int(k): float(v) for k, v in st.people.items()}
    return generate(
        people,
        n,
        seed=_stage_seed(config, name),
        depth=st.depth,
        width=st.width,
        exclude_ids=exclude,
    )


def _json_col(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def build_dataset(
    records: Sequence[dict[str, Any]],
    tokenizer: Any,
    *,
    prefill_think: bool,
    max_prompt_length: int | None,
    shuffle_seed: int | None,
    skip: int = 0,
) -> tuple[Any, int]:
    """A ``datasets.Dataset`` for TRL (dict/list columns as JSON strings); returns (dataset,
    dropped) where dropped counts prompts longer than ``max_prompt_length`` tokens."""
    from datasets import Dataset

    recs = list(records)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(recs)
    rows, dropped = [], 0
    for rec in recs:
        prompt = render_prompt(rec, tokenizer, prefill_think)
        if max_prompt_length is not None:
            if len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) > max_prompt_length:
                dropped += 1
                continue
        rows.append(
            {
                "prompt": prompt,
                "id": str(rec.get("id", "")),
                "people": int(rec.get("people", len(rec.get("names", [])))),
                "names": _json_col(rec.get("names", [])),
                "solution": _json_col(rec.get("solution", [])),
                "knight_knave": _json_col(rec.get("knight_knave", {})),
                "solution_text_format": str(rec.get("solution_text_format", "")),
            }
        )
    if not rows:
        raise _config_error(
            f"no training prompt fits train.max_prompt_length={max_prompt_length}; raise it"
        )
    if skip:
        k = skip % len(rows)
        rows = rows[k:] + rows[:k]
    return Dataset.from_list(rows), dropped


def build_reward_funcs(
    specs: Sequence[dict[str, Any]], prefill_think: bool
) -> tuple[list[Any], dict[str, float]]:
    """Reward callables from YAML specs; ``prefilled_think`` follows ``prompt.prefill_think``
    unless a spec sets it (a prefilled ``<think>`` is not in the completion)."""
    from rewards.registry import build_rewards, describe

    fixed = []
    for spec in specs:
        spec = dict(spec)
        name = spec.get("name")
        try:
            params = describe(name) if isinstance(name, str) else {}
        except ValueError:
            params = {}
        if "prefilled_think" in params and "prefilled_think" not in spec:
            spec["prefilled_think"] = bool(prefill_think)
        fixed.append(spec)
    try:
        funcs = build_rewards(fixed)
    except ValueError as err:
        raise _config_error(str(err).splitlines()[0]) from None
    weights = {f.__name__: float(getattr(f, "weight", 1.0)) for f in funcs}
    return funcs, weights


# ------------------------------------------------------------------------------ checkpoints


def checkpoint_step(path: Path) -> int | None:
    """Global step of a checkpoint folder (its trainer_state.json), None when incomplete."""
    p = Path(path) / "trainer_state.json"
    if not p.is_file():
        return None
    try:
        return int(json.loads(p.read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError):
        return None


def find_resume_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path | None:
    """state.json's last checkpoint when complete, else the newest complete one on disk."""
    last = state.get("last_checkpoint")
    if last and checkpoint_step(run_dir / last) is not None:
        return run_dir / last
    best: tuple[int, Path] | None = None
    for p in (run_dir / rr.CHECKPOINTS_DIR).glob("*-*"):
        if p.name.startswith("."):
            continue
        step = checkpoint_step(p)
        if step is not None and (best is None or step > best[0]):
            best = (step, p)
    return best[1] if best else None


def truncate_records(run_dir: Path, last_step: int) -> int:
    """Drop metrics / completions written after ``last_step`` (they will be redone)."""
    dropped = 0
    for name in (rr.METRICS_FILE, rr.COMPLETIONS_FILE):
        path = run_dir / name
        if not path.exists():
            continue
        keep, lost = [], 0
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            if not line.endswith("\n"):
                lost += 1
                continue
            try:
                step = int(json.loads(line).get("global_step", 0))
            except (ValueError, AttributeError):
                lost += 1
                continue
            if step <= last_step:
                keep.append(line)
            else:
                lost += 1
        if lost:
            rr.atomic_write_text(path, "".join(keep))
        if name == rr.METRICS_FILE:
            dropped = lost
    return dropped


# --------------------------------------------------------------------------------- the run


def _device_name() -> str:
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'' if n == 1 else 's'})"


def stage_plans(config: Any, bounds: list[tuple[str, int, int]]) -> list[rr.StagePlan]:
    factor = make_lr_factor(config, bounds)
    base = float(config.train.learning_rate)
    out = []
    for name, first, last in bounds:
        st = config.stages[name]
        t = st.temperature
        out.append(
            rr.StagePlan(
                name=name,
                people={str(k): float(v) for k, v in st.people.items()},
                num_generations=int(st.num_generations),
                prompts_per_step=int(st.prompts_per_step),
                start_step=first,
                end_step=last,
                temperature_start=float(t.start),
                temperature_end=float(t.start if t.end is None else t.end),
                temperature_schedule=str(t.schedule),
                learning_rate_start=base * factor(first) if last >= first else None,
                learning_rate_end=base * factor(last) if last >= first else None,
            )
        )
    return out


def _stage_seed(config: Any, name: str) -> int:
    st = config.stages[name]
    if getattr(st, "seed", None) is not None:
        return int(st.seed)
    return int(config.run.seed) * 1000 + list(config.stages).index(name) + 17


def _prompts_per_optimizer_step(config: Any, name: str) -> float:
    from curriculum.validate import batch_plan

    plan = batch_plan(config, name)
    st = config.stages[name]
    per_gen = int(st.prompts_per_step)
    return (
        per_gen
        * plan.gradient_accumulation_steps
        / (plan.steps_per_generation * int(config.train.num_iterations))
    )


class Driver:
    """One run directory, one config; ``run()`` trains the selected stages."""

    def __init__(
        self,
        config: Any,
        run_dir: Path,
        *,
        stages: Sequence[str] | None = None,
        resume: bool = False,
        dashboard: Any = None,
        printer: Callable[[str], None] = _print,
        world_size: int = 1,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.selected = list(stages) if stages else list(config.stages)
        self.resume = resume
        self.world_size = world_size
        self.ctx = RunContext(self.run_dir, config, dashboard=dashboard)
        self.ctx.printer = printer
        self.base_path: Path | str | None = None
        self.heldout: list[dict[str, Any]] = []

    # -- public --------------------------------------------------------------------------------
    def run(self) -> Path:
        ctx = self.ctx
        self._install_sigint()
        try:
            self._prepare()
            resume_ckpt = self._resume_point() if self.resume else None
            self._stage0()
            self._check_interrupt()
            self._evaluate("base", None)
            done = list(ctx.state.get("completed_stages", []))
            for name in done:  # a kill between a stage end and its evaluation
                if self.config.eval.after_each_stage and name in self.selected:
                    self._evaluate(f"stage-{name}", None, name)
            for name in self.selected:
                if name in done:
                    continue
                self._run_stage(name, resume_ckpt)
                resume_ckpt = None
            if ctx.is_main:
                self._write_report()
            ctx.event("run_end", None, "run finished", step=ctx.state.get("global_step", 0))
            if ctx.dashboard is not None:
                _safe(ctx.dashboard.finish)
            return self.run_dir
        finally:
            self._restore_sigint()

    # -- setup ---------------------------------------------------------------------------------
    def _prepare(self) -> None:
        from curriculum.config import to_yaml

        run_dir = self.run_dir
        state_path = run_dir / rr.STATE_FILE
        if self.resume:
            if not state_path.is_file():
                raise RunSetupError(
                    f"--resume: no {rr.STATE_FILE} in {run_dir} (nothing to resume)"
                )
        elif state_path.is_file() and (run_dir / rr.METRICS_FILE).exists():
            state = rr.read_state(run_dir) or {}
            first = self.selected[0]
            names = list(self.config.stages)
            prev = names[: names.index(first)]
            if self.selected == names or not set(prev) <= set(state.get("completed_stages", [])):
                raise RunSetupError(
                    f"run directory {run_dir} already holds a run; pass --resume to continue it "
                    "or --output-dir for a new one"
                )
        if self.ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / rr.CHECKPOINTS_DIR).mkdir(exist_ok=True)
            # Leftovers of a save that was killed half-way: never adopted, safe to drop.
            shutil.rmtree(run_dir / rr.CHECKPOINTS_DIR / TRAINER_DIR, ignore_errors=True)
            if not self.resume:
                rr.atomic_write_text(run_dir / rr.CONFIG_FILE, to_yaml(self.config))
        self.ctx.state = rr.read_state(run_dir) or {}
        self.ctx.state.setdefault("completed_stages", [])
        self.ctx.state.setdefault("promotions", [])
        self.ctx.state.setdefault("global_step", 0)
        self.ctx.state.setdefault("stage_starts", {})
        self.ctx.state.setdefault("stage_ends", {})
        self.ctx.state.setdefault("stage", self.selected[0])
        self.ctx.state.setdefault("last_checkpoint", None)
        self._alerts_setup()

    def _alerts_setup(self) -> None:
        try:
            from stages.alerts import AlertThresholds, AlertTracker, alert_event, check_alerts
        except ImportError:
            return
        try:
            thresholds = AlertThresholds.from_mapping(dict(self.config.dashboard.alerts or {}))
        except (TypeError, ValueError) as err:
            raise _config_error(str(err).splitlines()[0]) from None
        tracker = AlertTracker()

        def checker(history: Sequence[rr.StepMetrics]) -> list[rr.RunEvent]:
            new = tracker.update(check_alerts(history, thresholds))
            return [alert_event(a, time.time()) for a in new]

        self.ctx.alert_checker = checker

    def _resume_point(self) -> Path | None:
        ctx = self.ctx
        ckpt = find_resume_checkpoint(self.run_dir, ctx.state)
        if ckpt is None:
            # Nothing saved yet: start over in the same directory.
            if ctx.is_main:
                truncate_records(self.run_dir, 0)
            ctx.state.update(global_step=0, completed_stages=[], stage_starts={}, stage_ends={})
            ctx.history = []
            ctx.event("resume", None, "resume: no checkpoint yet, starting from the base model")
            return None
        step = checkpoint_step(ckpt) or 0
        dropped = truncate_records(self.run_dir, step) if ctx.is_main else 0
        ctx.history = [m for m in rr.read_metrics(self.run_dir) if m.global_step <= step]
        ends = {k: v for k, v in ctx.state.get("stage_ends", {}).items() if v <= step}
        starts = {k: v for k, v in ctx.state.get("stage_starts", {}).items() if v <= step + 1}
        completed = [n for n in ctx.state.get("completed_stages", []) if n in ends]
        rel = str(ckpt.relative_to(self.run_dir))
        ctx.save_state(
            global_step=step,
            last_checkpoint=rel,
            completed_stages=completed,
            stage_ends=ends,
            stage_starts=starts,
        )
        ctx.event(
            "resume",
            ctx.state.get("stage"),
            f"resume from {rel} at global step {step} ({dropped} later step records dropped)",
            {"checkpoint": rel, "dropped_steps": dropped},
            step=step,
        )
        return ckpt

    def _stage0(self) -> None:
        ctx = self.ctx

        def progress(done: int, total: int, message: str = "") -> None:
            self._check_interrupt()
            if total and (done == total or done % max(1, total // 10) == 0):
                ctx.printer(f"[stage 0] base model: {done}/{total} {message}".rstrip())

        threads = torch.get_num_threads()
        try:
            self.base_path = resolve_base_model(self.config, progress=progress)
        finally:
            torch.set_num_threads(threads)  # pre-training may have changed it
        self.heldout = heldout_records(self.config) if self.config.eval.enabled else []
        eval_dir = self.run_dir / EVAL_DIR
        if self.heldout and self.ctx.is_main:
            eval_dir.mkdir(exist_ok=True)
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.heldout)
            rr.atomic_write_text(eval_dir / HELDOUT_FILE, text)
        bounds = self._bounds()
        total = max(last for _, _, last in bounds) if bounds else 0
        existing = rr.read_run_info(self.run_dir)
        info = rr.RunInfo(
            run_name=str(self.config.run.name),
            model=str(self.config.model.name_or_path),
            device=_device_name(),
            started_at=existing.started_at if existing and self.resume else time.time(),
            total_steps=total,
            stages=stage_plans(self.config, bounds),
            output_dir=str(self.run_dir),
            extra={
                "base_model": str(self.base_path),
                "eval_set": str(eval_dir / HELDOUT_FILE) if self.heldout else None,
                "selected_stages": self.selected,
                "torch_threads": torch.get_num_threads(),
            },
        )
        if ctx.is_main:
            rr.write_run_info(self.run_dir, info)
        if ctx.dashboard is not None:
            _safe(ctx.dashboard.start, info)

    def _bounds(self) -> list[tuple[str, int, int]]:
        state = self.ctx.state
        starts, ends = state.get("stage_starts", {}), state.get("stage_ends", {})
        actual: dict[str, tuple[int, int | None]] = {}
        for name in self.config.stages:
            if name in starts:
                actual[name] = (int(starts[name]), ends.get(name))
        names = list(self.config.stages)
        first_selected = names.index(self.selected[0])
        skipped = [n for n in names[:first_selected] if n not in ends]
        return effective_bounds(self.config, actual, skipped)

    # -- one stage --------------------------------------------------------------------------
    def _run_stage(self, name: str, resume_ckpt: Path | None) -> None:
        ctx, config = self.ctx, self.config
        stage_cfg = config.stages[name]
        state = ctx.state
        names = list(config.stages)
        # Where does the stage start from?
        if resume_ckpt is not None and checkpoint_step(resume_ckpt) is not None:
            start_ckpt: Path | None = resume_ckpt
        else:
            start_ckpt = None
            idx = names.index(name)
            for prev in reversed(names[:idx]):
                cand = self.run_dir / rr.CHECKPOINTS_DIR / f"stage-{prev}"
                if prev in state.get("stage_ends", {}) and checkpoint_step(cand) is not None:
                    start_ckpt = cand
                    break
        start_step = checkpoint_step(start_ckpt) if start_ckpt is not None else 0
        assert start_step is not None
        starts = dict(state.get("stage_starts", {}))
        if name in starts and start_step >= int(starts[name]):
            first = int(starts[name])  # resuming inside the stage
        else:
            first = start_step + 1
            starts[name] = first
        steps = int(stage_cfg.steps)
        last = first + steps - 1
        done_in_stage = start_step - first + 1
        ctx.save_state(stage=name, stage_starts=starts)
        bounds = self._bounds()
        ctx.save_state(stage_bounds=[[n, f, la] for n, f, la in bounds])
        if start_step >= last or (start_ckpt is not None and start_ckpt.name == f"stage-{name}"):
            # The checkpoint already ends the stage (killed before the stage end was recorded).
            self._finish_stage(name, None, start_step, start_ckpt)
            return

        args = build_grpo_config(
            config,
            name,
            output_dir=self.run_dir / rr.CHECKPOINTS_DIR / TRAINER_DIR,
            world_size=self.world_size,
            first_step=first,
        )
        model_path = start_ckpt if start_ckpt is not None else self.base_path
        model, tok = load_policy(model_path, config)

        exclude = {str(r.get("id")) for r in self.heldout}
        records = stage_records(config, name, exclude)
        skip = round(done_in_stage * _prompts_per_optimizer_step(config, name))
        dataset, dropped = build_dataset(
            records,
            tok,
            prefill_think=bool(config.prompt.prefill_think),
            max_prompt_length=args.kk_max_prompt_length,
            shuffle_seed=_stage_seed(config, name) if args.shuffle_dataset else None,
            skip=skip,
        )
        specs = stage_cfg.rewards if stage_cfg.rewards is not None else config.rewards
        funcs, weights = build_reward_funcs(specs, bool(config.prompt.prefill_think))
        recorder = BatchRecorder(prefilled_think=bool(config.prompt.prefill_think), weights=weights)
        wrapped = [RecordingReward(f, recorder, first=i == 0) for i, f in enumerate(funcs)]
        callback = KKRunCallback(
            ctx,
            stage_name=name,
            stage_cfg=stage_cfg,
            first_step=first,
            last_step=last,
            recorder=recorder,
            prefilled_think=bool(config.prompt.prefill_think),
        )
        trainer = KKGRPOTrainer(
            model=model,
            args=args,
            reward_funcs=wrapped,
            train_dataset=dataset,
            processing_class=tok,
            callbacks=[callback],
            lr_factor=make_lr_factor(config, bounds),
            ref_model_path=str(self.base_path) if float(args.beta) != 0.0 else None,
            weights_loaded_from=str(start_ckpt) if start_ckpt is not None else None,
        )
        _quiet_trainer(trainer)
        callback.trainer = trainer
        ctx.barrier = trainer.accelerator.wait_for_everyone
        if done_in_stage <= 0:
            ctx.event(
                "stage_start",
                name,
                f"stage {name}: steps {first}-{last}, people {dict(stage_cfg.people)}, "
                f"n={stage_cfg.num_generations}, {stage_cfg.prompts_per_step} prompts/step",
                {"first_step": first, "last_step": last, "dropped_long_prompts": dropped},
                step=start_step,
            )
        if ctx.dashboard is not None:
            _safe(ctx.dashboard.stage_start, name)
        else:
            ctx.printer(f"== stage {name}: global steps {first}-{last}")
        trainer.train(resume_from_checkpoint=str(start_ckpt) if start_ckpt is not None else None)
        step = int(trainer.state.global_step)
        if ctx.interrupted:
            self._save_interrupt_checkpoint(trainer, name, step)
            raise RunInterrupted(f"interrupted at global step {step}")
        self._finish_stage(name, trainer, step, None, promoted=callback.promoted)

    def _finish_stage(
        self,
        name: str,
        trainer: Any,
        step: int,
        existing: Path | None,
        promoted: str | None = None,
    ) -> None:
        ctx = self.ctx
        target = f"stage-{name}"
        if trainer is not None:
            same_step = self.run_dir / rr.CHECKPOINTS_DIR / f"step-{step}"
            if checkpoint_step(same_step) == step:
                ctx.adopt_checkpoint(same_step, target, step)
            else:
                trainer._save_checkpoint(trainer.model, trial=None)
                src = Path(trainer.args.output_dir) / f"checkpoint-{step}"
                ctx.adopt_checkpoint(src, target, step)
        elif existing is not None and existing.name != target and ctx.is_main:
            dst = self.run_dir / rr.CHECKPOINTS_DIR / target
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(existing, dst)
            ctx.save_state(last_checkpoint=f"{rr.CHECKPOINTS_DIR}/{target}", global_step=step)
        ends = dict(ctx.state.get("stage_ends", {}))
        ends[name] = step
        completed = list(ctx.state.get("completed_stages", []))
        if name not in completed:
            completed.append(name)
        promotions = list(ctx.state.get("promotions", []))
        if promoted:
            promotions.append({"stage": name, "global_step": step, "reason": promoted})
        ctx.save_state(stage_ends=ends, completed_stages=completed, promotions=promotions)
        names = list(self.config.stages)
        nxt = next((n for n in names[names.index(name) + 1 :] if n not in completed), None)
        ctx.save_state(stage=nxt, stage_bounds=[[n, f, la] for n, f, la in self._bounds()])
        ctx.event(
            "stage_end",
            name,
            f"stage {name} ended at global step {step}"
            + (f" (promoted: {promoted})" if promoted else ""),
            {"global_step": step, "promoted": promoted},
            step=step,
        )
        if ctx.dashboard is not None:
            _safe(ctx.dashboard.stage_end, name)
        model = trainer.model if trainer is not None else None
        tok = trainer.processing_class if trainer is not None else None
        if self.config.eval.after_each_stage or name == self.selected[-1]:
            self._evaluate(f"stage-{name}", (model, tok) if model is not None else None, name)
        if trainer is not None:
            del trainer
        # Refresh run.json: promotions move later stages' step ranges.
        info = rr.read_run_info(self.run_dir) if ctx.is_main else None
        if info is not None:
            bounds = self._bounds()
            info.stages = stage_plans(self.config, bounds)
            info.total_steps = max(last for _, _, last in bounds) if bounds else 0
            rr.write_run_info(self.run_dir, info)

    def _save_interrupt_checkpoint(self, trainer: Any, name: str, step: int) -> None:
        ctx = self.ctx
        path = self.run_dir / rr.CHECKPOINTS_DIR / f"step-{step}"
        if checkpoint_step(path) != step:
            trainer._save_checkpoint(trainer.model, trial=None)
            src = Path(trainer.args.output_dir) / f"checkpoint-{step}"
            ctx.adopt_checkpoint(src, f"step-{step}", step)
        ctx.event(
            "interrupt",
            name,
            f"interrupted: checkpoint saved at global step {step}; continue with --resume",
            {"checkpoint": ctx.state.get("last_checkpoint")},
            step=step,
        )

    # -- evaluation and report ---------------------------------------------------------------
    def _evaluate(
        self, label: str, loaded: tuple[Any, Any] | None, stage: str | None = None
    ) -> None:
        cfg = self.config.eval
        if not cfg.enabled or not self.heldout or not self.ctx.is_main:
            return  # evaluation runs on the main process only
        if label == "base" and not cfg.eval_base:
            return
        out = self.run_dir / EVAL_DIR / f"{label}.json"
        if out.exists():
            return
        from stages.evaluation import evaluate

        if loaded is None:
            path = self.base_path if label == "base" else self.run_dir / rr.CHECKPOINTS_DIR / label
            model, tok = load_policy(path, self.config)
        else:
            model, tok = loaded
        self.ctx.printer(f"[eval] {label}: {len(self.heldout)} held-out puzzles")
        was_training = model.training
        t0 = time.perf_counter()

        def progress(done: int, total: int) -> None:
            self._check_interrupt()

        result = evaluate(
            model,
            tok,
            self.heldout,
            samples=int(cfg.samples),
            temperature=float(cfg.temperature),
            max_new_tokens=int(cfg.max_new_tokens),
            batch_size=int(cfg.batch_size),
            prefill_think=bool(self.config.prompt.prefill_think),
            seed=int(cfg.seed),
            progress=progress,
        )
        model.train(was_training)
        data = result.to_dict()
        data["label"] = label
        data["stage"] = stage
        data["global_step"] = int(self.ctx.state.get("global_step", 0))
        rr.atomic_write_text(out, json.dumps(data, indent=2))
        parts = [
            f"{p}p strict {g.strict.value:.3f} lenient {g.lenient.value:.3f}"
            for p, g in sorted(result.groups.items())
        ]
        self.ctx.event(
            "eval",
            stage,
            f"eval {label} ({time.perf_counter() - t0:.0f}s): " + "; ".join(parts),
            {"label": label, "file": str(out.relative_to(self.run_dir))},
        )

    def _write_report(self) -> None:
        from stages.report import write_report

        write_report(self.run_dir)

    # -- interrupts -----------------------------------------------------------------------------
    def _check_interrupt(self) -> None:
        if self.ctx.interrupted:
            raise RunInterrupted("interrupted")

    def _install_sigint(self) -> None:
        self._old_handler = None
        if not _is_main_thread():
            return

        def handler(signum: int, frame: Any) -> None:
            if self.ctx.interrupted:
                raise KeyboardInterrupt
            self.ctx.interrupted = True
            print(
                "\nInterrupt: finishing the current step, saving a checkpoint "
                "(Ctrl-C again to quit without saving)",
                file=sys.stderr,
                flush=True,
            )

        self._old_handler = signal.signal(signal.SIGINT, handler)

    def _restore_sigint(self) -> None:
        if self._old_handler is not None:
            signal.signal(signal.SIGINT, self._old_handler)


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _quiet_trainer(trainer: Any) -> None:
    """Drop the console printer and progress bar callbacks: the dashboard prints instead."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)


def quiet_libraries() -> None:
    """Silence warnings from TRL / transformers / datasets that are noise for this driver."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"  # else DeepSpeed (when installed) warns on import
    for name in ("transformers", "trl", "datasets", "accelerate", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(trl|transformers|torch)\..*")
    warnings.filterwarnings("ignore", category=FutureWarning)


def run_training(
    config: Any,
    run_dir: str | os.PathLike[str],
    *,
    stages: Sequence[str] | None = None,
    resume: bool = False,
    dashboard: Any = None,
    printer: Callable[[str], None] = _print,
    world_size: int = 1,
) -> Path:
    """Train the selected stages of ``config`` into ``run_dir``; returns the run directory."""
    driver = Driver(
        config,
        Path(run_dir),
        stages=stages,
        resume=resume,
        dashboard=dashboard,
        printer=printer,
        world_size=world_size,
    )
    return driver.run()


__all__ = [
    "Driver",
    "KKGRPOTrainer",
    "RunInterrupted",
    "RunSetupError",
    "build_dataset",
    "build_reward_funcs",
    "effective_bounds",
    "find_resume_checkpoint",
    "make_lr_factor",
    "quiet_libraries",
    "run_training",
    "truncate_records",
]
