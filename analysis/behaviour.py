"""Behaviour statistics of sampled completions (SPEC §7: reflection, language mixing, retry
after the answer, repetition, answer-pattern collapse).

Everything is computed per completion in one pass of cheap string operations (``split``,
``find``, one linear regex per feature, a ``set`` of n-grams), then aggregated with numpy,
so 100k completions take seconds. "Tokens" here are whitespace-separated words: the
analysis reads only the run directory, not the model's tokenizer.

>>> f = completion_features(" Wait, let me verify. </think><answer>(1) Ann is a knight</answer>", "(1) Ann is a knave")
>>> f.words, f.reflection[PHRASE_NAMES.index("wait")], f.reflection[PHRASE_NAMES.index("verify")]
(9, 1, 1)
>>> f.answer_pattern, f.truth_pattern, f.retry_late
('K', 'N', False)
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kk_puzzles import ROLE_PAIRS

# Reflection phrases of SPEC §5 / §7.8, one category each, matched in lower-cased text.
# "let's test both possibilities" is counted from its "test both ..." part.
PHRASES: dict[str, str] = {
    "verify": r"verif(?:y|ies|ied|ying|ication)",
    "re-check": r"re-?check(?:s|ed|ing)?",
    "double-check": r"double[- ]check(?:s|ed|ing)?",
    "test both possibilities": r"test(?:ing)? both (?:possibilities|cases|options)",
    "summarize": r"summari[sz](?:e|es|ed|ing)|in summary|to sum up",
    "wait": r"wait",
    "alternatively": r"alternatively",
    "go back": r"(?:go|going|went|goes) back",
}
PHRASE_NAMES: tuple[str, ...] = tuple(PHRASES)
_GROUP = {f"p{i}": i for i in range(len(PHRASES))}
# Single-word forms are counted from a word Counter (C speed); the multi-word phrases run a
# regex only on texts that contain one of their anchor words. Every regex branch starts
# with a literal and has no nested quantifier, so matching is linear.
_SINGLE: dict[str, int] = {}
for _i, _name in enumerate(PHRASE_NAMES):
    _forms = {
        "verify": ["verify", "verifies", "verified", "verifying", "verification"],
        "re-check": [p + s for p in ("recheck", "re-check") for s in ("", "s", "ed", "ing")],
        "double-check": ["double-check" + s for s in ("", "s", "ed", "ing")],
        "summarize": [p + s for p in ("summariz", "summaris") for s in ("e", "es", "ed", "ing")],
        "wait": ["wait"],
        "alternatively": ["alternatively"],
    }.get(_name, [])
    for _form in _forms:
        _SINGLE[_form] = _i
_MULTI_RE = re.compile(
    "(?=[dtig])(?:"
    + "|".join(
        rf"(?P<p{PHRASE_NAMES.index(name)}>{pat})\b"
        for name, pat in [
            ("double-check", r"double check(?:s|ed|ing)?"),
            ("test both possibilities", PHRASES["test both possibilities"]),
            ("summarize", r"in summary|to sum up"),
            ("go back", PHRASES["go back"]),
        ]
    )
    + ")"
)
_MULTI_ANCHORS = ("double", "both", "summary", "sum", "back")
# Punctuation becomes a space so "wait," and "wait" are one word; hyphens and apostrophes
# stay (re-check, double-check, let's).
_PUNCT = str.maketrans({c: " " for c in '!"#$%&()*+,./:;<=>?@[\\]^_`{|}~'})
REFLECTION_RE = re.compile(
    "|".join(rf"\b(?P<p{i}>{pat})\b" for i, pat in enumerate(PHRASES.values())), re.IGNORECASE
)  # reference definition (the tests check the fast path against it)


def reflection_counts(text: str) -> list[int]:
    """Occurrences of each phrase (PHRASE_NAMES order), case-insensitive, whole words.

    >>> reflection_counts("Wait... re-check; awaiting a recheck. Double check, go back!")
    [0, 2, 1, 0, 0, 1, 0, 1]
    """
    counts = [0] * len(PHRASES)
    low = text.lower()
    words = Counter(low.translate(_PUNCT).split())
    for word in words.keys() & _SINGLE.keys():
        counts[_SINGLE[word]] += words[word]
    if any(a in words for a in _MULTI_ANCHORS):
        for m in _MULTI_RE.finditer(low):
            start = m.start()
            if start and (low[start - 1].isalnum() or low[start - 1] == "_"):
                continue
            counts[_GROUP[m.lastgroup]] += 1  # type: ignore[index]
    return counts


# Letters of any script other than Latin (digits, punctuation and Latin letters excluded).
OTHER_SCRIPT_RE = re.compile(r"[^\W\d_\u0000-\u024f\u1e00-\u1eff]")
LETTER_RE = re.compile(r"[^\W\d_]")
# "(3) Name is a knight" claims inside the answer block; names may hold several words.
CLAIM_RE = re.compile(r"\((\d{1,2})\)[^\S\n]*[^\n()]*?\bis[^\S\n]+an?[^\S\n]+([A-Za-z-]+)")
NGRAM = 4

ROLE_LETTER: dict[str, str] = {}  # role words of every pair the generator can use
for _truthful, _lying in ROLE_PAIRS.values():
    ROLE_LETTER[_truthful] = "K"
    ROLE_LETTER[_lying] = "N"


@dataclass
class Features:
    """What one completion shows."""

    words: int
    reflection: tuple[int, ...]  # counts per PHRASE_NAMES
    think_letters: int  # letters inside <think> (any script)
    other_script: int  # non-Latin letters inside <think>
    retry_late: bool  # content or a new <think> after </answer>, or <think> inside <answer>
    repetition: float  # share of repeated word 4-grams (0 when shorter than 4 words)
    answer_pattern: str | None  # "KNK" (K = truthful role) read from the answer block
    truth_pattern: str | None


@functools.lru_cache(maxsize=1 << 16)
def role_pattern(text: str, people: int | None = None) -> str | None:
    """'(1) A is a knight\\n(2) B is a knave' -> 'KN'; None unless claims 1..n are all there.

    >>> role_pattern("(2) Bob is a knave\\n(1) Ann is an angel")
    'KN'
    >>> role_pattern("(1) Ann is a knight", people=2) is None
    True
    """
    claims: dict[int, str] = {}
    for m in CLAIM_RE.finditer(text):
        letter = ROLE_LETTER.get(m.group(2).lower())
        if letter is not None:
            claims[int(m.group(1))] = letter  # a later claim about the same person wins
    if not claims:
        return None
    n = people if people is not None else max(claims)
    if sorted(claims) != list(range(1, n + 1)):
        return None
    return "".join(claims[i] for i in range(1, n + 1))


def _answer_block(text: str) -> str | None:
    start = text.rfind("<answer>")
    if start < 0:
        return None
    end = text.find("</answer>", start)
    return text[start + 8 : end if end >= 0 else len(text)]


def completion_features(text: str, truth: str | None = None, people: int | None = None) -> Features:
    """Features of one completion (the prompt prefilled ``<think>``, so text starts inside it)."""
    words_list = text.split()
    counts = reflection_counts(text)
    close = text.find("</think>")
    if close < 0:
        close = text.find("<answer>")
    think = text if close < 0 else text[:close]
    if think.isascii():
        other = 0
        letters = _ascii_letters(think)
    else:
        other = len(OTHER_SCRIPT_RE.findall(think))
        letters = len(LETTER_RE.findall(think))
    ans_close = text.find("</answer>")
    retry = False
    if ans_close >= 0 and text[ans_close + 9 :].strip():
        retry = True
    else:
        ans_open = text.find("<answer>")
        if ans_open >= 0 and text.find("<think>", ans_open) >= 0:
            retry = True
    n_grams = len(words_list) - NGRAM + 1
    if n_grams > 0:
        grams = set(zip(*(words_list[i:] for i in range(NGRAM)), strict=False))
        repetition = 1.0 - len(grams) / n_grams
    else:
        repetition = 0.0
    block = _answer_block(text)
    pattern = role_pattern(block, people) if block is not None else None
    truth_pattern = role_pattern(truth, people) if truth else None
    return Features(
        words=len(words_list),
        reflection=tuple(counts),
        think_letters=letters,
        other_script=other,
        retry_late=retry,
        repetition=repetition,
        answer_pattern=pattern,
        truth_pattern=truth_pattern,
    )


_ASCII_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))
_DROP_NON_LETTERS = bytes(c for c in range(128) if c not in _ASCII_LETTERS)


def _ascii_letters(text: str) -> int:
    # bytes.translate deletes every non-letter in C: far faster than a Python loop.
    return len(text.encode("ascii").translate(None, _DROP_NON_LETTERS))


class BehaviourTable:
    """Column store of per-completion features, grouped by step and stage."""

    def __init__(self) -> None:
        self.step: list[int] = []
        self.stage: list[str] = []
        self.people: list[int] = []
        self.kind: list[str] = []
        self.words: list[int] = []
        self.reflection: list[tuple[int, ...]] = []
        self.think_letters: list[int] = []
        self.other_script: list[int] = []
        self.retry_late: list[bool] = []
        self.repetition: list[float] = []
        self.answer_pattern: list[str | None] = []
        self.truth_pattern: list[str | None] = []

    def __len__(self) -> int:
        return len(self.step)

    def add(self, stage: str, step: int, people: int, kind: str, f: Features) -> None:
        self.step.append(step)
        self.stage.append(stage)
        self.people.append(people)
        self.kind.append(kind)
        self.words.append(f.words)
        self.reflection.append(f.reflection)
        self.think_letters.append(f.think_letters)
        self.other_script.append(f.other_script)
        self.retry_late.append(f.retry_late)
        self.repetition.append(f.repetition)
        self.answer_pattern.append(f.answer_pattern)
        self.truth_pattern.append(f.truth_pattern)

    def extend(self, other: BehaviourTable) -> None:
        """Append another table's rows (parallel loading merges chunks in file order)."""
        for name, values in vars(other).items():
            getattr(self, name).extend(values)

    @classmethod
    def from_samples(cls, samples: Iterable[Any]) -> BehaviourTable:
        """From CompletionSample records (any object with the same attributes)."""
        table = cls()
        for s in samples:
            f = completion_features(s.completion, s.solution_text_format, s.people)
            table.add(s.stage, s.global_step, s.people, s.kind, f)
        return table

    def arrays(self) -> dict[str, np.ndarray]:
        refl = np.array(self.reflection, dtype=np.int64).reshape(len(self), len(PHRASES))
        return {
            "step": np.array(self.step, dtype=np.int64),
            "words": np.array(self.words, dtype=np.int64),
            "reflection": refl,
            "think_letters": np.array(self.think_letters, dtype=np.int64),
            "other_script": np.array(self.other_script, dtype=np.int64),
            "retry_late": np.array(self.retry_late, dtype=bool),
            "repetition": np.array(self.repetition, dtype=np.float64),
        }


