"""Format checks and answer parsing for K&K completions.

Everything here is linear in the completion length: tag checks use `str.count`/`str.find`,
the answer is cut into short segments that are checked word by word, and the few regexes
have no nested or overlapping quantifiers. Nothing here raises on any string.

Strict answer grammar (what the `<answer>` block may hold):

* claims `NAME is a ROLE` / `NAME is an ROLE`, one per person of the puzzle, each person
  exactly once, ROLE one of the puzzle's own two role words (case-insensitive);
* separators between claims: newlines, `,`, `;`, a sentence-ending `.` or `!`, and `and`;
* before a claim: an enumerator token (`(1)`, `1.`, `1)`, `-`, `*`) and connectives
  (`so`, `therefore`, `thus`, `hence`, `finally`, `also`, `then`).

Anything else (hedges like "knight or knave", "knight/knave", questions, negations,
group claims like "all of them are knights", extra people, prose) makes the answer
unparsable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from rewards.puzzle import AnswerKey

__all__ = [
    "END_MARKERS",
    "FormatResult",
    "StrictAnswer",
    "check_format",
    "completion_text",
    "lenient_claims",
    "parse_strict",
    "tag_count_score",
    "think_block",
]

THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = "<think>", "</think>", "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

# End-of-text markers a decoder may leave after </answer> when special tokens are kept.
END_MARKERS = (  # most common first: the tail check stops once only whitespace is left
    "<|im_end|>",
    "<|endoftext|>",
    "</s>",
    "<eos>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<end_of_turn>",
)
_HSPACE = " \t"
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")

FORMAT_MODES = ("strict", "instruct", "lenient")
_TAG = re.compile(r"</?(?:think|answer)>")
# The tag regex tries a match at every "<": above this many, str.count per tag is cheaper
# (a text no longer than this cannot hold more, so short texts skip the count).
_REGEX_MAX_LT = 50_000
_EXPECTED = list(TAGS)
_EXPECTED_PREFILLED = list(TAGS[1:])

# Segment separators of an answer block: newline , ; and a sentence-ending . or !
_SEGMENT = re.compile(r"[^\n,;.!]+")
_ENUMERATOR = re.compile(r"\(\d{1,3}\)|\d{1,3}[.):]?|[-*•]")
_FILLERS = frozenset({"so", "therefore", "thus", "hence", "finally", "also", "then"})
_ARTICLES = frozenset({"a", "an"})
_LENIENT_TAIL = 8192
_SPACE = re.compile(r"\s")
_MAX_SEGMENT = 200  # a claim is "NAME is a ROLE"; longer segments are prose
# One claim with what may precede it; answers that are a run of these skip the general
# parser. Groups: separators, enumerator, connectives, name, role. No group can start with
# a character the one before it may end with, so there is nothing to backtrack into.
_FAST_CLAIM = re.compile(
    r"([\s,;.!]*)"
    r"((?:\(\d{1,3}\)|\d{1,3}[.)])[ \t]+)?"
    r"((?:(?i:and|so|therefore|thus|hence|finally|also|then)\b[ \t,]*){0,2})"
    r"([^\W\d_][\w'’-]*)[ \t]+[iI][sS][ \t]+[aA][nN]?[ \t]+([^\W\d_]+)"
)
_SEPARATORS_ONLY = re.compile(r"[\s,;.!]*")
_AND_FIRST = re.compile(r"(?i)and\b")


class FormatResult(NamedTuple):
    """Outcome of a format check: `ok`, a short `reason`, and the answer block text (or None)."""

    ok: bool
    reason: str
    answer: str | None


def completion_text(completion: object) -> str:
    """Text of a completion: a plain string, or TRL's conversational list of messages.

    For a conversation the contents of the assistant messages are joined; content given
    as a list of parts keeps its text parts; reasoning that a response parser moved to
    `reasoning_content` (or `thinking`) goes back in front as `<think>...</think>`.
    Anything else gives "".

    >>> completion_text([{"role": "assistant", "content": "<think>x</think>"}])
    '<think>x</think>'
    >>> completion_text([{"role": "assistant", "reasoning_content": "hm", "content": "<answer>"}])
    '<think>hm</think><answer>'
    >>> completion_text(None)
    ''
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)):
        parts: list[str] = []
        for message in completion:
            if not isinstance(message, dict) or message.get("role", "assistant") != "assistant":
                continue
            # TRL's response parsing (tokenizers with a response schema) moves the
            # reasoning out of the content; put it back where the model wrote it
            for field in _REASONING_FIELDS:
                reasoning = message.get(field)
                if isinstance(reasoning, str) and reasoning:
                    parts.append(f"{THINK_OPEN}{reasoning}{THINK_CLOSE}")
                    break
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, (list, tuple)):
                parts.extend(
                    p["text"]
                    for p in content
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
        return "".join(parts)
    if isinstance(completion, bytes):
        return completion.decode("utf-8", errors="replace")
    return ""


def think_block(text: str, prefilled_think: bool = False) -> str | None:
    """The reasoning: from after `<think>` (from the start when the prompt ends with it) to
    the first `</think>` after that, or to the end; None without a `<think>` to start from.

    >>> think_block("<think>a\\nb</think><answer>x</answer>"), think_block("a</think>", True)
    ('a\\nb', 'a')
    >>> think_block("no tags") is None
    True
    """
    start = 0
    if not prefilled_think:
        start = text.find(THINK_OPEN)
        if start < 0:
            return None
        start += len(THINK_OPEN)
    end = text.find(THINK_CLOSE, start)
    return text[start : end if end >= 0 else len(text)]


def _tail_clean(text: str, start: int) -> bool:
    if start >= len(text):
        return True
    tail = text[start:]
    if tail.isspace():
        return True
    # every marker starts with "<" and ends with ">": most junk fails here at once
    stripped = tail.strip()
    if stripped[0] != "<" or stripped[-1] != ">":
        return False
    # markers hold no spaces, so replacing each with a space cannot forge a new marker
    for marker in END_MARKERS:
        stripped = stripped.replace(marker, " ")
        if stripped.isspace():
            return True
    return False


def check_format(text: str, mode: str = "strict", prefilled_think: bool = False) -> FormatResult:
    """Check the `<think>...</think><answer>...</answer>` layout.

    Modes:

    * ``strict`` (Logic-RL): each tag exactly once, in order; only whitespace before
      `<think>`; only spaces/tabs between `</think>` and `<answer>`; only whitespace and
      end-of-text markers (`<|im_end|>`, `<|endoftext|>`, `</s>`, `<eos>`, ...) after
      `</answer>`.
    * ``instruct``: as strict, but any whitespace (newlines) between `</think>` and
      `<answer>`, as instruct models emit.
    * ``lenient``: the four tags appear somewhere in order (repeats and surrounding text
      allowed); the answer is the last complete `<answer>` block.

    With `prefilled_think` the text is read as if `<think>` preceded it.

    >>> check_format("<think>hm</think><answer>(1) Zoey is a knight</answer><|im_end|>").ok
    True
    >>> r = check_format("<think>hm</think>\\n<answer>x</answer>")
    >>> r.ok, r.reason
    (False, 'newline between </think> and <answer>')
    >>> check_format("<think>hm</think>\\n<answer>x</answer>", mode="instruct").ok
    True
    >>> check_format("hm</think><answer>x</answer>", prefilled_think=True).answer
    'x'
    """
    if not isinstance(text, str):
        text = completion_text(text)
    if mode == "lenient":
        return _lenient_format(text, prefilled_think)
    if mode not in ("strict", "instruct"):
        raise ValueError(f"unknown format mode {mode!r}; use one of {', '.join(FORMAT_MODES)}")
    expected = _EXPECTED_PREFILLED if prefilled_think else _EXPECTED
    # Usual case (few "<"): one regex pass lists the tags. Many "<" (junk, tag spam): count
    # each tag with str.count, which stays fast where a regex would try every "<".
    if len(text) <= _REGEX_MAX_LT or text.count("<") <= _REGEX_MAX_LT:
        found: list[str] | None = _TAG.findall(text)
    else:
        found = None
    if found != expected:
        for tag in TAGS:
            # the regex's list when there is one; else one str.count per tag, stopping early
            count = found.count(tag) if found is not None else text.count(tag)
            if tag == THINK_OPEN and prefilled_think:
                if count:
                    return FormatResult(False, f"{count + 1}x {THINK_OPEN} (prefilled)", None)
                continue
            if count != 1:
                return FormatResult(
                    False, f"{'missing' if count == 0 else f'{count}x'} {tag}", None
                )
        if found is not None:
            return FormatResult(False, "tags out of order", None)
        # each tag once (counted): check their order
        p0 = -len(THINK_OPEN) if prefilled_think else text.find(THINK_OPEN)
        p1, p2, p3 = text.find(THINK_CLOSE), text.find(ANSWER_OPEN), text.find(ANSWER_CLOSE)
        if not (p0 < p1 < p2 < p3):
            return FormatResult(False, "tags out of order", None)
    else:
        # the regex saw exactly the four tags in order: find them from the nearer end
        p3 = text.rfind(ANSWER_CLOSE)
        p2 = text.rfind(ANSWER_OPEN, 0, p3)
        p1 = text.rfind(THINK_CLOSE, 0, p2)
        p0 = -len(THINK_OPEN) if prefilled_think else text.find(THINK_OPEN)
    if p0 > 0 and not text[:p0].isspace():
        return FormatResult(False, "text before <think>", None)
    between = text[p1 + len(THINK_CLOSE) : p2]
    if between:
        if mode == "strict" and between.strip(_HSPACE):
            reason = (
                "newline between </think> and <answer>"
                if between.isspace() and "\n" in between
                else "text between </think> and <answer>"
            )
            return FormatResult(False, reason, None)
        if mode == "instruct" and not between.isspace():
            return FormatResult(False, "text between </think> and <answer>", None)
    if not _tail_clean(text, p3 + len(ANSWER_CLOSE)):
        return FormatResult(False, "text after </answer>", None)
    return FormatResult(True, "ok", text[p2 + len(ANSWER_OPEN) : p3])


def _lenient_format(text: str, prefilled_think: bool) -> FormatResult:
    p0 = 0 if prefilled_think else text.find(THINK_OPEN)
    if p0 < 0:
        return FormatResult(False, f"missing {THINK_OPEN}", None)
    p1 = text.find(THINK_CLOSE, p0)
    if p1 < 0:
        return FormatResult(False, f"no {THINK_CLOSE} after {THINK_OPEN}", None)
    p2 = text.find(ANSWER_OPEN, p1)
    if p2 < 0:
        return FormatResult(False, f"no {ANSWER_OPEN} after {THINK_CLOSE}", None)
    p3 = text.find(ANSWER_CLOSE, p2)
    if p3 < 0:
        return FormatResult(False, f"no {ANSWER_CLOSE} after {ANSWER_OPEN}", None)
    # the last complete answer block wins, as in Logic-RL's extractor
    last_close = text.rfind(ANSWER_CLOSE)
    last_open = text.rfind(ANSWER_OPEN, p2, last_close)
    return FormatResult(True, "ok", text[last_open + len(ANSWER_OPEN) : last_close])


def tag_count_score(text: str, prefilled_think: bool = False, per_tag: float = 0.25) -> float:
    """Partial format credit: `per_tag` for each well-placed tag (4 tags, so 1.0 at most).

    Well placed: `<think>` once with only whitespace before it (or prefilled and absent);
    `</think>` once after it; `<answer>` once after `</think>`; `</answer>` once after
    `<answer>` with only whitespace / end-of-text markers after it.

    >>> tag_count_score("<think>a</think><answer>b</answer>")
    1.0
    >>> tag_count_score("<think>a</think> b")
    0.5
    >>> tag_count_score("<think>a<think></think><answer>b</answer> more")
    0.5
    """
    if not isinstance(text, str):
        text = completion_text(text)
    credit = 0
    if prefilled_think:
        ok0 = THINK_OPEN not in text
        p0 = -len(THINK_OPEN)
    else:
        p0 = text.find(THINK_OPEN)
        ok0 = p0 >= 0 and text.count(THINK_OPEN) == 1 and (p0 == 0 or text[:p0].isspace())
    credit += ok0
    p1 = text.find(THINK_CLOSE)
    credit += text.count(THINK_CLOSE) == 1 and p1 >= p0 + len(THINK_OPEN)
    p2 = text.find(ANSWER_OPEN)
    credit += text.count(ANSWER_OPEN) == 1 and p1 >= 0 and p2 >= p1 + len(THINK_CLOSE)
    p3 = text.find(ANSWER_CLOSE)
    credit += (
        text.count(ANSWER_CLOSE) == 1
        and p2 >= 0
        and p3 >= p2 + len(ANSWER_OPEN)
        and _tail_clean(text, p3 + len(ANSWER_CLOSE))
    )
    return per_tag * credit


class StrictAnswer(NamedTuple):
    """Strict parse of an answer block: `roles` (True = truthful role) or None with a reason."""

    roles: tuple[bool, ...] | None
    reason: str


def _claim(words: list[str], key: AnswerKey) -> tuple[int, bool] | str:
    """(person index, role) for `NAME is a ROLE`, or a reason string."""
    if len(words) < 4 or words[-3].casefold() != "is" or words[-2].casefold() not in _ARTICLES:
        return "not a 'NAME is a ROLE' claim"
    name = words[0] if len(words) == 4 else " ".join(words[:-3])
    idx = key.index.get(name.casefold())
    if idx is None:
        return "names someone not in the puzzle"
    role = words[-1].casefold()
    if role == key.truthful:
        return idx, True
    if role == key.liar:
        return idx, False
    return "role word not the puzzle's own"


def parse_strict(answer: str, key: AnswerKey) -> StrictAnswer:
    """Parse an answer block strictly (see the module docstring for the grammar).

    >>> from rewards.puzzle import answer_key
    >>> key = answer_key({"names": ["Zoey", "Oliver"], "solution": [True, False]})
    >>> parse_strict("(1) Zoey is a knight\\n(2) Oliver is a knave", key).roles
    (True, False)
    >>> parse_strict("Zoey is a knight, and Oliver is a Knave.", key).roles
    (True, False)
    >>> parse_strict("Zoey is a knight or knave, Oliver is a knave", key).reason
    "not a 'NAME is a ROLE' claim"
    """
    n = key.people
    if len(answer) > _MAX_SEGMENT * n + 200:
        answer = answer.strip()  # padding is fine; a long body is not claims only
        if len(answer) > _MAX_SEGMENT * n + 200:
            return StrictAnswer(None, "answer too long to be claims only")
    fast = _parse_fast(answer, key)
    if fast is not None:
        return StrictAnswer(fast, "ok")
    roles: list[bool | None] = [None] * n
    found = 0
    spare = 2 * n + 8  # filler-only segments allowed (enumerators left by "1." splits, "So")
    for m in _SEGMENT.finditer(answer):
        segment = m.group()
        if len(segment) > _MAX_SEGMENT and len(segment.strip()) > _MAX_SEGMENT:
            return StrictAnswer(None, "answer holds text that is not a claim")
        words = segment.split()
        if words and _ENUMERATOR.fullmatch(words[0]):
            words = words[1:]
        # "and" separates claims inside one segment ("A is a knight and B is a knave")
        groups: list[list[str]] = [[]]
        for word in words:
            if word.casefold() == "and":
                groups.append([])
            else:
                groups[-1].append(word)
        for group in groups:
            if not group:  # whitespace-only segment
                continue
            start = 0
            while start < len(group) and group[start].casefold() in _FILLERS:
                start += 1
            if start == len(group):
                spare -= 1
                if spare < 0:
                    return StrictAnswer(None, "answer holds text that is not a claim")
                continue
            claim = _claim(group[start:] if start else group, key)
            if isinstance(claim, str):
                return StrictAnswer(None, claim)
            idx, role = claim
            if roles[idx] is not None:
                return StrictAnswer(None, f"{key.names[idx]} claimed twice")
            roles[idx] = role
            found += 1
    if found < n:
        missing = next(key.names[i] for i, r in enumerate(roles) if r is None)
        return StrictAnswer(None, f"no claim for {missing}")
    return StrictAnswer(tuple(roles), "ok")  # type: ignore[arg-type]


def _parse_fast(answer: str, key: AnswerKey) -> tuple[bool, ...] | None:
    """Roles when the answer is a plain run of single-word-name claims, else None.

    Only a shortcut: whatever it accepts, the general parser accepts with the same roles
    (a property test checks this); anything unusual falls through to the general parser.
    """
    n = key.people
    roles: list[bool | None] = [None] * n
    pos = seg_start = 0
    match, index_get, truthful, liar = _FAST_CLAIM.match, key.index.get, key.truthful, key.liar
    for found in range(n):
        m = match(answer, pos)
        if m is None:
            return None
        sep, enum, fillers, name, role = m.groups()
        # a new segment starts after \n , ; . or !; within a segment only a leading "and"
        # may join two claims (the general parser splits groups there)
        if not found or "\n" in sep or sep.strip():
            seg_start = m.end(1)
        elif enum or _AND_FIRST.match(fillers) is None:
            return None
        pos = m.end()
        if pos - seg_start > _MAX_SEGMENT:
            return None
        idx = index_get(name.casefold())
        if idx is None or roles[idx] is not None:
            return None
        role = role.casefold()
        if role == truthful:
            roles[idx] = True
        elif role == liar:
            roles[idx] = False
        else:
            return None
    if pos < len(answer) and (
        answer[pos:].strip(" \t\n.,;!") and _SEPARATORS_ONLY.fullmatch(answer, pos) is None
    ):
        return None
    return tuple(roles)  # type: ignore[arg-type]


@lru_cache(maxsize=4096)
def _lenient_pattern(names: tuple[str, ...], truthful: str, liar: str) -> _Lenient:
    lowered = [n.lower() for n in names]
    alternatives = "|".join(re.escape(n) for n in sorted(lowered, key=len, reverse=True))
    # Matched against lower-cased text, without a leading \b (which slows the scan
    # several-fold); the word boundary before the name is checked by hand.
    pattern = re.compile(
        rf"({alternatives})\s+is\s+(not\s+)?(?:an?\s+)?"
        rf"({re.escape(truthful.lower())}|{re.escape(liar.lower())})\b"
    )
    return _Lenient(pattern, {n: i for i, n in enumerate(lowered)}, truthful.lower())


@dataclass(frozen=True)
class _Lenient:
    pattern: re.Pattern[str]
    index: dict[str, int]
    truthful: str

    def claims(self, text: str) -> Iterator[tuple[int, bool]]:
        low = text.lower()
        for m in self.pattern.finditer(low):
            start = m.start()
            if start and (low[start - 1].isalnum() or low[start - 1] == "_"):
                continue
            idx = self.index.get(m.group(1))
            if idx is not None:
                yield idx, (m.group(3) == self.truthful) != bool(m.group(2))


def lenient_claims(text: str, key: AnswerKey) -> list[set[bool]]:
    """Every role each person is given anywhere in `text` (`NAME is [not] a ROLE`)."""
    out: list[set[bool]] = [set() for _ in key.names]
    for idx, role in _lenient_pattern(key.names, key.truthful, key.liar).claims(text):
        out[idx].add(role)
    return out


def lenient_answer(text: str, key: AnswerKey) -> tuple[bool, ...] | None:
    """Read an answer in any format: each person's last `NAME is [not] a ROLE` claim.

    Looks first after the last `<answer>` (up to `</answer>`), then after the last
    `</think>`, then in the whole text; the first region that names everyone wins.
    """
    spans: list[tuple[int, int]] = []
    a = text.rfind(ANSWER_OPEN)
    if a >= 0:
        end = text.find(ANSWER_CLOSE, a)
        spans.append((a + len(ANSWER_OPEN), end if end >= 0 else len(text)))
    t = text.rfind(THINK_CLOSE)
    if t >= 0:
        spans.append((t + len(THINK_CLOSE), len(text)))
    spans.append((0, len(text)))
    pattern = _lenient_pattern(key.names, key.truthful, key.liar)
    seen: set[tuple[int, int]] = set()
    for span in spans:
        if span in seen:
            continue
        seen.add(span)
        region = text[span[0] : span[1]]
        roles = None
        if len(region) > _LENIENT_TAIL:
            # everyone named in the last few KB means their last claims are all there
            ws = _SPACE.search(region, len(region) - _LENIENT_TAIL)
            if ws is not None:
                roles = _last_claims(region[ws.end() :], pattern, key)
        if roles is None:
            roles = _last_claims(region, pattern, key)
        if roles is not None:
            return roles
    return None


def _last_claims(region: str, lenient: _Lenient, key: AnswerKey) -> tuple[bool, ...] | None:
    last: list[bool | None] = [None] * key.people
    for idx, role in lenient.claims(region):
        last[idx] = role
    if all(v is not None for v in last):
        return tuple(last)  # type: ignore[arg-type]
    return None
