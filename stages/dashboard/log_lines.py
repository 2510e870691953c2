"""The one-line texts the dashboard prints: plain mode's line per step, and the run, stage
and event lines that both modes print (live mode above its screen, as a rule).

Plain mode is what CI logs, pipes and ``--no-dashboard`` get: the same numbers as the
screen, one step per line, so a log can be grepped and diffed.
"""

from __future__ import annotations

from curriculum.run_records import RunEvent, RunInfo, StepMetrics
from stages.dashboard.formatting import (
    duration,
    num,
    pct,
    people_mix,
    sci,
    short_reward_name,
    temperature_text,
)
from stages.dashboard.state import RunView

__all__ = [
    "dynamic_sampling_text",
    "event_line",
    "plain_step_line",
    "run_start_line",
    "stage_end_line",
    "stage_start_line",
]


def run_start_line(info: RunInfo) -> str:
    """``kk-train run NAME: model M, device D, N steps in K stages``."""
    return (
        f"kk-train run {info.run_name}: model {info.model}, device {info.device}, "
        f"{info.total_steps} steps in {len(info.stages)} stages"
    )


def stage_start_line(view: RunView, name: str) -> str:
    """``== stage NAME (i/n) started: people, n, prompts/step, steps, temperature ==``."""
    plan = view.plan(name)
    names = view.stage_names()
    pos = f" ({names.index(name) + 1}/{len(names)})" if name in names else ""
    if plan is None:
        return f"== stage {name}{pos} started =="
    # After an early promotion the stage starts right after the last step seen.
    own = view.stats.get(name)
    seen = [
        st.last_step
        for other, st in view.stats.items()
        if other != name and st.last_step is not None
    ]
    if own is not None and own.first_step is not None:
        start = own.first_step
    elif seen:
        start = max(seen) + 1
    else:
        start = plan.start_step
    end = start + plan.end_step - plan.start_step
    return (
        f"== stage {name}{pos} started: people {people_mix(plan.people)}, "
        f"n={plan.num_generations}, {plan.prompts_per_step} prompts/step, "
        f"steps {start}-{end}, temperature {temperature_text(plan)} =="
    )


def stage_end_line(view: RunView, name: str) -> str:
    """``== stage NAME done: N steps in T, accuracy, format err, mean length ==``."""
    st = view.stats[name]
    text = f"== stage {name} done: {st.steps} steps"
    if st.steps:
        text += (
            f" in {duration(st.seconds)}, accuracy "
            f"{pct(st.tail_mean('all_correct_ratio'))}, format err "
            f"{pct(st.tail_mean('format_error_ratio'))}, mean length "
            f"{num(st.tail_mean('completion_length_mean'), '.1f')} (last 5 steps)"
        )
    return text + " =="


def event_line(ev: RunEvent) -> str:
    """``== KIND at step N: MESSAGE ==`` for promotions, resumes, interrupts, evals."""
    return f"== {ev.kind} at step {ev.global_step}: {ev.message} =="


def dynamic_sampling_text(m: StepMetrics) -> str:
    """`` (Z/G zero-std seen, D dropped, R rounds[, unfilled])`` for a step of dynamic
    sampling (its ``zero_std`` figure is the trained batch's); empty with it off."""
    if m.batch_filled is None:
        return ""
    seen = f"{m.zero_std_groups_generated}/{m.groups_generated}"
    unfilled = "" if m.batch_filled else ", unfilled"
    return (
        f" ({seen} zero-std seen, {m.zero_std_groups_dropped} dropped, "
        f"{m.generation_rounds} rounds{unfilled})"
    )


def plain_step_line(view: RunView, m: StepMetrics) -> str:
    """The one log line per step of plain mode (same facts as the metrics panel)."""
    st = view.stats.get(m.stage)
    plan = view.plan(m.stage)
    stage_pos = f"{st.steps if st else m.stage_step}"
    if plan is not None:
        stage_pos += f"/{plan.end_step - plan.start_step + 1}"
    total = f"/{view.total_steps}" if view.total_steps else ""
    parts = " ".join(f"{short_reward_name(k)}={num(x, '.3f')}" for k, x in m.rewards.items())
    line = (
        f"step {m.global_step}{total} [{m.stage} {stage_pos}] "
        f"reward {num(m.reward_mean)}±{num(m.reward_std)}{' (' + parts + ')' if parts else ''} "
        f"| correct {num(m.all_correct_ratio)} fmt_err {num(m.format_error_ratio)} "
        f"wrong {num(m.wrong_answer_ratio)} unparsed {num(m.unparsed_ratio)} "
        f"| len {num(m.completion_length_mean, '.1f')} max {num(m.completion_length_max, '.0f')} "
        f"trunc {num(m.truncation_ratio)} zero_std {num(m.frac_zero_std_groups)}"
        f"{dynamic_sampling_text(m)} "
        f"| kl {num(m.kl, '.4g')} ent {num(m.entropy)} loss {num(m.loss, '.4g')} "
        f"| lr {sci(m.learning_rate)} T {num(m.temperature, '.2f')} "
        f"| {num(m.tokens_per_second, '.0f')} tok/s {num(m.step_seconds, '.2f')} s/step "
        f"ETA {duration(view.eta())}"
    )
    return line
