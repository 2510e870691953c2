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
* TRL's fused log-prob head is checked (``stages.temperature.check_fused_heads``): the
  temperature schedule must reach it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.optim.lr_scheduler import LambdaLR
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from trl import GRPOTrainer
from trl.trainer.grpo_trainer import RepeatSampler

from stages.temperature import check_fused_heads

__all__ = ["KKGRPOTrainer", "quiet_trainer"]


class KKGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with the run's LR curve over the global step and chain-friendly resume.

    ``lr_at(global_step) -> float`` is the learning rate at a 1-based global step (None: the
    constant ``args.learning_rate``).
    """

    def __init__(
        self,
        *args: Any,
        lr_at: Callable[[int], float] | None = None,
        ref_model_path: str | None = None,
        weights_loaded_from: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._kk_lr_at = lr_at
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
        check_fused_heads(self)

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


def quiet_trainer(trainer: Any) -> None:
    """Drop the console printer and progress bar callbacks: the dashboard prints instead."""
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
