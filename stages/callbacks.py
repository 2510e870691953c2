"""Trainer callbacks and reward wrappers that turn a TRL run into kk-rl run records.

* ``BatchRecorder`` + ``RecordingReward``: every reward function TRL calls is wrapped so
  its outputs are kept, and the first wrapper of a batch also scores the batch once with
  the strict ``logic_rl`` scheme (``rewards.score``), whatever rewards train the model, so
  format-error / accuracy figures compare across reward configurations. With dynamic
  sampling a step scores several rounds; the recorder keeps the last ``keep`` of them and
  the step's figures describe its own prompts (the first round), as with it off.
* ``KKRunCallback``: at each step start sets the scheduled temperature (``stages.temperature``);
  at each step end asks for a checkpoint every ``run.checkpoint_every`` steps; at each log
  writes one ``StepMetrics`` and ``run.samples_per_step`` ``CompletionSample`` records, runs the
  alert checks and the promotion rule (which stops the stage early); after each save moves
  ``checkpoint-<N>`` to ``checkpoints/step-<N>`` and prunes old ones.

With several processes each one scores only its share of the batch. At each log the
callback gathers every process's batch (``gather_batch``), so every figure of a step record,
and with them the promotion window, describes the global batch on every process; the main
process's promotion decision is then broadcast, so all processes leave a stage together.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from curriculum import run_records as rr
from curriculum.promotion import should_promote
from kk_puzzles.io import json_or_value
from stages.dynamic_sampling import group_has_signal, groups_with_signal
from stages.scaleout.launch import broadcast_from_main, gather_from_all, world_size
from stages.temperature import set_temperature

PUZZLE_COLUMNS = ("names", "solution", "knight_knave", "solution_text_format")


def prompt_text(prompt: Any) -> str:
    """Plain text of a TRL prompt (a string, or the last message of a conversation)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)) and prompt and isinstance(prompt[-1], dict):
        return str(prompt[-1].get("content", ""))
    return str(prompt)


def pattern_of(roles: Sequence[bool]) -> str:
    """Role pattern string: K = knight (truthful role), N = knave.

    >>> pattern_of((True, False, True))
    'KNK'
    """
    return "".join("K" if r else "N" for r in roles)


@dataclass
class Batch:
    """One scored generation batch (all completions of one generation round)."""

    completions: list[str]
    puzzles: list[dict[str, Any]]
    ids: list[str]
    people: list[int]
    prompts: list[str]
    scores: list[Any]
    rewards: dict[str, list[float]] = field(default_factory=dict)
    number: int = 0


class BatchRecorder:
    """Keeps the latest batches TRL scored: completions, puzzle columns, Scores, reward outputs.

    ``keep``: how many batches are kept (a step of dynamic sampling scores up to
    ``max_rounds`` of them); ``latest`` is the last one.
    """

    def __init__(self, *, prefilled_think: bool, weights: dict[str, float], keep: int = 1) -> None:
        self.prefilled_think = prefilled_think
        self.weights = dict(weights)
        self.latest: Batch | None = None
        self.recent: deque[Batch] = deque(maxlen=max(1, keep))
        self.count = 0

    def begin(
        self, completions: Sequence[Any], prompts: Sequence[Any] | None, columns: dict
    ) -> None:
        import rewards
        from rewards.parsing import completion_text

        # the same reading of a completion as the reward functions' own
        texts = [completion_text(c) for c in completions]
        n = len(texts)
        puzzles = []
        for i in range(n):
            puzzles.append({k: columns[k][i] for k in PUZZLE_COLUMNS if k in columns})
        scores = [
            rewards.score(t, p, scheme="logic_rl", prefilled_think=self.prefilled_think)
            for t, p in zip(texts, puzzles, strict=True)
        ]
        ids = [str(x) for x in columns.get("id", [""] * n)]
        people = [int(x) for x in columns.get("people", [0] * n)]
        prompt_texts = [prompt_text(p) for p in (prompts or [""] * n)]
        self.count += 1
        self.latest = Batch(texts, puzzles, ids, people, prompt_texts, scores, {}, self.count)
        self.recent.append(self.latest)

    def step_batch(self, rounds: int = 1) -> Batch | None:
        """The first of the last ``rounds`` batches: a step's own prompts when it took
        ``rounds`` generation rounds (``latest`` when fewer are kept)."""
        if 1 <= rounds <= len(self.recent):
            return self.recent[-rounds]
        return self.latest

    def add_rewards(self, name: str, values: Sequence[Any]) -> None:
        if self.latest is not None:
            self.latest.rewards[name] = [math.nan if v is None else float(v) for v in values]

    def totals(self, batch: Batch | None = None) -> list[float]:
        """Weighted reward per completion of ``batch`` (default ``latest``), as TRL sums
        them, NaN-skipping."""
        batch = self.latest if batch is None else batch
        if batch is None or not batch.rewards:
            return []
        n = len(batch.completions)
        out = []
        for i in range(n):
            vals = [
                self.weights.get(k, 1.0) * v[i]
                for k, v in batch.rewards.items()
                if not math.isnan(v[i])
            ]
            out.append(sum(vals) if vals else math.nan)
        return out


