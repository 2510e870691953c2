"""Training alerts: compare recorded step metrics with thresholds, never recompute metrics.

Each alert names what it saw (with the numbers), one sentence on what it means and one on
what to try. Thresholds come from the YAML section ``dashboard.alerts`` (every field of
:class:`AlertThresholds` may be set there; unknown keys are an error).

Trend alerts (format errors rising, length collapse / blow-up) look only at the current
stage, because a new stage brings harder puzzles and its own normal length and format
level. The others look at the most recent steps whatever their stage.

>>> from curriculum.run_records import StepMetrics
>>> def step(n, **kw):
...     base = dict(stage="format", global_step=n, stage_step=n, time=float(n),
...                 step_seconds=1.0, reward_mean=0.5, reward_std=0.2, rewards={},
...                 format_error_ratio=0.1, all_correct_ratio=0.2, wrong_answer_ratio=0.6,
...                 unparsed_ratio=0.1, completion_length_mean=100.0,
...                 completion_length_min=50.0, completion_length_max=150.0,
...                 truncation_ratio=0.0, frac_zero_std_groups=0.2, learning_rate=1e-4,
...                 temperature=1.0, num_generations=8, tokens_per_second=500.0, loss=0.01)
...     base.update(kw)
...     return StepMetrics(**base)
>>> [a.key for a in check_alerts([step(1), step(2)], AlertThresholds())]
[]
>>> history = [step(n, frac_zero_std_groups=0.95) for n in (1, 2, 3)]
>>> [a.key for a in check_alerts(history, AlertThresholds())]
['zero_std']
>>> [a.key for a in check_alerts(history, AlertThresholds(zero_std_steps=4))]
[]
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from curriculum.run_records import RunEvent, StepMetrics
from stages.dashboard.formatting import at_least, is_finite

__all__ = [
    "ALERT_KEYS",
    "Alert",
    "AlertThresholds",
    "AlertTracker",
    "alert_event",
    "check_alerts",
]

ALERT_KEYS = (
    "nan_loss",
    "zero_loss",
    "zero_std",
    "unfilled_batch",
    "truncation",
    "format_rising",
    "length_collapse",
    "length_blowup",
    "kl_spike",
    "answer_collapse",
)

# Trend alerts never look further back than this many steps (keeps each check O(1)).
_LOOKBACK = 128


@dataclass
class AlertThresholds:
    """When each alert fires. Ratios are fractions in [0, 1]; ``*_steps`` count optimizer steps."""

    # Fraction of groups whose rewards are all equal (no GRPO gradient).
    zero_std_ratio: float = 0.9
    zero_std_steps: int = 3
    # Dynamic sampling reached max_rounds with zero-std groups left in the batch, for this
    # many consecutive steps.
    unfilled_steps: int = 1
    # Fraction of completions that hit max_completion_length without EOS.
    truncation_ratio: float = 0.5
    truncation_steps: int = 1
    # Format errors: after `format_warmup_steps` steps of the stage, the mean over the last
    # `format_window` steps exceeds the best earlier window of the stage by `format_rise`.
    format_warmup_steps: int = 10
    format_window: int = 5
    format_rise: float = 0.15
    # Mean completion length over the last `length_window` steps (needs `length_min_steps`
    # steps of the stage): below `length_collapse_ratio` x the stage's peak window, or above
    # `length_blowup_ratio` x the stage's first window.
    length_window: int = 5
    length_min_steps: int = 10
    length_collapse_ratio: float = 0.3
    length_blowup_ratio: float = 2.5
    # KL: latest value >= `kl_spike_factor` x the median of the previous `kl_window` values
    # and >= `kl_spike_min`; or simply >= `kl_max`.
    kl_spike_factor: float = 5.0
    kl_spike_min: float = 0.1
    kl_window: int = 10
    kl_max: float = 1.0
    # Loss exactly 0.0 for this many consecutive steps.
    zero_loss_steps: int = 3
    # Answer collapse: the top answer pattern's share of parsed answers >= `collapse_share`
    # and at least `collapse_margin` above its share among true solutions, for
    # `collapse_steps` consecutive steps.
    collapse_share: float = 0.6
    collapse_margin: float = 0.3
    collapse_steps: int = 3
    # Alert keys to switch off (see ALERT_KEYS).
    disabled: list[str] = field(default_factory=list)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> AlertThresholds:
        """Build from a mapping (YAML ``dashboard.alerts``); unknown keys and bad values raise.

        >>> AlertThresholds.from_mapping({"zero_std_ratio": 0.8}).zero_std_ratio
        0.8
        >>> AlertThresholds.from_mapping({"zero_std": 0.8})
        Traceback (most recent call last):
        ...
        ValueError: dashboard.alerts: unknown key 'zero_std' (known: zero_std_ratio, ...)
        """
        if data is None:
            return cls()
        if not hasattr(data, "items"):
            raise ValueError(f"dashboard.alerts: expected a mapping of thresholds, got {data!r}")
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in dict(data.items()).items():
            if key not in known:
                names = ", ".join(known)
                raise ValueError(f"dashboard.alerts: unknown key {key!r} (known: {names})")
            kwargs[key] = _coerce(key, known[key].type, value)
        return cls(**kwargs)

    @classmethod
    def from_config(cls, config: Any) -> AlertThresholds:
        """Thresholds from a whole run config: ``config.dashboard.alerts`` (object or dict).

        >>> AlertThresholds.from_config({"dashboard": {"alerts": {"kl_max": 2}}}).kl_max
        2.0
        >>> AlertThresholds.from_config({}).kl_max
        1.0
        """
        if config is None:
            return cls()
        dash = config.get("dashboard") if isinstance(config, Mapping) else None
        if dash is None and not isinstance(config, Mapping):
            dash = getattr(config, "dashboard", None)
        if dash is None:
            return cls()
        alerts = dash.get("alerts") if isinstance(dash, Mapping) else getattr(dash, "alerts", None)
        return cls.from_mapping(alerts)


def _coerce(key: str, type_name: Any, value: Any) -> Any:
    type_text = str(type_name)
    if "list" in type_text:
        if isinstance(value, str):
            value = [value]
        items = list(value)
        unknown = [k for k in items if k not in ALERT_KEYS]
        if unknown:
            raise ValueError(
                f"dashboard.alerts.{key}: unknown alert {unknown[0]!r} "
                f"(known: {', '.join(ALERT_KEYS)})"
            )
        return items
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"dashboard.alerts.{key}: expected a number, got {value!r}")
    if type_text == "int":
        if int(value) != value or value < 1:
            raise ValueError(f"dashboard.alerts.{key}: expected a whole number >= 1, got {value!r}")
        return int(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"dashboard.alerts.{key}: expected a finite number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Alert:
    """One active alert at one step."""

    key: str  # one of ALERT_KEYS
    severity: str  # "warning" | "critical"
    title: str
    detail: str  # what was seen, with the numbers
    meaning: str  # one sentence: what it means
    advice: str  # one sentence: what to try
    global_step: int
    stage: str

    def line(self) -> str:
        """One log line with everything (plain mode, events.jsonl message)."""
        return (
            f"ALERT {self.severity} [{self.key}] step {self.global_step} ({self.stage}): "
            f"{self.title}: {self.detail}. {self.meaning} Try: {self.advice}"
        )


_TEXT: dict[str, tuple[str, str, str, str]] = {
    # key: (severity, title, meaning, advice)
    "nan_loss": (
        "critical",
        "NaN/inf in loss",
        "The update produced non-finite numbers, so the weights are probably corrupted and "
        "every further step is wasted.",
        "stop, resume from the last checkpoint with a lower learning rate, and check "
        "max_grad_norm and the bf16/fp16 setting.",
    ),
    "zero_loss": (
        "critical",
        "no learning signal",
        "The loss is exactly zero, so no gradient reaches the model; usually every group has "
        "identical rewards, often because all completions were truncated.",
        "check truncation and zero-std groups, raise max_completion_length or temperature, "
        "or use a denser reward.",
    ),
    "zero_std": (
        "warning",
        "zero-std groups",
        "Almost every group gave all its completions the same reward, so GRPO advantages are "
        "zero and those prompts teach nothing.",
        "raise temperature or num_generations, add partial format credit (tag counts), or "
        "change the puzzle mix so that some answers differ.",
    ),
    "unfilled_batch": (
        "warning",
        "dynamic sampling could not fill the batch",
        "Dynamic sampling ran out of generation rounds before it found enough prompts whose "
        "completions got different rewards, so part of the step's batch teaches nothing.",
        "raise stages.<name>.dynamic_sampling.max_rounds, raise temperature or "
        "num_generations, or move the stage's puzzle mix to ones the model sometimes solves.",
    ),
    "truncation": (
        "warning",
        "truncated completions",
        "Many completions hit max_completion_length without ending, which hides their answer "
        "and breeds repetition loops.",
        "raise max_completion_length, set mask_truncated_completions, or lower temperature.",
    ),
    "format_rising": (
        "warning",
        "format errors rising",
        "The format-error rate climbed back up after the stage had learned the format.",
        "lower the learning rate or temperature and read recent completions for tags reopened "
        "after </answer> or text outside the tags.",
    ),
    "length_collapse": (
        "warning",
        "length collapse",
        "Completions became much shorter than earlier in the stage: the model may be dropping "
        "its reasoning to finish early.",
        "check that no reward favours short or 'properly ended' answers, lower the learning "
        "rate, and compare accuracy before and after.",
    ),
    "length_blowup": (
        "warning",
        "length blow-up",
        "Completions grew far beyond their length at the stage start, often repetition loops "
        "that end in truncation.",
        "lower temperature, read samples for repeated text, or cap max_completion_length.",
    ),
    "kl_spike": (
        "warning",
        "KL spike",
        "The KL to the reference model jumped far above its recent level; slow KL growth is "
        "normal, sudden jumps often precede collapse.",
        "lower the learning rate or max_grad_norm, raise beta, or resume from the checkpoint "
        "before the spike.",
    ),
    "answer_collapse": (
        "warning",
        "answer collapse",
        "The model gives one role pattern far more often than it is the true solution, a "
        "shortcut that can lift strict accuracy without any reasoning.",
        "compare accuracy with the trivial baselines, raise temperature, or give the answer "
        "reward more weight than the format reward.",
    ),
}


def _make(key: str, detail: str, last: StepMetrics) -> Alert:
    severity, title, meaning, advice = _TEXT[key]
    return Alert(key, severity, title, detail, meaning, advice, last.global_step, last.stage)


def _tail(history: Sequence[StepMetrics], n: int) -> list[StepMetrics]:
    start = max(0, len(history) - n)
    return [history[i] for i in range(start, len(history))]


def _stage_tail(history: Sequence[StepMetrics], limit: int) -> list[StepMetrics]:
    """The last records of the current stage (oldest first), at most `limit`."""
    stage = history[-1].stage
    out: list[StepMetrics] = []
    for i in range(len(history) - 1, max(-1, len(history) - 1 - limit), -1):
        if history[i].stage != stage:
            break
        out.append(history[i])
    out.reverse()
    return out


def _window_means(values: Sequence[float], window: int) -> list[float]:
    sums = [0.0]
    for v in values:
        sums.append(sums[-1] + v)
    return [(sums[i + window] - sums[i]) / window for i in range(len(values) - window + 1)]


def _pattern_words(pattern: str | None) -> str:
    """Role pattern as written by the trainer (K = knight, N = knave), in words.

    >>> _pattern_words("KKK"), _pattern_words("NN"), _pattern_words("KNK")
    ('KKK (everyone a knight)', 'NN (everyone a knave)', 'KNK')
    """
    if not pattern:
        return "the top pattern"
    if set(pattern) == {"K"}:
        return f"{pattern} (everyone a knight)"
    if set(pattern) == {"N"}:
        return f"{pattern} (everyone a knave)"
    return pattern


def check_alerts(history: Sequence[StepMetrics], thresholds: AlertThresholds) -> list[Alert]:
    """Alerts active at the last step of ``history`` (oldest first), in ALERT_KEYS order."""
    if not history:
        return []
    t = thresholds
    last = history[-1]
    off = set(t.disabled)
    found: list[Alert] = []

    def add(key: str, detail: str) -> None:
        if key not in off:
            found.append(_make(key, detail, last))

    bad = [
        name
        for name in ("loss", "kl", "grad_norm", "reward_mean")
        if getattr(last, name) is not None and not math.isfinite(getattr(last, name))
    ]
    if bad:
        add("nan_loss", ", ".join(f"{name} = {getattr(last, name)}" for name in bad))

    recent = _tail(history, t.zero_loss_steps)
    if len(recent) == t.zero_loss_steps and all(m.loss == 0.0 for m in recent):
        add("zero_loss", f"loss exactly 0 for the last {t.zero_loss_steps} steps")

    recent = _tail(history, t.zero_std_steps)
    if len(recent) == t.zero_std_steps and all(
        at_least(m.frac_zero_std_groups, t.zero_std_ratio) for m in recent
    ):
        add(
            "zero_std",
            f"{last.frac_zero_std_groups:.0%} of groups had zero reward std "
            f"(>= {t.zero_std_ratio:.0%} for {t.zero_std_steps} steps)",
        )

    recent = _tail(history, t.unfilled_steps)
    if len(recent) == t.unfilled_steps and all(m.batch_filled is False for m in recent):
        seen = last.zero_std_groups_generated
        add(
            "unfilled_batch",
            f"{last.frac_zero_std_groups:.0%} of the trained groups had zero reward std after "
            f"{last.generation_rounds} generation rounds ({seen} of {last.groups_generated} "
            f"generated groups zero-std, {last.zero_std_groups_dropped} dropped)",
        )

    recent = _tail(history, t.truncation_steps)
    if len(recent) == t.truncation_steps and all(
        at_least(m.truncation_ratio, t.truncation_ratio) for m in recent
    ):
        add(
            "truncation",
            f"{last.truncation_ratio:.0%} of completions truncated (>= {t.truncation_ratio:.0%})",
        )

    stage = _stage_tail(history, _LOOKBACK)
    _check_format(stage, t, add)
    _check_length(stage, t, add)
    _check_kl(history, t, add)

    recent = _tail(history, t.collapse_steps)
    if len(recent) == t.collapse_steps and all(_collapsed(m, t) for m in recent):
        add(
            "answer_collapse",
            f"{_pattern_words(last.top_answer_pattern)} is {last.top_answer_pattern_share:.0%} "
            f"of answers but {last.top_answer_pattern_truth_share:.0%} of true solutions",
        )
    return found


def _collapsed(m: StepMetrics, t: AlertThresholds) -> bool:
    share, truth = m.top_answer_pattern_share, m.top_answer_pattern_truth_share
    if not (is_finite(share) and is_finite(truth)):
        return False
    return share >= t.collapse_share and share - truth >= t.collapse_margin  # type: ignore[operator]


def _check_format(stage: list[StepMetrics], t: AlertThresholds, add: Any) -> None:
    after = [
        m.format_error_ratio
        for m in stage
        if m.stage_step > t.format_warmup_steps and is_finite(m.format_error_ratio)
    ]
    w = t.format_window
    if len(after) < 2 * w:
        return
    recent = sum(after[-w:]) / w
    best = min(_window_means(after[:-w], w))
    if recent - best >= t.format_rise:
        add(
            "format_rising",
            f"format errors {recent:.0%} over the last {w} steps, up from {best:.0%} "
            f"earlier in the stage (rise >= {t.format_rise:.0%})",
        )


def _check_length(stage: list[StepMetrics], t: AlertThresholds, add: Any) -> None:
    w = t.length_window
    if len(stage) < max(t.length_min_steps, w + 1):
        return
    lengths = [m.completion_length_mean for m in stage if is_finite(m.completion_length_mean)]
    recent = sum(lengths[-w:]) / w
    first = sum(lengths[:w]) / w
    earlier = lengths[:-w]
    peak = max(_window_means(earlier, w)) if len(earlier) >= w else first
    if peak > 0 and recent <= t.length_collapse_ratio * peak:
        add(
            "length_collapse",
            f"mean length {recent:.0f} tokens over the last {w} steps, down from {peak:.0f} "
            f"(<= {t.length_collapse_ratio:g}x)",
        )
    if first > 0 and recent >= t.length_blowup_ratio * first:
        add(
            "length_blowup",
            f"mean length {recent:.0f} tokens over the last {w} steps, up from {first:.0f} at "
            f"the stage start (>= {t.length_blowup_ratio:g}x)",
        )


def _check_kl(history: Sequence[StepMetrics], t: AlertThresholds, add: Any) -> None:
    kl = history[-1].kl
    if not is_finite(kl):
        return
    assert kl is not None
    if kl >= t.kl_max:
        add("kl_spike", f"KL {kl:.3g} >= {t.kl_max:g}")
        return
    previous = [m.kl for m in _tail(history, t.kl_window + 1)[:-1] if is_finite(m.kl)]
    if len(previous) < 3:
        return
    base = statistics.median(previous)  # type: ignore[type-var]
    if kl >= t.kl_spike_min and kl >= t.kl_spike_factor * base:
        add(
            "kl_spike",
            f"KL {kl:.3g}, {kl / base:.1f}x the median {base:.3g} of the previous "
            f"{len(previous)} steps"
            if base > 0
            else f"KL {kl:.3g} after a median of 0 over the previous {len(previous)} steps",
        )


class AlertTracker:
    """Remembers which alerts are active so that each is announced once when it starts.

    >>> tracker = AlertTracker()
    >>> a = Alert("zero_std", "warning", "t", "d", "m", "a", 3, "s")
    >>> [x.key for x in tracker.update([a])], [x.key for x in tracker.update([a])]
    (['zero_std'], [])
    >>> tracker.update([]), [x.key for x in tracker.update([a])]
    ([], ['zero_std'])
    """

    def __init__(self) -> None:
        self.active: dict[str, Alert] = {}

    def update(self, alerts: Iterable[Alert]) -> list[Alert]:
        """Set the active alerts; return those that were not active at the previous update."""
        current = {a.key: a for a in alerts}
        new = [a for key, a in current.items() if key not in self.active]
        self.active = current
        return new


def alert_event(alert: Alert, time: float) -> RunEvent:
    """The RunEvent to append to events.jsonl for a newly raised alert."""
    return RunEvent(
        time=time,
        global_step=alert.global_step,
        kind="alert",
        stage=alert.stage,
        message=alert.line(),
        data={"key": alert.key, "severity": alert.severity, "detail": alert.detail},
    )
