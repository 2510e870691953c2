"""``KKGRPOTrainer``: TRL's ``GRPOTrainer`` with the run's LR curve and chain-friendly resume.

Each stage is one trainer, resumed from the previous stage's checkpoint, so the global step,
the optimizer state (AdamW moments), the RNG state and the LR scheduler carry on. Built here:

* the LR follows ``lr_at(global_step)`` (``curriculum.schedules.run_learning_rate`` over the
  run's stage bounds) through a ``LambdaLR`` whose step counter is restored from the previous
  stage's ``scheduler.pt``; the curve is re-applied after loading, so the saved scheduler's own
  curve never matters;
* the sampler never shuffles: the driver orders (and, on resume, rotates) the dataset;
* the reference model of the KL term is loaded from ``ref_model_path`` (the base model), not
  from the folder the policy came from (the previous stage's checkpoint);
* ``weights_loaded_from``: the policy is already in memory, so resuming does not load it twice;
* a resume inside a stage restores the checkpoint's RNG state again right before its first
  generation, so the resumed steps sample what the uninterrupted run sampled (transformers
  restores it when the epoch starts, and the data loader then draws its seed from it, a
  draw the uninterrupted run made at the stage start);
* every step's log (TRL's metrics, what wandb records) also holds ``kk/stage`` and
  ``kk/temperature``;
* TRL's fused log-prob head is checked (``stages.temperature.check_fused_heads``): the
  temperature schedule must reach it;
* dynamic sampling (``max_generation_rounds``, from ``stages.<name>.dynamic_sampling``): the
  step's generation, TRL's ``_generate_and_score_completions``, runs again for the stage's
  next prompts until the batch holds no zero-std group (``stages.dynamic_sampling`` has the
  rules). It is the one place to refill: ``_prepare_inputs`` calls it once per generation
  batch and buffers the result for ``steps_per_generation`` micro-batches, so the batch
  size, the step count and the LR schedule never see the extra rounds. The rewards come
  from ``_calculate_rewards``, and a refill round's entries in ``_metrics`` are removed, so
  TRL logs what the step's own prompts gave, as without dynamic sampling. These internals are
  checked when the trainer is built (``check_dynamic_sampling_hooks``);
* vLLM colocated on a CPU (``stages.scaleout.vllm_cpu``): the engine is built in the
  policy's dtype, eager and in-process, and TRL's weight sync, which fails on vLLM's CPU
  backend, is replaced by vLLM's ``reload_weights``; on CUDA TRL's own code runs.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerState
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from trl import GRPOTrainer
from trl.trainer.grpo_trainer import RepeatSampler

from stages.dynamic_sampling import (
    FillPlan,
    UnknownOutputKey,
    groups_with_signal,
    merge_round_outputs,
    plan_fill,
    refill_rows,
)
from stages.errors import RunSetupError
from stages.scaleout.vllm_cpu import cpu_engine_arguments, use_reload_weights, wants_cpu_engine
from stages.temperature import TrlInternalsError, check_fused_heads

__all__ = [
    "ROW_COLUMN",
    "KKGRPOTrainer",
    "allow_indexed_cpu_loads",
    "check_dynamic_sampling_hooks",
    "free_device_memory",
    "quiet_trainer",
    "release_trainer",
]

# Dataset column with each row's position, added when dynamic sampling is on: a refill
# round continues after the batch's last row. Removed before TRL sees a row, so reward
# functions get the columns they always got.
ROW_COLUMN = "kk_dataset_row"


class KKGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with the run's LR curve over the global step and chain-friendly resume.

    ``lr_at(global_step) -> float`` is the learning rate at a 1-based global step (None: the
    constant ``args.learning_rate``). ``max_generation_rounds`` turns dynamic sampling on
    with that many generation rounds per step (None: off, TRL's generation as it is); the
    last step's ``FillPlan`` is then ``kk_last_fill``.
    """

    def __init__(
        self,
        *args: Any,
        lr_at: Callable[[int], float] | None = None,
        ref_model_path: str | None = None,
        weights_loaded_from: str | None = None,
        max_generation_rounds: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._kk_lr_at = lr_at
        self._kk_weights_from = weights_loaded_from
        self._kk_max_rounds = max_generation_rounds
        self._kk_round_rewards: torch.Tensor | None = None
        self._kk_rng_from: str | None = None  # checkpoint whose RNG state the next step loads
        self.kk_last_fill: FillPlan | None = None
        if max_generation_rounds is not None:
            if max_generation_rounds < 1:
                raise ValueError(f"max_generation_rounds is {max_generation_rounds}; use >= 1")
            dataset = kwargs.get("train_dataset")
            if dataset is None or not hasattr(dataset, "add_column"):
                raise RunSetupError(
                    "dynamic sampling needs train_dataset= as a datasets.Dataset (a refill "
                    "reads the stage's next rows by position)"
                )
            kwargs["train_dataset"] = dataset.add_column(ROW_COLUMN, list(range(len(dataset))))
        model = kwargs.get("model", args[0] if args else None)
        original = None
        if ref_model_path is not None and hasattr(model, "config"):
            # TRL builds the reference from config._name_or_path; point it at the base model.
            original = model.config._name_or_path
            model.config._name_or_path = str(ref_model_path)
        cpu_vllm = wants_cpu_engine(kwargs.get("args", args[1] if len(args) > 1 else None))
        try:
            dtype = getattr(model, "dtype", "float32")
            with cpu_engine_arguments(dtype) if cpu_vllm else contextlib.nullcontext():
                super().__init__(*args, **kwargs)
        finally:
            if original is not None:
                model.config._name_or_path = original
        if cpu_vllm:
            use_reload_weights(self)
        check_fused_heads(self)
        if max_generation_rounds is not None:
            check_dynamic_sampling_hooks(self)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """TRL's step log plus the curriculum's series under ``kk/`` (what ``report_to``
        loggers such as wandb record beside TRL's metrics): ``kk/stage``, the 1-based
        position of the stage, and ``kk/temperature``, the step's sampling temperature."""
        if self.model.training:
            logs["kk/stage"] = int(getattr(self.args, "kk_stage_index", 0)) + 1
            logs["kk/temperature"] = float(self.temperature)
        super().log(logs, start_time)

    def _lr_factor(self, global_step: int) -> float:
        """``lr_at(global_step)`` as a multiple of ``args.learning_rate`` (what LambdaLR wants)."""
        base = float(self.args.learning_rate)
        if self._kk_lr_at is None:
            return 1.0
        if base <= 0:
            return 0.0
        return self._kk_lr_at(global_step) / base

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        if self.lr_scheduler is None:
            factor = self._lr_factor

            # A plain function (not a bound method) so LambdaLR's state_dict does not pickle it.
            def lr_lambda(done_steps: int) -> float:
                return factor(done_steps + 1)

            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lr_lambda)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is not None and self.args.device.type == "cpu":
            allow_indexed_cpu_loads()
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
        lr = base * self._lr_factor(done + 1)
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

    def train(self, resume_from_checkpoint: Any = None, *args: Any, **kwargs: Any) -> Any:
        self._kk_rng_from = None
        if isinstance(resume_from_checkpoint, str | Path):
            first = getattr(self.args, "kk_first_step", None)
            state = Path(resume_from_checkpoint) / "trainer_state.json"
            # Inside the stage only: a stage starting from the previous stage's checkpoint
            # makes the data loader's draw in an uninterrupted run too, so it stays as it was.
            if first is not None and state.is_file():
                if TrainerState.load_from_json(str(state)).global_step >= int(first):
                    self._kk_rng_from = str(resume_from_checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
        if self._kk_rng_from is not None:
            # After the data loader's seed draw, before the first resumed generation: where
            # the uninterrupted run's RNG stood when the checkpoint was saved.
            self._load_rng_state(self._kk_rng_from)
            self._kk_rng_from = None
        return super().training_step(model, inputs, num_items_in_batch)

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

    # -- dynamic sampling ------------------------------------------------------------------
    def _calculate_rewards(
        self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any
    ) -> Any:
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._kk_round_rewards = rewards  # (completions, reward functions), gathered
        return rewards

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        if self._kk_max_rounds is None:
            return super()._generate_and_score_completions(inputs)
        if not self.model.training:  # evaluation batches are scored, never filtered
            return super()._generate_and_score_completions([_without_row(x) for x in inputs])
        return self._generate_filled_batch(inputs)

    def _generate_filled_batch(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """The generation batch of ``inputs`` with its zero-std groups replaced (see
        ``stages.dynamic_sampling``); ``kk_last_fill`` records the plan."""
        size = int(self.num_generations)
        needed = len(inputs) // size
        dataset = self.train_dataset
        outputs: list[dict[str, Any]] = []
        last_row = [int(inputs[-1][ROW_COLUMN])]

        def generate_round(round_index: int, prompts: int) -> list[bool]:
            batch = inputs
            if round_index > 0:
                rows = refill_rows(last_row[0], prompts, len(dataset))
                last_row[0] = rows[-1]
                # one copy per completion, consecutive: the layout TRL's RepeatSampler gives
                batch = [dataset[row] for row in rows for _ in range(size)]
            output, totals = self._score_round(
                [_without_row(x) for x in batch], refill=round_index > 0
            )
            outputs.append(output)
            return groups_with_signal(totals, size)

        plan = plan_fill(needed, int(self._kk_max_rounds or 1), generate_round)
        self.kk_last_fill = plan
        if plan.picks == tuple((0, g) for g in range(needed)):
            return outputs[0]  # the step's own groups, as TRL made them
        tok = self.processing_class
        pad_id = getattr(tok, "pad_token_id", None)
        if pad_id is None:
            pad_id = tok.tokenizer.pad_token_id  # a processor wraps its tokenizer
        try:
            merged = merge_round_outputs(outputs, plan.picks, size, int(pad_id))
        except UnknownOutputKey as err:
            import trl

            raise TrlInternalsError(
                f"trl {trl.__version__}: dynamic sampling cannot merge the generation output "
                f"key {err.args[0]!r} (multimodal or new in this TRL); turn "
                "stages.<name>.dynamic_sampling off, kk-rl is written for trl 1.16.0"
            ) from None
        mask = merged["completion_mask"]
        if "tool_mask" in merged:
            mask = mask * merged["tool_mask"]
        # What TRL's loss normalisation divides by: the tokens of the batch trained on.
        merged["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
        return merged

    def _score_round(
        self, batch: list[dict[str, Any]], *, refill: bool
    ) -> tuple[dict[str, Any], list[float]]:
        """TRL's generation and scoring of ``batch``, and each completion's weighted reward
        (as TRL sums them; NaN where no reward function scored it)."""
        logged = self._metrics["train"]
        lengths = {key: len(values) for key, values in logged.items()}
        self._kk_round_rewards = None
        output = super()._generate_and_score_completions(batch)
        rewards = self._kk_round_rewards
        if refill:
            # TRL logs the step's own prompts only, as with dynamic sampling off: a refill
            # round's rewards, lengths and clip ratio would mix in other steps' prompts.
            for key in list(logged):
                if key in lengths:
                    del logged[key][lengths[key] :]
                else:
                    del logged[key]
        if rewards is None or rewards.shape[0] != len(batch):
            import trl

            raise TrlInternalsError(
                f"trl {trl.__version__}: _generate_and_score_completions did not score the "
                f"batch through _calculate_rewards ({len(batch)} completions); dynamic "
                "sampling cannot see the rewards; kk-rl is written for trl 1.16.0"
            )
        weights = self.reward_weights.to(rewards.device).unsqueeze(0)
        totals = (rewards * weights).nansum(dim=1)
        totals[torch.isnan(rewards).all(dim=1)] = math.nan
        return output, [float(v) for v in totals.tolist()]


def _without_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != ROW_COLUMN}


def _code_names(fn: Any) -> set[str]:
    code = getattr(inspect.unwrap(fn), "__code__", None)
    return set(code.co_names) if code is not None else set()


def _params(fn: Any) -> list[str]:
    return list(inspect.signature(inspect.unwrap(fn)).parameters)


def check_dynamic_sampling_hooks(trainer: Any) -> None:
    """Raise ``TrlInternalsError`` (one line, naming the TRL version) unless TRL's
    ``GRPOTrainer`` has the internals dynamic sampling builds on, and a ``RunSetupError``
    when the trainer runs in more than one process."""
    found: list[str] = []
    if "_generate_and_score_completions" not in _code_names(GRPOTrainer._prepare_inputs):
        found.append("_prepare_inputs does not call _generate_and_score_completions")
    if "_calculate_rewards" not in _code_names(GRPOTrainer._generate_and_score_completions):
        found.append("_generate_and_score_completions does not call _calculate_rewards")
    if _params(GRPOTrainer._generate_and_score_completions) != ["self", "inputs"]:
        found.append("_generate_and_score_completions is not (self, inputs)")
    want = ["self", "inputs", "prompts", "completions", "completion_ids_list"]
    if _params(GRPOTrainer._calculate_rewards) != want:
        found.append(f"_calculate_rewards is not ({', '.join(want)})")
    weights = getattr(trainer, "reward_weights", None)
    if not isinstance(weights, torch.Tensor) or len(weights) != len(trainer.reward_funcs):
        found.append("reward_weights is not a tensor with one weight per reward function")
    metrics = getattr(trainer, "_metrics", None)
    if not isinstance(metrics, dict) or not isinstance(metrics.get("train"), dict):
        found.append("_metrics['train'] is not a dict of logged lists")
    if not isinstance(getattr(trainer, "num_generations", None), int):
        found.append("num_generations is not an int")
    if getattr(trainer.args, "remove_unused_columns", False):
        # Not TRL's doing but a setting: the row column must reach _prepare_inputs.
        raise RunSetupError(
            "dynamic sampling needs remove_unused_columns=False (the dataset row of each "
            "prompt must reach the trainer); remove it from train.extra"
        )
    if found:
        import trl

        raise TrlInternalsError(
            f"trl {trl.__version__}: dynamic sampling relies on GRPOTrainer internals that "
            f"differ here ({found[0]}); kk-rl is written for trl 1.16.0 (pyproject.toml)"
        )
    processes = int(getattr(trainer.accelerator, "num_processes", 1))
    if processes != 1:
        raise RunSetupError(
            f"dynamic sampling needs one training process, this run has {processes}; "
            "set stages.<name>.dynamic_sampling.enabled=false or launch one process"
        )


def quiet_trainer(trainer: Any) -> None:
    """Drop the console printer and progress bar callbacks: the dashboard prints instead."""
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)


def _indexed_cpu_storage(storage: Any, location: str) -> Any:
    """torch.load deserializer for ``cpu:<n>``: the storage is already on the CPU."""
    head, _, index = location.partition(":")
    return storage if head == "cpu" and index.isdigit() else None


def _no_tag(storage: Any) -> None:
    return None  # saving keeps torch's own tags


_INDEXED_CPU: list[bool] = []


def allow_indexed_cpu_loads() -> None:
    """Let ``torch.load(..., map_location=torch.device("cpu", n))`` work (idempotent).

    accelerate's CPU processes run on ``torch.device("cpu", 0)``; with several processes
    transformers loads a resumed optimizer with ``map_location=args.device``, and torch has no
    deserializer for the location ``cpu:0`` ("don't know how to restore data location"):
    every stage after the first failed under two CPU processes. Registered through torch's
    public ``torch.serialization.register_package``.
    """
    if not _INDEXED_CPU:
        torch.serialization.register_package(11, _no_tag, _indexed_cpu_storage)
        _INDEXED_CPU.append(True)


def release_trainer(trainer: Any) -> None:
    """Drop what a finished stage's trainer holds, so the next stage gets the memory.

    Breaks the trainer <-> callback cycle (``KKRunCallback.trainer``), lets accelerate drop
    its prepared models, optimizers, schedulers, data loaders and DeepSpeed engine
    (``Accelerator.free_memory``), and drops TRL's vLLM generator. The caller drops its own
    references, then ``free_device_memory`` collects and empties the device cache.
    """
    for callback in list(trainer.callback_handler.callbacks):
        if getattr(callback, "trainer", None) is trainer:
            callback.trainer = None
    trainer.callback_handler.callbacks.clear()
    trainer.accelerator.free_memory()
    _clear_zero3_module_stack()
    for name in ("vllm_generation", "model_wrapped", "ref_model", "optimizer", "lr_scheduler"):
        if getattr(trainer, name, None) is not None:
            setattr(trainer, name, None)


def _clear_zero3_module_stack() -> None:
    """Empty DeepSpeed ZeRO-3's stack of modules in a forward pass.

    Under ZeRO-3 TRL generates with the hooks removed (``unwrap_model_for_generation``), so
    the pushes of a forward are not all popped and the module-level list
    ``deepspeed.runtime.zero.parameter_offload.FWD_MODULE_STACK`` keeps the stage's policy
    alive after its engine is destroyed (found by tests/test_multiprocess_deepspeed.py).
    Between stages no forward is running, so the stack is empty by rights.
    """
    offload = sys.modules.get("deepspeed.runtime.zero.parameter_offload")
    if offload is None:
        return  # DeepSpeed never ran ZeRO-3 in this process
    stack = getattr(offload, "FWD_MODULE_STACK", None)
    if not isinstance(stack, list):
        import deepspeed

        raise TrlInternalsError(
            f"deepspeed {deepspeed.__version__}: parameter_offload.FWD_MODULE_STACK is not a "
            "list; kk-rl's stage handover is written for deepspeed 0.19.8 (pyproject.toml)"
        )
    stack.clear()


def free_device_memory() -> None:
    """Collect garbage (reference cycles included) and return cached device memory."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
