"""Read the answer key out of a puzzle record (kk-gen, mem-kk-logic, Logic-RL / verl).

A record may hold `names`, `solution` and `knight_knave` as Python objects, as numpy
arrays (pandas / pyarrow rows) or as JSON strings (how training datasets store them, since
Arrow cannot hold per-row dicts well). Without `names`/`solution` the key is read from
`solution_text_format` (also under verl's `reward_model.ground_truth`). A malformed record
raises one `ValueError` that names the field; completions are never checked here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from kk_puzzles.io import json_or_value

__all__ = ["AnswerKey", "answer_key"]

_DEFAULT_ROLES = ("knight", "knave")
_KEY_LINE = re.compile(
    r"\s*(?:\(\d{1,4}\)\s*)?(.+?)\s+is\s+(?:an?\s+)?(\S+?)\.?\s*\Z", re.IGNORECASE
)


@dataclass(frozen=True)
class AnswerKey:
    """What the scorer needs from a puzzle: people, truth values and the role words.

    `truthful` / `liar` are the puzzle's own role words ("knight"/"knave",
    "saint"/"sinner", ...), lower-case.
    """

    names: tuple[str, ...]
    solution: tuple[bool, ...]
    truthful: str
    liar: str
    # casefolded name -> index, for the answer parser
    index: Mapping[str, int]

    @property
    def people(self) -> int:
        return len(self.names)


def _decoded(value: Any, field: str) -> Any:
    try:
        return json_or_value(value, strict=True)
    except ValueError:
        raise ValueError(f"puzzle field {field!r} is a string but not valid JSON") from None


def _as_list(value: Any, field: str) -> list:
    value = _decoded(value, field)
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise ValueError(f"puzzle field {field!r} must be a list, got {type(value).__name__}")
    return list(value)


def _as_bool(value: Any) -> bool:
    # numpy.bool_ is not a bool subclass; accept it, but never ints or strings
    if isinstance(value, bool):
        return value
    if type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):
        return bool(value)
    raise ValueError(f"puzzle field 'solution' must hold booleans, got {value!r}")


def _role_words(kk: Any) -> tuple[str, str]:
    if kk is None:
        return _DEFAULT_ROLES
    kk = _decoded(kk, "knight_knave")
    if not isinstance(kk, Mapping):
        raise ValueError(f"puzzle field 'knight_knave' must be a dict, got {type(kk).__name__}")
    truthful, liar = kk.get("knight"), kk.get("knave")
    if not isinstance(truthful, str) or not isinstance(liar, str):
        raise ValueError("puzzle field 'knight_knave' needs string keys 'knight' and 'knave'")
    truthful, liar = truthful.strip().lower(), liar.strip().lower()
    if not truthful or not liar or truthful == liar or " " in truthful or " " in liar:
        raise ValueError(
            f"puzzle field 'knight_knave' has unusable role words {truthful!r}/{liar!r}"
        )
    return truthful, liar


def _from_text_format(text: Any, roles: tuple[str, str]) -> tuple[list[str], list[bool]]:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("puzzle has no 'names'/'solution' and no usable 'solution_text_format'")
    names: list[str] = []
    solution: list[bool] = []
    for line in text.strip().splitlines():
        if not line.strip():
            continue
        m = _KEY_LINE.match(line)
        role = m.group(2).lower() if m else None
        if role not in roles:
            raise ValueError(
                f"puzzle field 'solution_text_format' has a line that is not "
                f"'(k) Name is a {roles[0]}/{roles[1]}': {line.strip()[:60]!r}"
            )
        names.append(m.group(1))
        solution.append(role == roles[0])
    return names, solution


def _build(names: list, solution: list, roles: tuple[str, str]) -> AnswerKey:
    if not names:
        raise ValueError("puzzle field 'names' is empty")
    clean: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"puzzle field 'names' must hold non-empty strings, got {name!r}")
        clean.append(name.strip())
    index = {name.casefold(): i for i, name in enumerate(clean)}
    if len(index) != len(clean):
        raise ValueError(f"puzzle field 'names' repeats a name: {clean}")
    sol = tuple(_as_bool(v) for v in solution)
    if len(sol) != len(clean):
        raise ValueError(f"puzzle has {len(clean)} names but {len(sol)} solution values")
    return AnswerKey(tuple(clean), sol, roles[0], roles[1], index)


_OBJECT_CACHE: dict[tuple, AnswerKey] = {}


_OBJECT_CACHE: dict[tuple, AnswerKey] = {}


@lru_cache(maxsize=8192)
def _cached_from_strings(names: str, solution: str, kk: str | None) -> AnswerKey:
    return _build(_as_list(names, "names"), _as_list(solution, "solution"), _role_words(kk))


def answer_key(puzzle: Mapping) -> AnswerKey:
    """Return the `AnswerKey` of a puzzle record; raise `ValueError` if it is malformed.

    >>> key = answer_key({"names": '["Zoey", "Oliver"]', "solution": "[true, false]"})
    >>> key.names, key.solution, key.truthful, key.liar
    (('Zoey', 'Oliver'), (True, False), 'knight', 'knave')
    >>> answer_key({"solution_text_format": "(1) Ann is a saint\\n(2) Bo is a sinner",
    ...             "knight_knave": {"knight": "saint", "knave": "sinner"}}).solution
    (True, False)
    """
    if isinstance(puzzle, AnswerKey):
        return puzzle
    if not isinstance(puzzle, Mapping):
        raise ValueError(f"puzzle must be a mapping (a record), got {type(puzzle).__name__}")
    names = puzzle.get("names")
    solution = puzzle.get("solution")
    kk = puzzle.get("knight_knave")
    if names is not None and solution is not None:
        # JSON-string columns repeat for every generation of a prompt: cache them
        if (
            isinstance(names, str)
            and isinstance(solution, str)
            and (kk is None or isinstance(kk, str))
        ):
            return _cached_from_strings(names, solution, kk)
        if (
            type(names) in (list, tuple)
            and type(solution) in (list, tuple)
            and type(kk) in (dict, type(None))
        ):
            # plain Python rows repeat per generation too; key on their content (types
            # included, so [1, 0] never hits the entry of [True, False])
            words = (kk.get("knight"), kk.get("knave")) if kk is not None else None
            try:
                cache_key = (tuple(names), tuple(solution), tuple(map(type, solution)), words)
                hit = _OBJECT_CACHE.get(cache_key)
            except TypeError:  # unhashable junk: let _build name the problem
                cache_key, hit = None, None
            if hit is None:
                hit = _build(list(names), list(solution), _role_words(kk))
                if cache_key is not None:
                    if len(_OBJECT_CACHE) >= 8192:
                        _OBJECT_CACHE.clear()
                    _OBJECT_CACHE[cache_key] = hit
            return hit
        return _build(_as_list(names, "names"), _as_list(solution, "solution"), _role_words(kk))
    roles = _role_words(kk)
    text = puzzle.get("solution_text_format")
    if text is None:
        gt = puzzle.get("reward_model")
        gt = gt.get("ground_truth") if isinstance(gt, Mapping) else None
        text = gt.get("solution_text_format") if isinstance(gt, Mapping) else None
    names, sol = _from_text_format(text, roles)
    return _build(names, sol, roles)
