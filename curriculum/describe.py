"""The resolved curriculum as a table (``kk-train --dry-run``): plain text, no ML imports.

>>> from curriculum.config import load_config
>>> cfg = load_config(None, check_paths=False)
>>> print(describe(cfg).splitlines()[3])  # doctest: +NORMALIZE_WHITESPACE
warmup   1-30  2:1  8  4  32  1.00 -> 1.00 constant  1/50  2.00e-05 -> 1.00e-04  0.001  224  fmt_err<0.5 (5 steps, from step 15)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from curriculum.schedules import run_learning_rate, stage_bounds, temperature_at, total_steps
from curriculum.validate import batch_plan

if TYPE_CHECKING:
    from curriculum.config import PromotionConfig, RunConfig

__all__ = ["describe", "describe_rows", "promotion_text"]

HEADER = (
    "stage",
    "steps",
    "people",
    "n",
    "prompts",
    "batch",
    "temperature",
    "top_p/k",
    "lr first -> last",
    "beta",
    "max_len",
    "promotion",
)


def promotion_text(p: PromotionConfig) -> str:
    """'fmt_err<0.1 (5 steps, from step 20)' or '-' when off."""
    rules = []
    if p.format_error_below is not None:
        rules.append(f"fmt_err<{p.format_error_below:g}")
    if p.accuracy_at_least is not None:
        rules.append(f"acc>={p.accuracy_at_least:g}")
    if not rules:
        return "-"
    return f"{' & '.join(rules)} ({p.window} steps, from step {p.min_steps})"


def describe_rows(config: RunConfig, *, world_size: int = 1) -> list[tuple[str, ...]]:
    """One row of strings per stage (HEADER order), values at the stage's first/last step."""
    rows = []
    for name, first, last in stage_bounds(config):
        st = config.stages[name]
        plan = batch_plan(config, name, world_size=world_size)
        t0, t1 = temperature_at(st, 1, st.steps), temperature_at(st, st.steps, st.steps)
        beta = config.train.beta if st.beta is None else st.beta
        max_len = st.max_completion_length or config.train.max_completion_length
        rows.append(
            (
                name,
                f"{first}-{last}",
                ",".join(f"{c}:{w:g}" for c, w in st.people.items()),
                str(st.num_generations),
                str(st.prompts_per_step),
                str(plan.generation_batch_size),
                f"{t0:.2f} -> {t1:.2f} {st.temperature.schedule}",
                f"{st.top_p:g}/{st.top_k}",
                f"{run_learning_rate(config, first):.2e} -> {run_learning_rate(config, last):.2e}",
                f"{beta:g}",
                str(max_len),
                promotion_text(st.promotion),
            )
        )
    return rows


def describe(
    config: RunConfig, *, world_size: int = 1, selected: Sequence[str] | None = None
) -> str:
    """A header line and an aligned table of the stages; unselected stages marked (skip)."""
    rows = describe_rows(config, world_size=world_size)
    if selected is not None:
        rows = [(r[0] + ("" if r[0] in selected else " (skip)"), *r[1:]) for r in rows]
    table = [HEADER, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]

    def fmt(r: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    tr = config.train
    head = (
        f"run {config.run.name}: model {config.model.name_or_path}, {total_steps(config)} steps, "
        f"lr {tr.learning_rate:g} (warm-up {tr.warmup_steps}, {tr.lr_schedule} to "
        f"{tr.lr_floor:g} from {tr.lr_decay_from or 'warm-up end'}), loss {tr.loss_type}, "
        f"rewards {_names(config.rewards)}"
    )
    own = [
        f"{n}: {_names(st.rewards)}" for n, st in config.stages.items() if st.rewards is not None
    ]
    if own:
        head += f" ({'; '.join(own)})"
    return "\n".join([head, fmt(HEADER), "  ".join("-" * w for w in widths), *map(fmt, rows)])


def _names(specs: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(str(r.get("name")) for r in specs) or "none"