def summarize_group(table: BehaviourTable, index: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """Behaviour of the completions at ``index`` (a step bucket, a stage, a whole run).

    Rates are pooled: reflection per 1k words = 1000 * phrases / words over the group;
    mixing = share of completions with any non-Latin letter inside <think>; repetition =
    mean of the per-completion repeated-4-gram share. Collapse: among parsed answers, the
    share that says everyone is a knight / a knave / the most common pattern, beside the
    share of the same completions whose true solution is that pattern.
    """
    idx = np.asarray(index, dtype=np.int64)
    n = len(idx)
    out: dict[str, Any] = {"completions": n}
    if n == 0:
        return out
    words = np.array([table.words[i] for i in idx], dtype=np.int64)
    refl = np.array([table.reflection[i] for i in idx], dtype=np.int64).reshape(n, len(PHRASES))
    total_words = int(words.sum())
    out["words"] = total_words
    out["mean_words"] = total_words / n
    per_k = refl.sum(axis=0) * 1000.0 / total_words if total_words else np.zeros(len(PHRASES))
    out["reflection_per_1k"] = {name: float(v) for name, v in zip(PHRASE_NAMES, per_k, strict=True)}
    out["reflection_total_per_1k"] = float(per_k.sum())
    other = np.array([table.other_script[i] for i in idx], dtype=np.int64)
    letters = np.array([table.think_letters[i] for i in idx], dtype=np.int64)
    out["mixing_share"] = float((other > 0).mean())
    out["other_script_letter_share"] = float(other.sum() / letters.sum()) if letters.sum() else 0.0
    out["retry_late_share"] = float(np.mean([table.retry_late[i] for i in idx]))
    out["repetition_mean"] = float(np.mean([table.repetition[i] for i in idx]))
    kinds = Counter(table.kind[i] for i in idx)
    out["kinds"] = {k: kinds[k] / n for k in sorted(kinds)}
    out.update(
        collapse([table.answer_pattern[i] for i in idx], [table.truth_pattern[i] for i in idx])
    )
    return out


def collapse(answers: Sequence[str | None], truths: Sequence[str | None]) -> dict[str, Any]:
    """Answer-pattern collapse among parsed answers, against the true solutions.

    >>> c = collapse(["KK", "KK", "NK", None], ["KK", "NK", "NK", "KN"])
    >>> c["parsed_share"], c["all_knight_share"], c["all_knight_truth_share"]
    (0.75, 0.6666666666666666, 0.3333333333333333)
    >>> c["top_pattern"], c["top_pattern_share"], c["top_pattern_truth_share"]
    ('KK', 0.6666666666666666, 0.3333333333333333)
    """
    pairs = [(a, t) for a, t in zip(answers, truths, strict=True) if a is not None]
    n = len(answers)
    out: dict[str, Any] = {"parsed_share": len(pairs) / n if n else 0.0}
    if not pairs:
        out.update(
            all_knight_share=0.0, all_knight_truth_share=0.0, all_knave_share=0.0,
            all_knave_truth_share=0.0, top_pattern=None, top_pattern_share=0.0,
            top_pattern_truth_share=0.0,
        )  # fmt: skip
        return out
    m = len(pairs)
    out["all_knight_share"] = sum(set(a) == {"K"} for a, _ in pairs) / m
    out["all_knight_truth_share"] = sum(t is not None and set(t) == {"K"} for _, t in pairs) / m
    out["all_knave_share"] = sum(set(a) == {"N"} for a, _ in pairs) / m
    out["all_knave_truth_share"] = sum(t is not None and set(t) == {"N"} for _, t in pairs) / m
    counts = Counter(a for a, _ in pairs)
    # Ties broken by the pattern string so the result does not depend on input order.
    top, top_n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    out["top_pattern"] = top
    out["top_pattern_share"] = top_n / m
    out["top_pattern_truth_share"] = sum(t == top for _, t in pairs) / m
    return out
