"""The curriculum driver: one TRL ``GRPOTrainer`` run per stage, chained through checkpoints.

``run_training(config, run_dir, stages=..., resume=...)`` does, in order:

1. stage 0: the base model (``stages.stage_inputs.resolve_base_model``), the held-out set
   (``curriculum.data.heldout_records``) and the base model's held-out evaluation;
2. for each stage: a ``stages.trainer.KKGRPOTrainer`` resumed from the previous stage's
   checkpoint, so the global step, the optimizer state, the RNG state and the LR scheduler
   carry on; the callback (``stages.callbacks``) writes run records every step, anneals the
   temperature, saves ``checkpoints/step-<N>`` every ``run.checkpoint_every`` steps and may
   promote early; the stage ends with ``checkpoints/stage-<name>``, the trainer is released
   (``stages.trainer.release_trainer``: its model, optimizer, accelerate state and vLLM
   engine, then a collection and an empty device cache) and the checkpoint gets its
   held-out evaluation (``stages.run_eval``);
3. ``report.md`` (``stages.evaluation.report``).

With several processes (``accelerate launch``) every process runs all of this: the process
group is up before the base evaluation, every evaluation is sharded over the processes,
and the step records and promotion decisions are global (``stages.callbacks``), so all
processes cross every stage boundary at the same global step.

Where the stages start and end comes from ``stages.planning`` (``curriculum.schedules``'s
stage bounds over the steps ``state.json`` records), so an early promotion moves every later
stage, its LR and its step range in ``run.json``. ``--resume`` continues from ``state.json``'s
last checkpoint: metrics and events written after it are dropped, the stage's used prompts
are skipped, and the run ends at the same global step as an uninterrupted one. A stage end
and its checkpoint are committed by one ``state.json`` write (``RunContext.adopt_checkpoint``),
so a kill -9 anywhere leaves the stage ended or not, never half of it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers.utils import logging as hf_logging

from curriculum import run_records as rr
from curriculum.config import ConfigError, to_yaml
from curriculum.data import heldout_records, stage_dataset_records, stage_seed
from curriculum.schedules import run_learning_rate
from curriculum.state import CurriculumState, StateError
from stages.callbacks import BatchRecorder, KKRunCallback, RecordingReward
from stages.checkpoints import (
    checkpoint_step,
    copy_checkpoint,
    find_resume_checkpoint,
    recover_checkpoints,
    truncate_records,
)
from stages.dashboard.alerts import AlertThresholds, AlertTracker, alert_event, check_alerts
from stages.errors import RunInterrupted, RunSetupError
from stages.evaluation.report import write_report
from stages.grpo_config import build_grpo_config
from stages.planning import prompts_per_optimizer_step, run_bounds, stage_plans
from stages.run_context import RunContext, print_line, safe_call
from stages.run_eval import (
    EVAL_DIR,
    HELDOUT_FILE,
    evaluate_into_run,
    needs_evaluation,
    whole_model_loading,
    write_heldout,
)
from stages.scaleout.launch import peft_config_from, wait_for_everyone
from stages.stage_inputs import (
    build_dataset,
    build_reward_funcs,
    load_policy,
    resolve_base_model,
)
from stages.trainer import KKGRPOTrainer, free_device_memory, quiet_trainer, release_trainer

__all__ = ["Driver", "RunInterrupted", "RunSetupError", "quiet_libraries", "run_training"]

TRAINER_DIR = ".trainer"  # Trainer.output_dir: checkpoints are written here, then moved


def run_training(
    config: Any,
    run_dir: str | os.PathLike[str],
    *,
    stages: Sequence[str] | None = None,
    resume: bool = False,
    dashboard: Any = None,
    printer: Callable[[str], None] = print_line,
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
        printer: Callable[[str], None] = print_line,
        world_size: int = 1,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.selected = list(stages) if stages else list(config.stages)
        self.resume = resume
        self.world_size = world_size
        self.ctx = RunContext(self.run_dir, config, dashboard=dashboard)
        if self.ctx.is_main:  # the other processes keep the context's silent printer
            self.ctx.printer = printer
        self.base_path: Path | str | None = None
        self.heldout: list[dict[str, Any]] = []
        # Where evaluations run: the process group's device (several processes), else the
        # GPU when there is one, else the CPU.
        self.device: torch.device | None = None
        # Checkpoint moves wait for every process; independent of any one stage's trainer.
        self.ctx.barrier = wait_for_everyone

    # -- public --------------------------------------------------------------------------------
    def run(self) -> Path:
        ctx = self.ctx
        self._install_sigint()
        try:
            self._prepare()
            resume_ckpt = self._resume_point() if self.resume else None
            self._stage0()
            self._check_interrupt()
            self._join_process_group()
            self._evaluate("base")
            done = list(ctx.state.completed_stages)
            for name in done:  # a kill between a stage end and its evaluation
                if self.config.eval.after_each_stage and name in self.selected:
                    self._evaluate(f"stage-{name}", name)
            for name in self.selected:
                if name in done:
                    continue
                self._run_stage(name, resume_ckpt)
                resume_ckpt = None
            if ctx.is_main:
                write_report(self.run_dir)
            ctx.event("run_end", None, "run finished", step=ctx.state.global_step)
            if ctx.dashboard is not None:
                safe_call(ctx.dashboard.finish)
            return self.run_dir
        finally:
            self._restore_sigint()

    # -- setup ---------------------------------------------------------------------------------
    def _prepare(self) -> None:
        run_dir = self.run_dir
        state_path = run_dir / rr.STATE_FILE
        try:
            saved = CurriculumState.load(run_dir)
        except StateError as err:
            raise RunSetupError(str(err)) from None
        if self.resume:
            if saved is None:
                raise RunSetupError(
                    f"--resume: no {rr.STATE_FILE} in {run_dir} (nothing to resume)"
                )
        elif state_path.is_file() and (run_dir / rr.METRICS_FILE).exists():
            names = list(self.config.stages)
            before = names[: names.index(self.selected[0])]
            completed = set(saved.completed_stages) if saved is not None else set()
            if self.selected == names or not set(before) <= completed:
                raise RunSetupError(
                    f"run directory {run_dir} already holds a run; pass --resume to continue it "
                    "or --output-dir for a new one"
                )
        if self.ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / rr.CHECKPOINTS_DIR).mkdir(exist_ok=True)
            recover_checkpoints(run_dir / rr.CHECKPOINTS_DIR)  # a replace killed half-way
            # Leftovers of a save that was killed half-way: never adopted, safe to drop.
            shutil.rmtree(run_dir / rr.CHECKPOINTS_DIR / TRAINER_DIR, ignore_errors=True)
            if not self.resume:
                rr.atomic_write_text(run_dir / rr.CONFIG_FILE, to_yaml(self.config))
        self.ctx.state = saved if saved is not None else CurriculumState(stage=self.selected[0])
        self._alerts_setup()

    def _alerts_setup(self) -> None:
        try:
            thresholds = AlertThresholds.from_mapping(dict(self.config.dashboard.alerts or {}))
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err).splitlines()[0]) from None
        tracker = AlertTracker()

        def checker(history: Sequence[rr.StepMetrics]) -> list[rr.RunEvent]:
            new = tracker.update(check_alerts(history, thresholds))
            return [alert_event(a, time.time()) for a in new]

        self.ctx.alert_checker = checker

    def _resume_point(self) -> Path | None:
        ctx, state = self.ctx, self.ctx.state
        ckpt = find_resume_checkpoint(self.run_dir, state.last_checkpoint)
        if ckpt is None:
            # Nothing saved yet: start over in the same directory.
            if ctx.is_main:
                truncate_records(self.run_dir, 0)
            state.global_step, state.completed_stages = 0, []
            state.stage_starts, state.stage_ends = {}, {}
            ctx.history = []
            ctx.event("resume", None, "resume: no checkpoint yet, starting from the base model")
            return None
        step = checkpoint_step(ckpt) or 0
        # Forget what happened after the checkpoint: it will happen again.
        state.stage_ends = {k: v for k, v in state.stage_ends.items() if v <= step}
        dropped = truncate_records(self.run_dir, step, state.stage_ends) if ctx.is_main else 0
        ctx.history = [m for m in rr.read_metrics(self.run_dir) if m.global_step <= step]
        state.stage_starts = {k: v for k, v in state.stage_starts.items() if v <= step + 1}
        state.completed_stages = [n for n in state.completed_stages if n in state.stage_ends]
        state.global_step = step
        rel = str(ckpt.relative_to(self.run_dir))
        state.last_checkpoint = rel
        ctx.save_state()
        ctx.event(
            "resume",
            state.stage,
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
            if isinstance(self.base_path, Path):  # adapters name it: absolute, for any cwd
                self.base_path = self.base_path.resolve()
        finally:
            torch.set_num_threads(threads)  # pre-training may have changed it
        self.heldout = heldout_records(self.config) if self.config.eval.enabled else []
        if self.heldout and ctx.is_main:
            write_heldout(self.run_dir, self.heldout)
        bounds = run_bounds(self.config, ctx.state, self.selected)
        existing = rr.read_run_info(self.run_dir)
        info = rr.RunInfo(
            run_name=str(self.config.run.name),
            model=str(self.config.model.name_or_path),
            device=_device_name(self.world_size),
            started_at=existing.started_at if existing and self.resume else time.time(),
            total_steps=max(last for _, _, last in bounds) if bounds else 0,
            stages=stage_plans(self.config, bounds),
            output_dir=str(self.run_dir),
            extra={
                "base_model": str(self.base_path),
                "eval_set": str(self.run_dir / EVAL_DIR / HELDOUT_FILE) if self.heldout else None,
                "selected_stages": self.selected,
                "torch_threads": torch.get_num_threads(),
            },
        )
        if ctx.is_main:
            rr.write_run_info(self.run_dir, info)
        if ctx.dashboard is not None:
            safe_call(ctx.dashboard.start, info)

    def _join_process_group(self) -> None:
        """With several processes, set up the process group and this process's device now,
        as the first stage's GRPOConfig would (transformers does it when the device is first
        asked for), so the base evaluation can shard and gather before any trainer exists."""
        if self.world_size <= 1:
            return
        args = build_grpo_config(
            self.config,
            self.selected[0],
            output_dir=self.run_dir / rr.CHECKPOINTS_DIR / TRAINER_DIR,
            world_size=self.world_size,
        )
        self.device = args.device

    # -- one stage --------------------------------------------------------------------------
    def _start_checkpoint(self, name: str, resume_ckpt: Path | None) -> Path | None:
        """The checkpoint stage ``name`` starts from: the resume point, else the last finished
        earlier stage's checkpoint, else None (the base model)."""
        if resume_ckpt is not None and checkpoint_step(resume_ckpt) is not None:
            return resume_ckpt
        names = list(self.config.stages)
        for prev in reversed(names[: names.index(name)]):
            cand = self.run_dir / rr.CHECKPOINTS_DIR / f"stage-{prev}"
            if prev in self.ctx.state.stage_ends and checkpoint_step(cand) is not None:
                return cand
        return None

    def _run_stage(self, name: str, resume_ckpt: Path | None) -> None:
        ctx, config, state = self.ctx, self.config, self.ctx.state
        start_ckpt = self._start_checkpoint(name, resume_ckpt)
        start_step = checkpoint_step(start_ckpt) if start_ckpt is not None else 0
        assert start_step is not None
        state.start_stage(name, start_step)
        bounds = run_bounds(config, state, self.selected)
        state.stage_bounds = [[n, first, last] for n, first, last in bounds]
        ctx.save_state()
        first, last = state.bounds_of(name)
        done_in_stage = start_step - first + 1  # > 0 when resuming inside the stage
        promoted = self._promoted_at(name, start_step) if done_in_stage > 0 else None
        if (
            start_step >= last
            or promoted
            or (start_ckpt is not None and start_ckpt.name == f"stage-{name}")
        ):
            # The checkpoint already ends the stage (killed before the stage end was recorded).
            self._finish_stage(name, start_step, start_ckpt, promoted=promoted)
            return
        step, promoted, saved = self._train_stage(
            name, start_ckpt, first, last, bounds, done_in_stage
        )
        # The trainer, its model and optimizer went with _train_stage's frame.
        free_device_memory()
        # saved None: our step-<N> checkpoint already holds the stage's last weights
        existing = self.run_dir / rr.CHECKPOINTS_DIR / f"step-{step}" if saved is None else None
        self._finish_stage(name, step, existing, promoted=promoted, saved=saved)

    def _train_stage(
        self,
        name: str,
        start_ckpt: Path | None,
        first: int,
        last: int,
        bounds: list[tuple[str, int, int]],
        done_in_stage: int,
    ) -> tuple[int, str | None, Path | None]:
        """Train stage ``name``; (last global step, promotion reason, the trainer's fresh
        ``checkpoint-<N>`` of the last step, or None when our ``step-<N>`` already holds
        it). The trainer is released before returning; the
        stage end and its checkpoint are committed by ``_finish_stage``."""
        ctx, config = self.ctx, self.config
        stage_cfg = config.stages[name]
        start_step = checkpoint_step(start_ckpt) if start_ckpt is not None else 0
        args = build_grpo_config(
            config,
            name,
            output_dir=self.run_dir / rr.CHECKPOINTS_DIR / TRAINER_DIR,
            world_size=self.world_size,
            first_step=first,
        )
        # LoRA (model.peft): the policy is the base model; TRL wraps it in a fresh adapter and
        # the trainer's resume loads start_ckpt's adapter weights into it.
        peft_config = peft_config_from(config.model.peft)
        policy = start_ckpt if start_ckpt is not None and peft_config is None else self.base_path
        model, tok = load_policy(policy, config)
        prefill_think = bool(config.prompt.prefill_think)
        exclude = {str(r.get("id")) for r in self.heldout}
        dataset, dropped = build_dataset(
            stage_dataset_records(config, name, exclude_ids=exclude),
            tok,
            prefill_think=prefill_think,
            max_prompt_length=args.kk_max_prompt_length,
            shuffle_seed=stage_seed(config, name) if args.shuffle_dataset else None,
            skip=round(done_in_stage * prompts_per_optimizer_step(config, name)),
        )
        specs = stage_cfg.rewards if stage_cfg.rewards is not None else config.rewards
        funcs, weights = build_reward_funcs(specs, prefill_think)
        rounds = args.max_generation_rounds  # dynamic sampling: None = off
        recorder = BatchRecorder(prefilled_think=prefill_think, weights=weights, keep=rounds or 1)
        wrapped = [RecordingReward(f, recorder, first=i == 0) for i, f in enumerate(funcs)]
        callback = KKRunCallback(
            ctx,
            stage_name=name,
            stage_cfg=stage_cfg,
            first_step=first,
            last_step=last,
            recorder=recorder,
            prefilled_think=prefill_think,
        )
        trainer = KKGRPOTrainer(
            model=model,
            args=args,
            reward_funcs=wrapped,
            train_dataset=dataset,
            processing_class=tok,
            callbacks=[callback],
            lr_at=lambda step: run_learning_rate(config, step, bounds),
            ref_model_path=str(self.base_path) if float(args.beta) != 0.0 else None,
            weights_loaded_from=str(start_ckpt) if policy is start_ckpt else None,
            peft_config=peft_config,
            max_generation_rounds=rounds,
        )
        quiet_trainer(trainer)
        callback.trainer = trainer
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
            safe_call(ctx.dashboard.stage_start, name)
        else:
            ctx.printer(f"== stage {name}: global steps {first}-{last}")
        trainer.train(resume_from_checkpoint=str(start_ckpt) if start_ckpt is not None else None)
        step = int(trainer.state.global_step)
        if ctx.interrupted:
            self._save_interrupt_checkpoint(trainer, name, step)
            raise RunInterrupted(f"interrupted at global step {step}")
        saved = None
        if checkpoint_step(self.run_dir / rr.CHECKPOINTS_DIR / f"step-{step}") != step:
            trainer._save_checkpoint(trainer.model, trial=None)
            saved = Path(trainer.args.output_dir) / f"checkpoint-{step}"
        release_trainer(trainer)
        return step, callback.promoted, saved

    def _finish_stage(
        self,
        name: str,
        step: int,
        existing: Path | None,
        promoted: str | None = None,
        saved: Path | None = None,
    ) -> None:
        """Record the end of stage ``name`` at ``step`` and commit its checkpoint, evaluate
        it, refresh run.json. ``existing``: one of our checkpoints that already ends the stage
        (linked in as ``stage-<name>``); ``saved``: the trainer's fresh checkpoint (moved in)."""
        ctx, state = self.ctx, self.ctx.state
        target = f"stage-{name}"
        # Written before the commit: a resume drops the end of a stage state.json lacks.
        ctx.event(
            "stage_end",
            name,
            f"stage {name} ended at global step {step}"
            + (f" (promoted: {promoted})" if promoted else ""),
            {"global_step": step, "promoted": promoted},
            step=step,
        )

        def end_stage(st: CurriculumState) -> None:
            # The state moves to the next stage and shifts the later stages' bounds.
            if promoted:
                st.promote(name, step, promoted)
            else:
                st.complete_stage(name, step)

        # One state.json write commits the stage checkpoint and the stage end together.
        root = self.run_dir / rr.CHECKPOINTS_DIR
        src = saved
        # existing is linked, not moved: state.json names it until the commit
        if src is None and existing is not None and existing.name != target:
            src = copy_checkpoint(existing, root, target) if ctx.is_main else root / target
        if src is not None:
            ctx.adopt_checkpoint(src, target, step, then=end_stage)
        else:
            end_stage(state)
            ctx.save_state()
        if ctx.dashboard is not None:
            safe_call(ctx.dashboard.stage_end, name)
        if self.config.eval.after_each_stage or name == self.selected[-1]:
            self._evaluate(f"stage-{name}", name)
        # Refresh run.json: promotions move later stages' step ranges.
        info = rr.read_run_info(self.run_dir) if ctx.is_main else None
        if info is not None:
            bounds = [(n, int(first), int(last)) for n, first, last in state.stage_bounds]
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
            {"checkpoint": ctx.state.last_checkpoint},
            step=step,
        )

    def _promoted_at(self, name: str, step: int) -> str | None:
        """The reason of a promotion of stage ``name`` at ``step`` that events.jsonl records
        and state.json does not (killed between the step's checkpoint and the stage end)."""
        if name in self.ctx.state.stage_ends:
            return None
        for ev in rr.read_events(self.run_dir):
            if ev.kind == "promotion" and ev.stage == name and ev.global_step == step:
                return str(ev.data.get("reason") or ev.message)
        return None

    # -- evaluation ----------------------------------------------------------------------------
    def _evaluate(self, label: str, stage: str | None = None) -> None:
        """Evaluate the base model (``base``) or a stage checkpoint (``stage-<name>``), loaded
        afresh on this process's device, on every process (``stages.run_eval``)."""
        if not needs_evaluation(self.ctx, label, self.heldout):
            return
        path = self.base_path if label == "base" else self.run_dir / rr.CHECKPOINTS_DIR / label
        assert path is not None
        with whole_model_loading():
            model, tok = load_policy(path, self.config)
        device = self.device
        if device is None and torch.cuda.is_available():
            device = torch.device("cuda")  # one process: its GPU, as the trainer uses
        if device is not None and device.type != "cpu":  # load_policy loads onto the CPU
            model.to(device)
        evaluate_into_run(
            self.ctx,
            label,
            model,
            tok,
            self.heldout,
            stage=stage,
            on_progress=lambda done, total: self._check_interrupt(),
        )

    # -- interrupts -----------------------------------------------------------------------------
    def _check_interrupt(self) -> None:
        if self.ctx.interrupted:
            raise RunInterrupted("interrupted")

    def _install_sigint(self) -> None:
        self._old_handler = None
        if threading.current_thread() is not threading.main_thread():
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


def _device_name(processes: int = 1) -> str:
    """The device line of run.json and report.md: what one process used, and how many ran.

    >>> _device_name(2).endswith(", 2 processes")
    True
    """
    if torch.cuda.is_available():
        name = f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    else:
        n = torch.get_num_threads()
        name = f"cpu ({n} thread{'' if n == 1 else 's'})"
    return name + (f", {processes} processes" if processes > 1 else "")


def quiet_libraries() -> None:
    """Silence warnings from TRL / transformers / datasets that are noise for this driver."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"  # else DeepSpeed (when installed) warns on import
    for name in ("transformers", "trl", "datasets", "accelerate", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(trl|transformers|torch)\..*")
    warnings.filterwarnings("ignore", category=FutureWarning)
