"""`score`, `parse_answer`, `summarize`: the reward schemes over whole completions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rewards.parsing import (
    check_format,
    completion_text,
    lenient_answer,
    lenient_claims,
    parse_strict,
    tag_count_score,
)
from rewards.puzzle import AnswerKey, answer_key

__all__ = ["KINDS", "SCHEMES", "Scheme", "Score", "parse_answer", "score", "summarize"]

KINDS = ("correct", "wrong", "unparsed", "format_error")
_MAX_PARTIAL_ANSWER = 20_000


@dataclass(frozen=True, slots=True)
class Score:
    """One completion's reward: components, their sum, the outcome kind and a short reason."""

    format: float
    answer: float
    total: float
    kind: str
    reason: str


@dataclass(frozen=True)
class Scheme:
    """A reward scheme: how the format is checked and what each outcome is worth.

    `format_mode` is "strict", "instruct", "lenient" or "tag_count" (0.25 per well-placed
    tag). `answer_mode` is "strict" (all-or-nothing) or "partial" (fraction of people
    right, times `answer_correct`). With a strict answer a failed format check gives
    `answer_unparsed`; a partial answer is read from the last `<answer>` block even when
    the format fails, so shaping credit does not vanish with the format. "tag_count"
    format values replace `format_ok`/`format_bad`, and `kind` then follows the strict
    format check.
    """

    name: str
    format_mode: str = "strict"
    answer_mode: str = "strict"
    format_ok: float = 1.0
    format_bad: float = -1.0
    answer_correct: float = 2.0
    answer_wrong: float = -1.5
    answer_unparsed: float = -2.0
    description: str = ""

    def __post_init__(self) -> None:
        if self.format_mode not in ("strict", "instruct", "lenient", "tag_count"):
            raise ValueError(
                f"scheme {self.name!r}: format_mode must be strict, instruct, lenient or "
                f"tag_count, got {self.format_mode!r}"
            )
        if self.answer_mode not in ("strict", "partial"):
            raise ValueError(
                f"scheme {self.name!r}: answer_mode must be strict or partial, "
                f"got {self.answer_mode!r}"
            )


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme(
            "logic_rl",
            description="Logic-RL's harsh scheme: strict format +1/-1, answer +2/-1.5/-2",
        ),
        Scheme(
            "logic_rl_instruct",
            format_mode="instruct",
            description="as logic_rl, but whitespace/newlines allowed between </think> and <answer>",
        ),
        Scheme(
            "logic_rl_lenient",
            format_mode="lenient",
            description="as logic_rl, but tags anywhere in order; last answer block is read",
        ),
        Scheme(
            "partial",
            format_mode="tag_count",
            answer_mode="partial",
            answer_correct=1.0,
            answer_wrong=0.0,
            answer_unparsed=0.0,
            description="shaping: 0.25 per well-placed tag + fraction of people right (0..1)",
        ),
    )
}

# Scores repeat (same scheme, same outcome): reuse instances instead of building new ones.
_SCORE_CACHE: dict[tuple, Score] = {}


def _make(fmt: float, ans: float, kind: str, reason: str) -> Score:
    cache_key = (fmt, ans, kind, reason)
    hit = _SCORE_CACHE.get(cache_key)
    if hit is None:
        hit = Score(fmt, ans, fmt + ans, kind, reason)
        if len(_SCORE_CACHE) < 50_000:
            _SCORE_CACHE[cache_key] = hit
    return hit


def _scheme(scheme: str | Scheme) -> Scheme:
    if isinstance(scheme, Scheme):
        return scheme
    found = SCHEMES.get(scheme)
    if found is None:
        raise ValueError(f"unknown reward scheme {scheme!r}; available: {', '.join(SCHEMES)}")
    return found


def score(
    completion: str,
    puzzle: Mapping,
    *,
    scheme: str | Scheme = "logic_rl",
    prefilled_think: bool = False,
) -> Score:
    """Score one completion against a puzzle record.

    Raises `ValueError` only for a malformed puzzle record or an unknown scheme; any
    completion (any string, or a TRL conversational message list) gets a Score.

    >>> puzzle = {"names": ["Zoey", "Oliver"], "solution": [True, False]}
    >>> score("<think>...</think><answer>(1) Zoey is a knight\\n(2) Oliver is a knave</answer>",
    ...       puzzle)
    Score(format=1.0, answer=2.0, total=3.0, kind='correct', reason='ok')
    >>> score("...</think><answer>Zoey is a knave, Oliver is a knave</answer>", puzzle,
    ...       prefilled_think=True).total
    -0.5
    >>> score("<answer>Zoey is a knight</answer>", puzzle).kind
    'format_error'
    """
    sch = _scheme(scheme)
    key = answer_key(puzzle)
    text = completion if isinstance(completion, str) else completion_text(completion)
    if sch.format_mode == "tag_count":
        # graded format credit; the outcome kind still follows the strict reading
        result = check_format(text, "strict", prefilled_think)
        fmt_ok = fmt_bad = tag_count_score(text, prefilled_think)
    else:
        result = check_format(text, sch.format_mode, prefilled_think)
        fmt_ok, fmt_bad = sch.format_ok, sch.format_bad
    if sch.answer_mode == "partial":
        fmt = fmt_ok if result.ok else fmt_bad
        return _partial(sch, key, text, fmt, result.ok, result.reason, result.answer)
    if not result.ok:
        return _make(fmt_bad, sch.answer_unparsed, "format_error", result.reason)
    parsed = parse_strict(result.answer or "", key)
    if parsed.roles is None:
        return _make(fmt_ok, sch.answer_unparsed, "unparsed", parsed.reason)
    if parsed.roles == key.solution:
        return _make(fmt_ok, sch.answer_correct, "correct", "ok")
    wrong = sum(a != b for a, b in zip(parsed.roles, key.solution, strict=False))
    return _make(fmt_ok, sch.answer_wrong, "wrong", f"{wrong} of {key.people} wrong")