class RecordingReward:
    """Wraps a reward callable: same ``__name__`` and result, outputs kept by the recorder."""

    def __init__(self, inner: Callable, recorder: BatchRecorder, *, first: bool) -> None:
        self.inner = inner
        self.recorder = recorder
        self.first = first
        self.__name__ = getattr(inner, "__name__", type(inner).__name__)

    def __call__(self, completions: Sequence[Any], prompts: Sequence[Any] | None = None, **kwargs):
        if self.first:
            self.recorder.begin(completions, prompts, kwargs)
        values = self.inner(completions=completions, prompts=prompts, **kwargs)
        self.recorder.add_rewards(self.__name__, values)
        return values


def merge_batches(parts: Sequence[Batch | None]) -> Batch | None:
    """One batch holding ``parts`` one after another (the processes' shares, in rank order,
    as TRL gathers rewards); None when no part holds a batch.

    >>> a = Batch(["x"], [{}], ["1"], [2], ["p"], [None], {"r": [1.0]}, 3)
    >>> b = Batch(["y"], [{}], ["2"], [3], ["q"], [None], {"r": [0.0]}, 3)
    >>> m = merge_batches([a, b])
    >>> m.completions, m.ids, m.people, m.rewards, m.number
    (['x', 'y'], ['1', '2'], [2, 3], {'r': [1.0, 0.0]}, 3)
    """
    present = [b for b in parts if b is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    names = [k for k in present[0].rewards if all(k in b.rewards for b in present)]
    return Batch(
        completions=[c for b in present for c in b.completions],
        puzzles=[x for b in present for x in b.puzzles],
        ids=[x for b in present for x in b.ids],
        people=[x for b in present for x in b.people],
        prompts=[x for b in present for x in b.prompts],
        scores=[x for b in present for x in b.scores],
        rewards={k: [v for b in present for v in b.rewards[k]] for k in names},
        number=present[0].number,
    )


def gather_batch(batch: Batch | None) -> Batch | None:
    """The global batch: every process's share of this step's batch, on every process
    (``batch`` itself in one process). A collective: every process calls it at every log."""
    if world_size() <= 1:
        return batch
    return merge_batches(gather_from_all(batch))


def zero_std_group_fraction(totals: Sequence[float], group_size: int) -> float | None:
    """Fraction of consecutive groups of ``group_size`` whose rewards are all equal.

    >>> zero_std_group_fraction([1, 1, 0, 1, 2, 2], 2)
    0.6666666666666666
    """
    if group_size < 1 or not totals or len(totals) % group_size:
        return None
    groups = [totals[i : i + group_size] for i in range(0, len(totals), group_size)]
    return sum(not group_has_signal(g) for g in groups) / len(groups)


def batch_statistics(batch: Batch, prefilled_think: bool) -> dict[str, Any]:
    """Ratios, exact-format rate, lenient accuracy and the answer-collapse fields of a batch."""
    import rewards

    summary = rewards.summarize(batch.scores)
    n = len(batch.completions)
    lenient_right = 0
    patterns: Counter[str] = Counter()
    truths: list[str] = []
    for text, puzzle in zip(batch.completions, batch.puzzles, strict=True):
        solution = tuple(bool(x) for x in json_or_value(puzzle.get("solution", [])))
        truths.append(pattern_of(solution))
        parsed = rewards.parse_answer(text, puzzle, lenient=True, prefilled_think=prefilled_think)
        if parsed is None:
            continue
        patterns[pattern_of(parsed)] += 1
        if tuple(parsed) == solution:
            lenient_right += 1
    out: dict[str, Any] = {
        "format_error_ratio": summary["format_error_ratio"],
        "all_correct_ratio": summary["all_correct_ratio"],
        "wrong_answer_ratio": summary["wrong_answer_ratio"],
        "unparsed_ratio": summary["unparsed_ratio"],
        "exact_format_ratio": 1.0 - summary["format_error_ratio"],
        "lenient_accuracy": lenient_right / n if n else None,
        "top_answer_pattern": None,
        "top_answer_pattern_share": None,
        "top_answer_pattern_truth_share": None,
    }
    if patterns:
        top, count = patterns.most_common(1)[0]
        out["top_answer_pattern"] = top
        out["top_answer_pattern_share"] = count / sum(patterns.values())
        out["top_answer_pattern_truth_share"] = truths.count(top) / len(truths) if truths else None
    return out


def _f(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class KKRunCallback(TrainerCallback):
    """Writes run records for one stage and drives temperature, checkpoints and promotion.

    ``ctx`` is the driver's ``RunContext`` (run directory, config, dashboard, state, events).
    """

    def __init__(
        self,
        ctx: Any,
        *,
        stage_name: str,
        stage_cfg: Any,
        first_step: int,
        last_step: int,
        recorder: BatchRecorder,
        prefilled_think: bool,
    ) -> None:
        self.ctx = ctx
        self.stage_name = stage_name
        self.stage_cfg = stage_cfg
        self.first_step = first_step
        self.last_step = last_step
        self.recorder = recorder
        self.prefilled_think = prefilled_think
        self.trainer: Any = None  # set by the driver once the trainer exists
        self._t0: float | None = None
        self._step_seconds = math.nan
        self._temperature = math.nan  # set before each step (on_step_begin)
        self.promoted: str | None = None
        self._batch: Batch | None = None  # the last logged step's global batch
        # This stage's steps recorded before a resume count toward the promotion window.
        self.history: list[rr.StepMetrics] = [m for m in ctx.history if m.stage == stage_name]

    # -- helpers ---------------------------------------------------------------------------
    def stage_step(self, global_step: int) -> int:
        return global_step - self.first_step + 1

    # -- TrainerCallback -------------------------------------------------------------------
    def on_step_begin(self, args, state, control, **kwargs):
        step = state.global_step + 1  # the step about to run
        # The schedule the trainer's own arguments hold (kk_temperature_*, also saved in
        # every checkpoint's training_args.bin).
        self._temperature = args.stage_temperature(self.stage_step(step))
        if self.trainer is not None:
            set_temperature(self.trainer, self._temperature)
        self._t0 = time.perf_counter()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        self._step_seconds = time.perf_counter() - self._t0 if self._t0 is not None else math.nan
        every = int(getattr(args, "kk_checkpoint_every", 0) or 0)
        step = state.global_step
        if every > 0 and step % every == 0 and step < self.last_step:
            control.should_save = True
        if self.ctx.interrupted:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "reward" not in logs and "loss" not in logs:
            return control  # end-of-train summary log
        step = state.global_step
        metrics = self._metrics(step, logs, args)
        sample = self._write(metrics, step)
        self.history.append(metrics)
        self.ctx.history.append(metrics)
        raised = self.ctx.dashboard_step(metrics, sample)
        if raised is None:
            self._alerts()  # no dashboard: the driver's own alert tracker
        else:
            for ev in raised:
                self.ctx.emit(ev)
        self._promotion(control, step)
        return control

    def on_save(self, args, state, control, **kwargs):
        src = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.ctx.adopt_checkpoint(src, f"step-{state.global_step}", state.global_step)
        return control

    # -- records ---------------------------------------------------------------------------
    def _metrics(self, step: int, logs: dict[str, Any], args: Any) -> rr.StepMetrics:
        fill = getattr(self.trainer, "kk_last_fill", None)  # set when dynamic sampling is on
        # Dynamic sampling runs in one process only (curriculum.validate), so a gathered
        # batch is always a one-round batch.
        batch = gather_batch(self.recorder.step_batch(fill.rounds if fill is not None else 1))
        self._batch = batch
        num_gen = int(args.num_generations)
        stats: dict[str, Any] = {}
        frac_zero = _f(logs.get("frac_reward_zero_std"))
        totals = self.recorder.totals(batch) if batch is not None else []
        groups = self._groups(totals, num_gen, fill)
        if batch is not None:
            stats = batch_statistics(batch, self.prefilled_think)
            own = zero_std_group_fraction(totals, num_gen)
            if own is not None:
                frac_zero = own
        if fill is not None:
            frac_zero = fill.frac_zero_std_trained  # the batch trained on, not the one seen
        rewards_means = {
            key[len("rewards/") : -len("/mean")]: float(v)
            for key, v in logs.items()
            if key.startswith("rewards/") and key.endswith("/mean") and v is not None
        }
        n_completions = len(batch.completions) if batch is not None else 0
        if fill is not None:
            # Every round's completions took the step's time; their mean length is taken to
            # be the step's own (the refill rounds' lengths are not logged).
            n_completions = fill.groups_generated * num_gen
        mean_len = _f(logs.get("completions/mean_length")) or 0.0
        secs = self._step_seconds
        tps = (
            (mean_len * n_completions / secs) if secs and secs > 0 and math.isfinite(secs) else 0.0
        )
        nan = math.nan
        return rr.StepMetrics(
            stage=self.stage_name,
            global_step=step,
            stage_step=self.stage_step(step),
            time=time.time(),
            step_seconds=float(secs),
            reward_mean=_f(logs.get("reward")) if logs.get("reward") is not None else nan,
            reward_std=_f(logs.get("reward_std")) if logs.get("reward_std") is not None else nan,
            rewards=rewards_means,
            format_error_ratio=stats.get("format_error_ratio", nan),
            all_correct_ratio=stats.get("all_correct_ratio", nan),
            wrong_answer_ratio=stats.get("wrong_answer_ratio", nan),
            unparsed_ratio=stats.get("unparsed_ratio", nan),
            completion_length_mean=mean_len,
            completion_length_min=_f(logs.get("completions/min_length")) or 0.0,
            completion_length_max=_f(logs.get("completions/max_length")) or 0.0,
            truncation_ratio=_f(logs.get("completions/clipped_ratio")) or 0.0,
            frac_zero_std_groups=frac_zero if frac_zero is not None else nan,
            learning_rate=_f(logs.get("learning_rate")) or 0.0,
            temperature=self._temperature,
            num_generations=num_gen,
            tokens_per_second=float(tps),
            loss=_f(logs.get("loss")),
            kl=_f(logs.get("kl")),
            entropy=_f(logs.get("entropy")),
            grad_norm=_f(logs.get("grad_norm")),
            top_answer_pattern=stats.get("top_answer_pattern"),
            top_answer_pattern_share=stats.get("top_answer_pattern_share"),
            top_answer_pattern_truth_share=stats.get("top_answer_pattern_truth_share"),
            exact_format_ratio=stats.get("exact_format_ratio"),
            lenient_accuracy=stats.get("lenient_accuracy"),
            batch_completions=len(batch.completions) if batch is not None else None,
            world_size=world_size(),
            **groups,
        )

    def _groups(self, totals: Sequence[float], num_gen: int, fill: Any) -> dict[str, Any]:
        """The dynamic-sampling fields of StepMetrics (with it off: one round, no drops;
        ``totals``: the step batch's weighted rewards)."""
        if fill is not None:
            return {
                "zero_std_groups_dropped": int(fill.zero_std_dropped),
                "generation_rounds": int(fill.rounds),
                "groups_generated": int(fill.groups_generated),
                "zero_std_groups_generated": int(fill.zero_std_generated),
                "batch_filled": bool(fill.filled),
            }
        if not totals or len(totals) % num_gen:
            return {}
        flags = groups_with_signal(totals, num_gen)
        return {"groups_generated": len(flags), "zero_std_groups_generated": flags.count(False)}

    def _write(self, metrics: rr.StepMetrics, step: int) -> rr.CompletionSample | None:
        run_dir = self.ctx.run_dir
        batch = self._batch  # the global batch the metrics describe
        if not self.ctx.is_main:
            return None
        rr.append_record(run_dir / rr.METRICS_FILE, metrics)
        if batch is None or not batch.completions:
            return None
        k = max(0, int(self.ctx.config.run.samples_per_step))
        rng = random.Random(step)  # deterministic choice, independent of the global RNG
        picks = rng.sample(range(len(batch.completions)), min(k, len(batch.completions)))
        first = None
        for i in picks:
            s = batch.scores[i]
            sample = rr.CompletionSample(
                stage=self.stage_name,
                global_step=step,
                puzzle_id=batch.ids[i],
                people=batch.people[i],
                completion=batch.completions[i],
                format=float(s.format),
                answer=float(s.answer),
                total=float(s.total),
                kind=s.kind,
                reason=s.reason,
                solution_text_format=str(batch.puzzles[i].get("solution_text_format", "")),
                temperature=self._temperature,
                prompt=batch.prompts[i],
            )
            rr.append_record(run_dir / rr.COMPLETIONS_FILE, sample)
            first = first or sample
        return first

    def _alerts(self) -> None:
        checker = self.ctx.alert_checker
        if checker is None:
            return
        try:
            events = checker(self.ctx.history)
        except Exception:  # the alert checks must never stop training
            return
        for ev in events:
            self.ctx.emit(ev)

    def _promotion(self, control: Any, step: int) -> None:
        promo = getattr(self.stage_cfg, "promotion", None)
        if promo is None or step >= self.last_step:
            return
        # Every process holds the same global window; the main process's decision is the
        # one all of them follow, so no process can leave the stage alone.
        reason = broadcast_from_main(should_promote(promo, self.history))
        if reason:
            self.promoted = str(reason)
            self.ctx.event(
                "promotion",
                self.stage_name,
                f"stage {self.stage_name} promoted at step {step}: {reason}",
                {"stage_step": self.stage_step(step), "reason": str(reason)},
                step=step,
            )
            control.should_training_stop = True


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
