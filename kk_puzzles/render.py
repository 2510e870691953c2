"""English rendering: names, role words, speech templates, quiz and solution texts.

>>> roles = role_words("knight/knave")
>>> render_claim(('->', ('telling-truth', 1), ('lying', 0)), ["Mia", "Owen"], roles)
'if Owen is a knight then Mia is a knave'
>>> solution_text(["Mia", "Owen"], (True, False), roles)
'Mia is a knight, and Owen is a knave.'
>>> print(solution_text_format(["Mia", "Owen"], (True, False), roles))
(1) Mia is a knight
(2) Owen is a knave
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from operator import itemgetter

from .grammar import LEAF_OPS, Statement

TYPE_CHECKING = False  # typing's, without importing typing (2 ms of every kk-gen run)
if TYPE_CHECKING:
    from typing import Any

# One token each, none a prefix of another (answer parsers match names by prefix), none
# a role word.
NAMES: tuple[str, ...] = (
    "Abigail", "Adrian", "Alice", "Amelia", "Arthur", "Aurora", "Beatrice", "Benjamin",
    "Bianca", "Caleb", "Camila", "Carter", "Chloe", "Clara", "Daniel", "Delilah",
    "Dominic", "Dylan", "Eleanor", "Elijah", "Ella", "Emily", "Ethan", "Evelyn",
    "Felix", "Fiona", "Gabriel", "Georgia", "Grace", "Hannah", "Harper", "Hazel",
    "Henry", "Hugo", "Iris", "Isaac", "Ivy", "Jack", "Jasper", "Julia",
    "Kai", "Kevin", "Layla", "Leo", "Liam", "Lily", "Logan", "Lucas",
    "Luna", "Madison", "Maya", "Mia", "Miles", "Nathan", "Nina", "Noah",
    "Nora", "Oliver", "Olivia", "Oscar", "Owen", "Paige", "Penelope", "Quinn",
    "Riley", "Ruby", "Ryan", "Samuel", "Sarah", "Scarlett", "Sebastian", "Sofia",
    "Stella", "Theo", "Thomas", "Uma", "Victor", "Violet", "Wyatt", "Xavier",
    "Yara", "Zachary", "Zoe", "Aaron", "Beckett", "Cora", "Diego", "Elise",
    "Freya", "Gideon", "Harvey", "Imogen", "Jonah", "Kira", "Lorenzo", "Margot",
    "Naomi", "Orion", "Priya", "Rosalind", "Silas", "Tessa", "Ulric", "Vera",
    "Willow", "Yusuf", "Zara", "Ingrid", "Malcolm", "Rhea", "Tobias", "Wanda",
)  # fmt: skip

# Role-word pairs: (truthful role, lying role). The first is the default.
ROLE_PAIRS: dict[str, tuple[str, str]] = {
    "knight/knave": ("knight", "knave"),
    "saint/sinner": ("saint", "sinner"),
    "truth-teller/liar": ("truth-teller", "liar"),
    "hero/villain": ("hero", "villain"),
    "angel/devil": ("angel", "devil"),
    "sage/fool": ("sage", "fool"),
    "pioneer/laggard": ("pioneer", "laggard"),
    "altruist/egoist": ("altruist", "egoist"),
}
DEFAULT_ROLE_WORDS = "knight/knave"

# Ways a person's claim is reported; {c} is the claim, {C} the claim capitalised.
SPEECH_TEMPLATES: tuple[str, ...] = (
    '{name} says, "{C}."',
    "{name} claims that {c}.",
    '{name} tells you, "{C}."',
    "According to {name}, {c}.",
    "{name} insists that {c}.",
    '"{C}," says {name}.',
    '{name} announces: "{C}."',
    '{name} replies, "{C}."',
    "When asked, {name} says that {c}.",
    "{name} mentions that {c}.",
    '{name} states: "{C}."',
    "{name} swears that {c}.",
    '"{C}," {name} whispers.',
    "{name} declares that {c}.",
    'You hear {name} say, "{C}."',
    "{name} points out that {c}.",
)

INTRO = (
    "Every inhabitant of this island is either {a_knight} or {a_knave}. "
    "{Knight}s always tell the truth, and {knave}s always lie. "
)
OUTRO = "Who is {a_knight} and who is {a_knave}?"

_WORD = re.compile(r"^[a-z][a-z-]*[a-z]$")


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def role_words(spec: str = DEFAULT_ROLE_WORDS) -> dict[str, str]:
    """The ``knight_knave`` dict of a record, keys in mem-kk-logic's order.

    ``spec`` is a known pair such as ``"saint/sinner"`` or any ``"truthful/lying"`` pair of
    lower-case words.

    >>> role_words("truth-teller/liar")["a_knight"]
    'a truth-teller'
    """
    parts = spec.split("/") if isinstance(spec, str) else []
    if len(parts) != 2 or not all(_WORD.match(p) for p in parts) or parts[0] == parts[1]:
        known = ", ".join(ROLE_PAIRS)
        raise ValueError(
            f"role words must look like 'truthful/lying' (lower-case words), e.g. {known}; "
            f"got {spec!r}"
        )
    knight, knave = parts
    return {
        "knight": knight,
        "knave": knave,
        "a_knight": _article(knight),
        "a_knave": _article(knave),
        "Knight": knight.capitalize(),
        "Knave": knave.capitalize(),
    }


# A claim's text depends on the puzzle only through names and the two role words, so each
# claim is rendered once as a %-template; the fields are picked from
# [*names, a_knight, a_knave] (a role field holds the index of its word from the end).
_KNIGHT, _KNAVE = -2, -1
ClaimPattern = tuple[str, Callable[[Sequence[str]], "Any"]]
_PATTERNS: dict[Statement, ClaimPattern] = {}


def claim_pattern(stmt: Statement) -> ClaimPattern:
    """(``%s`` template, field picker) of a claim (cached); see :func:`fill_claims`."""
    pattern = _PATTERNS.get(stmt)
    if pattern is None:
        if len(_PATTERNS) > 200_000:  # bound memory on long runs
            _PATTERNS.clear()
        fields: list[int] = []
        text = _render(stmt, fields)
        pattern = _PATTERNS[stmt] = (text, itemgetter(*fields))
    return pattern


def fill_claims(
    patterns: Sequence[ClaimPattern], names: Sequence[str], roles: dict[str, str]
) -> list[str]:
    """The claims of these patterns in English, for these names and role words."""
    values = [*names, roles["a_knight"], roles["a_knave"]]
    return [text % pick(values) for text, pick in patterns]


def render_claim(stmt: Statement, names: Sequence[str], roles: dict[str, str]) -> str:
    """A claim in English; compound parts of deeper claims are put in parentheses."""
    return fill_claims([claim_pattern(stmt)], names, roles)[0]


def _leaf(stmt: Statement, fields: list[int], neg: bool = False) -> str:
    fields += (stmt[1], _KNIGHT if stmt[0] == "telling-truth" else _KNAVE)
    return "%s is not %s" if neg else "%s is %s"


def _render(stmt: Statement, fields: list[int]) -> str:
    """The claim with ``%s`` for each name and role word; appends what each one is to
    ``fields``, in the order of the text."""
    op = stmt[0]
    if op in LEAF_OPS:
        return _leaf(stmt, fields)
    if op == "not":
        sub = stmt[1]
        if sub[0] in LEAF_OPS:
            return _leaf(sub, fields, neg=True)
        return "it is not the case that " + _part(sub, fields)
    parts = [_part(s, fields) for s in stmt[1:]]
    if op == "and":
        return " and ".join(parts)
    if op == "or":
        return " or ".join(parts)
    if op == "->":
        return f"if {parts[0]} then {parts[1]}"
    return f"{parts[0]} if and only if {parts[1]}"


def _part(stmt: Statement, fields: list[int]) -> str:
    text = _render(stmt, fields)
    if stmt[0] in LEAF_OPS or (stmt[0] == "not" and stmt[1][0] in LEAF_OPS):
        return text
    return f"({text})"


def _percent_style(template: str) -> tuple[str, bool, bool]:
    """'{name} says, "{C}."' -> ('%s says, "%s."', name comes first, claim capitalised).

    ``%`` with two positional fields costs half of ``str.format`` with three keywords.
    """
    name_at = template.index("{name}")
    claim_at = template.find("{c}")
    capital = claim_at < 0
    if capital:
        claim_at = template.index("{C}")
    percent = template.replace("%", "%%")
    for field in ("{name}", "{c}", "{C}"):
        percent = percent.replace(field, "%s")
    return percent, name_at < claim_at, capital


_SPEECH = {t: _percent_style(t) for t in SPEECH_TEMPLATES}


def speech(template: str, name: str, claim: str) -> str:
    """Fill a speech template (one ``{name}`` and one ``{c}`` or ``{C}``, the claim
    capitalised)."""
    compiled = _SPEECH.get(template)
    if compiled is None:
        return template.format(name=name, c=claim, C=claim[0].upper() + claim[1:])
    percent, name_first, capital = compiled
    if capital:
        claim = claim[0].upper() + claim[1:]
    return percent % ((name, claim) if name_first else (claim, name))


def join_names(names: Sequence[str]) -> str:
    """'A, B, and C' (and 'A and B' for two)."""
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return ", ".join(names[:-1]) + ", and " + names[-1]


def render_quiz(
    statements: Sequence[Statement],
    names: Sequence[str],
    roles: dict[str, str],
    templates: Sequence[int],
    order: Sequence[int] | None = None,
    claims: Sequence[str] | None = None,
) -> str:
    """The puzzle text: intro, one reported claim per person (in ``order``), question.

    ``claims`` may hold the already rendered claims (``render_claim`` of each statement).
    """
    n = len(statements)
    if claims is None:
        claims = [render_claim(s, names, roles) for s in statements]
    intro, outro = _frame(roles["a_knight"], roles["a_knave"], roles["Knight"], roles["knave"])
    out = [intro, f"You meet {n} inhabitants: {join_names(names)}."]
    for i in order if order is not None else range(n):
        out.append(" " + speech(SPEECH_TEMPLATES[templates[i]], names[i], claims[i]))
    out.append(outro)
    return "".join(out)


@lru_cache(maxsize=64)
def _frame(a_knight: str, a_knave: str, cap_knight: str, knave: str) -> tuple[str, str]:
    """The quiz's first and last sentences for these role words (the same in every quiz)."""
    roles = {"a_knight": a_knight, "a_knave": a_knave, "Knight": cap_knight, "knave": knave}
    return INTRO.format(**roles), " " + OUTRO.format(**roles)


