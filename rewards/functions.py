"""TRL reward functions: picklable callable classes with GRPOTrainer's calling convention.

TRL 1.16 calls every reward function as
``f(prompts=..., completions=..., completion_ids=..., **columns, trainer_state=...,
log_extra=..., log_metric=...)`` where each dataset column (names, solution, knight_knave,
solution_text_format, ...) is a list with one entry per completion, and logs the mean
of the returned list as ``rewards/<f.__name__>/mean``. Completions are strings, or for
conversational datasets ``[{"role": "assistant", "content": ...}]``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from kk_puzzles.compact_trace import compact_trace, matching_lines, trace_lines
from rewards.parsing import (
    check_format,
    completion_text,
    tag_count_score,
    think_block,
)
from rewards.scoring import Scheme, Score, score, summarize

__all__ = [
    "CosineLengthReward",
    "InstructFormatReward",
    "LanguageConsistencyReward",
    "LenientFormatReward",
    "LogicRLAnswerReward",
    "LogicRLFormatReward",
    "LogicRLReward",
    "OverlongReward",
    "PartialAnswerReward",
    "RepetitionPenaltyReward",
    "RewardFunction",
    "TagCountReward",
    "TracePrefixReward",
]

# Dataset columns that make up the answer key of a puzzle.
PUZZLE_FIELDS = (
    "names", "solution", "knight_knave", "solution_text_format", "reward_model", "statements",
)  # fmt: skip


def _puzzles(n: int, columns: Mapping[str, Any]) -> list[dict]:
    rows: list[dict] = [{} for _ in range(n)]
    for field in PUZZLE_FIELDS:
        values = columns.get(field)
        if values is None:
            continue
        if not isinstance(values, (list, tuple)) or len(values) != n:
            raise ValueError(
                f"reward column {field!r} must be a list with one value per completion ({n})"
            )
        for row, value in zip(rows, values, strict=False):
            row[field] = value
    return rows


def _lengths(texts: Sequence[str], completion_ids: Any, unit: str) -> list[int]:
    if (
        unit == "tokens"
        and isinstance(completion_ids, (list, tuple))
        and len(completion_ids) == len(texts)
    ):
        return [len(ids) for ids in completion_ids]
    if unit == "chars":
        return [len(t) for t in texts]
    # no token ids (plain call): whitespace-separated words stand in for tokens
    return [len(t.split()) for t in texts]


class RewardFunction:
    """Base class: validated parameters, a `__name__` for TRL's logs, TRL's call signature.

    Subclasses set `name`, `defaults` (parameter -> default value) and implement
    `_rewards(texts, columns) -> list[float]`.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            allowed = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(
                f"reward {self.name!r} has no parameter {unknown[0]!r}; parameters: {allowed}"
            )
        self.params = {**self.defaults, **params}
        for key, value in self.params.items():
            default = self.defaults[key]
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(
                        f"reward {self.name!r}: {key} must be true/false, got {value!r}"
                    )
            elif isinstance(default, (int, float)) and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ValueError(f"reward {self.name!r}: {key} must be a number, got {value!r}")
        self.__name__ = self.name
        self.weight = 1.0  # build_rewards sets the YAML weight
        self._check()

    def _check(self) -> None:
        """Validate parameter values (subclasses)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def __call__(
        self,
        completions: Sequence[Any],
        prompts: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        texts = [completion_text(c) for c in completions]
        return self._rewards(texts, prompts, kwargs)

    def _rewards(
        self, texts: list[str], prompts: Sequence[Any] | None, columns: Mapping[str, Any]
    ) -> list[float]:
        raise NotImplementedError


class _ScoredReward(RewardFunction):
    """Rewards read off `rewards.score` (the logic_rl family)."""

    defaults: ClassVar[dict[str, Any]] = {
        "prefilled_think": False,
        "format_mode": "strict",
        "format_reward": 1.0,
        "format_penalty": -1.0,
        "correct_reward": 2.0,
        "wrong_penalty": -1.5,
        "unparsed_penalty": -2.0,
        "log_ratios": True,
    }

    def _check(self) -> None:
        if self.params["format_mode"] not in ("strict", "instruct", "lenient"):
            raise ValueError(
                f"reward {self.name!r}: format_mode must be strict, instruct or lenient, "
                f"got {self.params['format_mode']!r}"
            )
        p = self.params
        self.scheme = Scheme(
            f"{self.name}:{p['format_mode']}",
            format_mode=p["format_mode"],
            format_ok=float(p["format_reward"]),
            format_bad=float(p["format_penalty"]),
            answer_correct=float(p["correct_reward"]),
            answer_wrong=float(p["wrong_penalty"]),
            answer_unparsed=float(p["unparsed_penalty"]),
        )

    def scores(self, texts: Sequence[str], columns: Mapping[str, Any]) -> list[Score]:
        puzzles = _puzzles(len(texts), columns)
        prefilled = self.params["prefilled_think"]
        return [
            score(t, p, scheme=self.scheme, prefilled_think=prefilled)
            for t, p in zip(texts, puzzles, strict=False)
        ]

    def _rewards(self, texts, prompts, columns):
        scores = self.scores(texts, columns)
        log_metric = columns.get("log_metric")
        if self.params["log_ratios"] and callable(log_metric) and scores:
            for key, value in summarize(scores).items():
                if key.endswith("_ratio"):
                    log_metric(f"kk/{key}", value)
        return [self._pick(s) for s in scores]

    def _pick(self, s: Score) -> float:
        raise NotImplementedError


class LogicRLFormatReward(_ScoredReward):
    """Format component of the Logic-RL scheme: `format_reward` (+1) or `format_penalty` (-1).

    Needs no puzzle columns (they only feed the ratio metrics). Parameters:
    `prefilled_think` (the prompt ends with `<think>`), `format_mode`
    (strict | instruct | lenient), the five values, `log_ratios` (report format-error /
    correct / wrong / unparsed ratios through TRL's `log_metric` as `kk/<ratio>`).

    >>> f = LogicRLFormatReward()
    >>> f(["<think>a</think><answer>b</answer>", "no tags"],
    ...   names=[["Zoey"], ["Zoey"]], solution=[[True], [True]])
    [1.0, -1.0]
    """

    name = "logic_rl_format"

    def _rewards(self, texts, prompts, columns):
        if any(columns.get(f) is not None for f in PUZZLE_FIELDS):
            return super()._rewards(texts, prompts, columns)
        # the format alone needs no puzzle: score it without one
        sch, pre = self.scheme, self.params["prefilled_think"]
        return [
            sch.format_ok if check_format(t, sch.format_mode, pre).ok else sch.format_bad
            for t in texts
        ]

    def _pick(self, s: Score) -> float:
        return s.format


class LogicRLAnswerReward(_ScoredReward):
    """Answer component of the Logic-RL scheme: +2 correct, -1.5 wrong, -2 unparsed/format.

    Same parameters as `logic_rl_format`; the two components sum to `logic_rl`.

    >>> f = LogicRLAnswerReward(prefilled_think=True)
    >>> f([".</think><answer>Zoey is a knave</answer>", ".</think><answer>Zoey</answer>"],
    ...   names=['["Zoey"]'] * 2, solution=["[true]"] * 2)
    [-1.5, -2.0]
    """

    name = "logic_rl_answer"

    def _pick(self, s: Score) -> float:
        return s.answer


class LogicRLReward(_ScoredReward):
    """The combined Logic-RL reward (format + answer): 3, -0.5, -1 or -3 by default.

    >>> LogicRLReward()(["<think>.</think><answer>Zoey is a knight</answer>"],
    ...                 names=[["Zoey"]], solution=[[True]])
    [3.0]
    """

    name = "logic_rl"

    def _pick(self, s: Score) -> float:
        return s.total


class _FormatOnly(RewardFunction):
    mode: ClassVar[str] = "strict"
    defaults: ClassVar[dict[str, Any]] = {"prefilled_think": False, "reward": 1.0, "penalty": -1.0}

    def _rewards(self, texts, prompts, columns):
        p = self.params
        return [
            float(
                p["reward"] if check_format(t, self.mode, p["prefilled_think"]).ok else p["penalty"]
            )
            for t in texts
        ]


class LenientFormatReward(_FormatOnly):
    """`reward` (1.0) when `<think>`, `</think>`, `<answer>`, `</answer>` appear in that
    order anywhere (repeats and other text allowed), else `penalty` (-1.0).

    >>> LenientFormatReward()(["Sure! <think>a</think>\\n\\n<answer>b</answer> bye", "<answer>b"])
    [1.0, -1.0]
    """

    name = "lenient_format"
    mode = "lenient"


class InstructFormatReward(_FormatOnly):
    """Strict format, except any whitespace (newlines) is allowed between `</think>` and
    `<answer>`, as instruct models emit: `reward` (1.0) or `penalty` (-1.0).

    >>> InstructFormatReward()(["<think>a</think>\\n<answer>b</answer>", "<think>a</think>x<answer>b</answer>"])
    [1.0, -1.0]
    """

    name = "instruct_format"
    mode = "instruct"


class TagCountReward(RewardFunction):
    """Partial format credit: `per_tag` (0.25) for each well-placed tag, so 0 to 1.

    >>> TagCountReward()(["<think>a</think><answer>b</answer>", "<think>a</think>", ""])
    [1.0, 0.5, 0.0]
    """

    name = "tag_count"
    defaults: ClassVar[dict[str, Any]] = {"prefilled_think": False, "per_tag": 0.25}

    def _rewards(self, texts, prompts, columns):
        p = self.params
        return [float(tag_count_score(t, p["prefilled_think"], p["per_tag"])) for t in texts]


class PartialAnswerReward(RewardFunction):
    """Partial answer credit: `scale` times the fraction of people whose only stated role
    in the last `<answer>` block is right (a person given both roles counts wrong); 0 when
    there is no answer block. Format is not checked (combine with a format reward).

    >>> PartialAnswerReward()(["<answer>Zoey is a knight, Oliver is a knight</answer>"],
    ...                       names=[["Zoey", "Oliver"]], solution=[[True, False]])
    [0.5]
    """

    name = "partial_answer"
    defaults: ClassVar[dict[str, Any]] = {"prefilled_think": False, "scale": 1.0}

    def _rewards(self, texts, prompts, columns):
        puzzles = _puzzles(len(texts), columns)
        sch = Scheme(
            "partial_answer",
            format_mode="tag_count",
            answer_mode="partial",
            answer_correct=float(self.params["scale"]),
            answer_wrong=0.0,
            answer_unparsed=0.0,
        )
        pre = self.params["prefilled_think"]
        return [
            score(t, p, scheme=sch, prefilled_think=pre).answer
            for t, p in zip(texts, puzzles, strict=False)
        ]


class CosineLengthReward(RewardFunction):
    """Cosine length shaping (Yeo et al. 2025, "Demystifying Long Chain-of-Thought").

    Correct answers (strict Logic-RL reading) earn from `max_correct` at length 0 down to
    `min_correct` at `max_length`; wrong / unparsed / badly formatted ones from
    `min_wrong` at length 0 up to `max_wrong` at `max_length` (longer tries are punished
    less). Value = lo + (hi - lo) * (1 + cos(pi * t)) / 2 with t = min(length / max_length, 1)
    and (hi, lo) = (max_correct, min_correct) for correct, (min_wrong, max_wrong) otherwise.
    Length: `unit` "tokens" (TRL's completion_ids; whitespace words when absent), "words"
    or "chars".

    >>> f = CosineLengthReward(max_length=4, unit="words")
    >>> f(["<think>.</think><answer>Zoey is a knight</answer>",
    ...    "<think>.</think><answer>Zoey is a knave</answer>"], names=[["Zoey"]] * 2,
    ...   solution=[[True]] * 2)
    [0.5, -0.5]
    """

    name = "cosine_length"
    defaults: ClassVar[dict[str, Any]] = {
        "prefilled_think": False,
        "format_mode": "strict",
        "max_length": 1024,
        "unit": "tokens",
        "min_correct": 0.5,
        "max_correct": 1.0,
        "min_wrong": -1.0,
        "max_wrong": -0.5,
    }

    def _check(self) -> None:
        if self.params["max_length"] <= 0:
            raise ValueError(f"reward {self.name!r}: max_length must be > 0")
        if self.params["unit"] not in ("tokens", "words", "chars"):
            raise ValueError(f"reward {self.name!r}: unit must be tokens, words or chars")
        if self.params["format_mode"] not in ("strict", "instruct", "lenient"):
            raise ValueError(
                f"reward {self.name!r}: format_mode must be strict, instruct or lenient"
            )

    def _rewards(self, texts, prompts, columns):
        p = self.params
        sch = Scheme("cosine", format_mode=p["format_mode"])
        puzzles = _puzzles(len(texts), columns)
        lengths = _lengths(texts, columns.get("completion_ids"), p["unit"])
        out = []
        for text, puzzle, length in zip(texts, puzzles, lengths, strict=False):
            correct = (
                score(text, puzzle, scheme=sch, prefilled_think=p["prefilled_think"]).kind
                == "correct"
            )
            hi, lo = (
                (p["max_correct"], p["min_correct"])
                if correct
                else (p["min_wrong"], p["max_wrong"])
            )
            t = min(length / p["max_length"], 1.0)
            out.append(float(lo + (hi - lo) * (1.0 + math.cos(math.pi * t)) / 2.0))
        return out


class RepetitionPenaltyReward(RewardFunction):
    """N-gram repetition penalty: `max_penalty` x (1 - distinct n-grams / all n-grams) over
    the completion's lower-cased words (the last `max_chars` characters: loops sit at the
    end); 0 for fewer than `ngram_size` words.

    >>> f = RepetitionPenaltyReward(ngram_size=2, max_penalty=-1.0)
    >>> f(["a b c d", "a b a b a b"])
    [0.0, -0.6]
    """

    name = "repetition_penalty"
    defaults: ClassVar[dict[str, Any]] = {
        "ngram_size": 3,
        "max_penalty": -1.0,
        "max_chars": 200_000,
    }

    def _check(self) -> None:
        if not isinstance(self.params["ngram_size"], int) or self.params["ngram_size"] < 1:
            raise ValueError(f"reward {self.name!r}: ngram_size must be an integer >= 1")
        if not isinstance(self.params["max_chars"], int) or self.params["max_chars"] < 1:
            raise ValueError(f"reward {self.name!r}: max_chars must be an integer >= 1")

    def _rewards(self, texts, prompts, columns):
        n = self.params["ngram_size"]
        out = []
        for text in texts:
            words = text[-self.params["max_chars"] :].lower().split()
            total = len(words) - n + 1
            if total <= 0:
                out.append(0.0)
                continue
            distinct = len(set(zip(*(words[i:] for i in range(n)), strict=False)))
            out.append(
                round(float(self.params["max_penalty"]) * (1.0 - distinct / total), 12) + 0.0
            )
        return out


class OverlongReward(RewardFunction):
    """Soft overlong punishment (DAPO): 0 up to `max_length - buffer`, then falling linearly
    to `penalty` at `max_length`, and `penalty` beyond. Length as in `cosine_length`.

    >>> f = OverlongReward(max_length=10, buffer=4, unit="words")
    >>> f(["w " * 6, "w " * 8, "w " * 12])
    [0.0, -0.5, -1.0]
    """

    name = "overlong"
    defaults: ClassVar[dict[str, Any]] = {
        "max_length": 1024,
        "buffer": 256,
        "penalty": -1.0,
        "unit": "tokens",
    }

    def _check(self) -> None:
        p = self.params
        if not 0 < p["buffer"] <= p["max_length"]:
            raise ValueError(f"reward {self.name!r}: need 0 < buffer <= max_length")
        if p["unit"] not in ("tokens", "words", "chars"):
            raise ValueError(f"reward {self.name!r}: unit must be tokens, words or chars")

    def _rewards(self, texts, prompts, columns):
        p = self.params
        start = p["max_length"] - p["buffer"]
        out = []
        for length in _lengths(texts, columns.get("completion_ids"), p["unit"]):
            over = min(max(length - start, 0) / p["buffer"], 1.0)
            out.append(float(p["penalty"]) * over + 0.0)  # no -0.0
        return out


# Letter ranges of the scripts we tell apart; anything else is "other".
_SCRIPTS: dict[str, str] = {
    "latin": "A-Za-z\u00c0-\u024f\u1e00-\u1eff",
    "greek": "\u0370-\u03ff\u1f00-\u1fff",
    "cyrillic": "\u0400-\u052f",
    "arabic": "\u0600-\u06ff\u0750-\u077f",
    "hebrew": "\u0590-\u05ff",
    "devanagari": "\u0900-\u097f",
    "thai": "\u0e00-\u0e7f",
    "hangul": "\uac00-\ud7af\u1100-\u11ff",
    "kana": "\u3040-\u30ff",
    "cjk": "\u4e00-\u9fff\u3400-\u4dbf",
}
_SCRIPT_RE = {name: re.compile(f"[{ranges}]") for name, ranges in _SCRIPTS.items()}
_LETTER = re.compile(r"[^\W\d_]")


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        # the user turns carry the quiz; a system prompt may be English whatever the quiz
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        chosen = users or [m for m in prompt if isinstance(m, dict)]
        return "".join(m["content"] for m in chosen if isinstance(m.get("content"), str))
    return ""


def dominant_script(text: str) -> str:
    """The script most letters of `text` are written in ("latin" when there are none).

    >>> dominant_script("Zoey says: 佐伊是骑士，奥利弗是无赖")
    'cjk'
    """
    best, best_count = "latin", 0
    for name, pattern in _SCRIPT_RE.items():
        count = len(pattern.findall(text))
        if count > best_count:
            best, best_count = name, count
    return best


class LanguageConsistencyReward(RewardFunction):
    """Language consistency: `scale` x the share of letters inside `<think>...</think>` that
    are in the prompt's script (`language="auto"`: the dominant script of the prompt's
    user turns, "latin" without a prompt) or a fixed one (`latin`, `cjk`, `cyrillic`,
    ...). 0 when the reasoning has no letters.

    >>> f = LanguageConsistencyReward()
    >>> f(["<think>ab 是骑</think>"], prompts=["Who is a knight?"])
    [0.5]
    """

    name = "language_consistency"
    defaults: ClassVar[dict[str, Any]] = {
        "language": "auto",
        "scale": 1.0,
        "prefilled_think": False,
        "max_chars": 100_000,
    }

    def _check(self) -> None:
        lang = self.params["language"]
        if lang != "auto" and lang not in _SCRIPTS:
            raise ValueError(
                f"reward {self.name!r}: language must be auto or one of {', '.join(_SCRIPTS)}"
            )

    def _rewards(self, texts, prompts, columns):
        p = self.params
        out = []
        for i, text in enumerate(texts):
            target = p["language"]
            if target == "auto":
                prompt = prompts[i] if prompts is not None and i < len(prompts) else ""
                target = dominant_script(_prompt_text(prompt)[-20_000:])
            block = think_block(text, p["prefilled_think"])
            if block is None:
                out.append(0.0)
                continue
            # a sample of the reasoning is enough for a share, and keeps 1 MB inputs cheap
            think = block[: p["max_chars"]]
            letters = len(_LETTER.findall(think))
            if not letters:
                out.append(0.0)
                continue
            share = len(_SCRIPT_RE[target].findall(think)) / letters
            out.append(float(p["scale"]) * share)
        return out


class TracePrefixReward(RewardFunction):
    """Process reward for the compact trace (`kk_puzzles.compact_trace`, the tiny model's
    reasoning format): `scale` times the share of the puzzle's reference trace lines that
    the reasoning reproduces, in order, before its first wrong line. Each line is one
    rule-checked step (a candidate row, one speaker's claim evaluated on it, ok or bad), so
    the reward says how far the reasoning went before its first mistake, where the answer
    reward only says whether it ended right. Needs the `statements` column; 0 without it.

    >>> rec = {"names": ['["Zoey", "Bob"]'], "knight_knave": ['{"knight": "knight", "knave": "knave"}'],
    ...        "statements": ["(('lying', 1), ('lying', 0))"]}
    >>> ref = compact_trace({k: v[0] for k, v in rec.items()}).splitlines()
    >>> f = TracePrefixReward(prefilled_think=True)
    >>> f(["\\n" + ref[0] + "\\nZoey knave Bob knave : x\\n</think>"], **rec) == [1 / len(ref)]
    True
    """

    name = "trace_prefix"
    defaults: ClassVar[dict[str, Any]] = {"prefilled_think": False, "scale": 1.0}

    def _rewards(self, texts, prompts, columns):
        puzzles = _puzzles(len(texts), columns)
        out = []
        for text, puzzle in zip(texts, puzzles, strict=False):
            if not puzzle.get("statements") or not puzzle.get("names"):
                out.append(0.0)
                continue
            ref = _reference_lines(
                str(puzzle["names"]),
                str(puzzle["statements"]),
                str(puzzle.get("knight_knave") or "{}"),
            )
            block = think_block(text, self.params["prefilled_think"])
            lines = trace_lines(text if block is None else block)  # no <think>: read it all
            out.append(float(self.params["scale"]) * matching_lines(lines, ref) / len(ref))
        return out


@functools.lru_cache(maxsize=4096)
def _reference_lines(names: str, statements: str, knight_knave: str) -> tuple[str, ...]:
    record = {"names": names, "statements": statements, "knight_knave": knight_knave}
    return tuple(compact_trace(record).splitlines())


REWARD_CLASSES: dict[str, type[RewardFunction]] = {
    cls.name: cls
    for cls in (
        LogicRLFormatReward,
        LogicRLAnswerReward,
        LogicRLReward,
        LenientFormatReward,
        InstructFormatReward,
        TagCountReward,
        PartialAnswerReward,
        CosineLengthReward,
        RepetitionPenaltyReward,
        OverlongReward,
        LanguageConsistencyReward,
        TracePrefixReward,
    )
}
