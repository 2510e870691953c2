"""Stage planning: where each stage of this run starts and ends, and what follows from it.

Pure arithmetic over the configuration and the curriculum state; the one rule for the bounds
is ``curriculum.schedules.stage_bounds`` (with early promotion), the one LR curve
``curriculum.schedules.run_learning_rate``, the one stage data seed ``curriculum.data.stage_seed``.

* ``run_bounds``: every stage's (name, first, last) global steps for this run;
* ``stage_plans``: the stage plans ``run.json`` holds (what the dashboard timeline shows);
* ``prompts_per_optimizer_step``: how many prompts a step consumes (a resume skips them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from curriculum import run_records as rr
from curriculum.schedules import Bounds, run_learning_rate, stage_bounds
from curriculum.state import CurriculumState
from curriculum.validate import batch_plan

__all__ = ["prompts_per_optimizer_step", "run_bounds", "stage_plans"]


def run_bounds(config: Any, state: CurriculumState, selected: Sequence[str]) -> Bounds:
    """The run's stage bounds now: the steps the state records for stages that started or
    ended, planned lengths after them. Stages before the first ``selected`` one that never ran
    take no steps (``kk-train --stage explore`` in a new directory starts explore at step 1)."""
    names = list(config.stages)
    before = names[: names.index(selected[0])]
    skipped = [n for n in before if n not in state.stage_ends]
    return stage_bounds(config, state.stage_starts, state.stage_ends, skipped)


def stage_plans(config: Any, bounds: Bounds) -> list[rr.StagePlan]:
    """``run.json``'s stage plans: people, group size, step range, temperature and LR range."""
    out = []
    for name, first, last in bounds:
        st = config.stages[name]
        t = st.temperature
        ran = last >= first  # a skipped stage has no steps, so no LR
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
                learning_rate_start=run_learning_rate(config, first, bounds) if ran else None,
                learning_rate_end=run_learning_rate(config, last, bounds) if ran else None,
            )
        )
    return out


def prompts_per_optimizer_step(config: Any, name: str) -> float:
    """Distinct prompts one optimizer step of stage ``name`` consumes: a generation batch of
    ``prompts_per_step`` prompts feeds ``steps_per_generation * num_iterations`` micro-batches,
    ``gradient_accumulation_steps`` of which make one optimizer step."""
    plan = batch_plan(config, name)
    per_gen = int(config.stages[name].prompts_per_step)
    return (
        per_gen
        * plan.gradient_accumulation_steps
        / (plan.steps_per_generation * int(config.train.num_iterations))
    )