def _roles_said(names: Sequence[str], solution: Sequence[bool], roles: dict[str, str]) -> list[str]:
    """['A is a knight', 'B is a knave', ...]: the pieces of both solution texts."""
    kn, kv = roles["a_knight"], roles["a_knave"]
    return [f"{n} is {kn if k else kv}" for n, k in zip(names, solution, strict=True)]


def solution_text(names: Sequence[str], solution: Sequence[bool], roles: dict[str, str]) -> str:
    """'A is a knight, B is a knave, and C is a knight.' (mem-kk-logic's layout)."""
    return _sentence(_roles_said(names, solution, roles))


def _sentence(parts: list[str]) -> str:
    return ", ".join(parts[:-1]) + ", and " + parts[-1] + "."


def _numbered(parts: list[str]) -> str:
    return "\n".join([f"({i}) {p}" for i, p in enumerate(parts, 1)])


def solution_text_format(
    names: Sequence[str], solution: Sequence[bool], roles: dict[str, str]
) -> str:
    """'(1) A is a knight\\n(2) B is a knave' : the answer format the rewards expect."""
    return _numbered(_roles_said(names, solution, roles))


def solution_texts(
    names: Sequence[str], solution: Sequence[bool], roles: dict[str, str]
) -> tuple[str, str]:
    """(solution_text, solution_text_format), sharing their pieces."""
    parts = _roles_said(names, solution, roles)
    return _sentence(parts), _numbered(parts)