def _partial(
    sch: Scheme,
    key: AnswerKey,
    text: str,
    fmt_value: float,
    format_ok: bool,
    format_reason: str,
    answer: str | None,
) -> Score:
    # kind follows the strict reading; the value counts people whose only stated role is right
    if answer is None:
        answer = _last_answer_block(text)
    right = 0
    if answer is not None and len(answer) > _MAX_PARTIAL_ANSWER:
        answer = answer.strip()[:_MAX_PARTIAL_ANSWER]  # claims, not a book
    if answer is not None:
        claims = lenient_claims(answer, key)
        right = sum(c == {truth} for c, truth in zip(claims, key.solution, strict=False))
    value = sch.answer_correct * right / key.people if answer is not None else sch.answer_unparsed
    if not format_ok:
        return _make(fmt_value, value, "format_error", format_reason)
    parsed = parse_strict(answer or "", key)
    if parsed.roles is None:
        return _make(fmt_value, value, "unparsed", parsed.reason)
    if parsed.roles == key.solution:
        return _make(fmt_value, value, "correct", "ok")
    return _make(fmt_value, value, "wrong", f"{key.people - right} of {key.people} wrong")


def _last_answer_block(text: str) -> str | None:
    end = text.rfind("</answer>")
    if end < 0:
        return None
    start = text.rfind("<answer>", 0, end)
    return None if start < 0 else text[start + len("<answer>") : end]


def parse_answer(
    completion: str,
    puzzle: Mapping,
    *,
    lenient: bool = False,
    prefilled_think: bool = False,
) -> tuple[bool, ...] | None:
    """The roles a completion states (True = the puzzle's truthful role), or None.

    Strict (default): the answer block of a strictly formatted completion, parsed by the
    strict grammar. Lenient: the answer in any format, each person's last
    `NAME is [not] a ROLE` claim (after the last `<answer>`, else after `</think>`, else
    anywhere); used for "lenient accuracy".

    >>> puzzle = {"names": ["Zoey", "Oliver"], "solution": [True, False]}
    >>> parse_answer("<think>.</think><answer>Zoey is a knight. Oliver is a knave.</answer>",
    ...              puzzle)
    (True, False)
    >>> parse_answer("So Zoey is a knight and Oliver is not a knight.", puzzle) is None
    True
    >>> parse_answer("So Zoey is a knight and Oliver is not a knight.", puzzle, lenient=True)
    (True, False)
    """
    key = answer_key(puzzle)
    text = completion if isinstance(completion, str) else completion_text(completion)
    if lenient:
        return lenient_answer(text, key)
    result = check_format(text, "strict", prefilled_think)
    if not result.ok:
        return None
    return parse_strict(result.answer or "", key).roles


def summarize(scores: Sequence[Score]) -> dict[str, float]:
    """Batch ratios of each outcome kind and the mean of each component.

    An empty batch gives NaN means and zero ratios.

    >>> p = {"names": ["Zoey"], "solution": [True]}
    >>> s = [score("<think>.</think><answer>Zoey is a knight</answer>", p), score("", p)]
    >>> summarize(s)["all_correct_ratio"], summarize(s)["total_mean"]
    (0.5, 0.0)
    """
    n = len(scores)
    counts = dict.fromkeys(KINDS, 0)
    fmt = ans = tot = 0.0
    for s in scores:
        counts[s.kind] = counts.get(s.kind, 0) + 1
        fmt += s.format
        ans += s.answer
        tot += s.total
    denom = n or 1
    nan = math.nan
    return {
        "format_error_ratio": counts["format_error"] / denom,
        "all_correct_ratio": counts["correct"] / denom,
        "wrong_answer_ratio": counts["wrong"] / denom,
        "unparsed_ratio": counts["unparsed"] / denom,
        "format_mean": fmt / n if n else nan,
        "answer_mean": ans / n if n else nan,
        "total_mean": tot / n if n else nan,
    }
