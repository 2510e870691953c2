"""Statement grammar shared with the public mem-kk-logic generator.

A statement is a nested tuple:

- leaves ``('telling-truth', i)`` ("person i is a knight") and ``('lying', i)``;
- ``('not', s)``, ``('and', s1, s2, ...)``, ``('or', s1, s2, ...)``,
  ``('->', s1, s2)``, ``('<=>', s1, s2)``.

A puzzle is a tuple holding one statement per person. ``repr()`` of that tuple is the
``statements`` field of a record; :func:`parse_statements` reads it back without ``eval``.

>>> s = parse_statements("(('lying', 1), ('and', ('telling-truth', 0), ('telling-truth', 1)))")
>>> s[1]
('and', ('telling-truth', 0), ('telling-truth', 1))
>>> evaluate(s[1], (True, False))
False
>>> depth_of(s[1]), width_of(s)
(2, 2)
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache

TYPE_CHECKING = False  # typing's, without importing typing (2 ms of every kk-gen run)
if TYPE_CHECKING:
    from typing import Any

Statement = tuple["Any", ...]  # a name in quotes: typing is not imported at run time
Statements = tuple[Statement, ...]
Value = str | int | tuple

LEAF_OPS = ("telling-truth", "lying")
UNARY_OPS = ("not",)
NARY_OPS = ("and", "or")
BINARY_OPS = ("->", "<=>")
ALL_OPS = LEAF_OPS + UNARY_OPS + NARY_OPS + BINARY_OPS


class StatementError(ValueError):
    """A statements string or tuple that does not follow the grammar."""


_TOKEN = re.compile(r"\s*(?:(?P<p>[(),])|'(?P<s1>[^'\\]*)'|\"(?P<s2>[^\"\\]*)\"|(?P<i>-?\d+))")


def _parse_value(text: str) -> Value:
    """Parse a Python literal made only of tuples, quoted strings and ints (no eval)."""
    pos = 0
    stack: list[list[Value]] = []
    result: Value | None = None
    expect_value = True
    while True:
        m = _TOKEN.match(text, pos)
        if m is None:
            rest = text[pos:].strip()
            if not rest:
                break
            raise StatementError(f"unexpected text at offset {pos}: {rest[:20]!r}")
        pos = m.end()
        punct = m.group("p")
        if punct == "(":
            if not expect_value:
                raise StatementError(f"missing comma before offset {m.start()}")
            stack.append([])
            continue
        if punct == ")":
            if not stack:
                raise StatementError(f"unbalanced ')' at offset {m.start()}")
            value: Value = tuple(stack.pop())
        elif punct == ",":
            if expect_value or not stack:
                raise StatementError(f"unexpected ',' at offset {m.start()}")
            expect_value = True
            continue
        else:
            if not expect_value:
                raise StatementError(f"missing comma before offset {m.start()}")
            if m.group("i") is not None:
                value = int(m.group("i"))
            else:
                s1 = m.group("s1")
                value = s1 if s1 is not None else m.group("s2")
        expect_value = False
        if stack:
            stack[-1].append(value)
        elif result is None:
            result = value
        else:
            raise StatementError(f"extra value at offset {m.start()}")
    if stack:
        raise StatementError("unbalanced '(' (input ends inside a tuple)")
    if result is None:
        raise StatementError("empty statements string")
    return result


def check_statement(stmt: Any, people: int | None = None) -> None:
    """Raise StatementError unless ``stmt`` follows the grammar (indices < people)."""
    if not isinstance(stmt, tuple) or not stmt or not isinstance(stmt[0], str):
        raise StatementError(f"not a statement: {stmt!r}")
    op = stmt[0]
    if op in LEAF_OPS:
        if len(stmt) != 2 or not isinstance(stmt[1], int) or isinstance(stmt[1], bool):
            raise StatementError(f"bad leaf {stmt!r}")
        if stmt[1] < 0 or (people is not None and stmt[1] >= people):
            raise StatementError(f"person index {stmt[1]} out of range in {stmt!r}")
        return
    if op == "not":
        if len(stmt) != 2:
            raise StatementError(f"'not' takes one operand: {stmt!r}")
    elif op in NARY_OPS:
        if len(stmt) < 3:
            raise StatementError(f"{op!r} needs at least two operands: {stmt!r}")
    elif op in BINARY_OPS:
        if len(stmt) != 3:
            raise StatementError(f"{op!r} takes two operands: {stmt!r}")
    else:
        raise StatementError(f"unknown operator {op!r}")
    for sub in stmt[1:]:
        check_statement(sub, people)


def _to_tuple(value: Any) -> Any:
    if type(value) is list:
        if len(value) == 2 and type(value[1]) is int:  # a leaf: nothing nested
            return (value[0], value[1])
        return tuple([_to_tuple(v) for v in value])
    return value


def _fast_parse(text: str) -> Value | None:
    """Tuple repr -> JSON -> json.loads (C speed); None when the text is not that simple."""
    if "[" in text or "]" in text or "{" in text or "}" in text:
        return None
    if '"' in text:  # only the careful tokenizer handles double-quoted strings
        return None
    body = text.replace("'", '"').replace(",)", ")").replace("(", "[").replace(")", "]")
    try:
        return _to_tuple(json.loads(body))
    except ValueError:
        return None


def parse_statements(text: str, people: int | None = None) -> Statements:
    """Read the repr string of a statements tuple safely (no ``eval``) and validate it.

    >>> parse_statements("(('not', ('telling-truth', 1)), ('lying', 0))")
    (('not', ('telling-truth', 1)), ('lying', 0))
    >>> parse_statements("__import__('os')")
    Traceback (most recent call last):
    ...
    kk_puzzles.grammar.StatementError: unexpected text at offset 0: "__import__('os')"
    """
    # Records are often parsed several times (perturbations, import): cache the result.
    if isinstance(text, str) and len(text) < 20_000:
        return _parse_cached(text, people)
    return _parse(text, people)


@lru_cache(maxsize=4096)
def _parse_cached(text: str, people: int | None) -> Statements:
    return _parse(text, people)


def _parse(text: str, people: int | None = None) -> Statements:
    if not isinstance(text, str):
        raise StatementError(f"statements must be a string, got {type(text).__name__}")
    value = _fast_parse(text)
    if value is None:  # the careful tokenizer gives a precise error message
        value = _parse_value(text)
    if not isinstance(value, tuple) or not value:
        raise StatementError("statements must be a non-empty tuple of statements")
    n = len(value) if people is None else people
    if len(value) != n:
        raise StatementError(f"{len(value)} statements for {n} people")
    for stmt in value:
        check_statement(stmt, n)
    return value  # type: ignore[return-value]


def format_statements(statements: Sequence[Statement]) -> str:
    """The ``statements`` field: Python's repr of the tuple, as mem-kk-logic writes it."""
    return repr(tuple(statements))


def evaluate(stmt: Statement, assignment: Sequence[bool]) -> bool:
    """Truth of ``stmt`` when ``assignment[i]`` says whether person i is a knight."""
    op = stmt[0]
    if op == "telling-truth":
        return bool(assignment[stmt[1]])
    if op == "lying":
        return not assignment[stmt[1]]
    if op == "not":
        return not evaluate(stmt[1], assignment)
    if op == "and":
        return all(evaluate(s, assignment) for s in stmt[1:])
    if op == "or":
        return any(evaluate(s, assignment) for s in stmt[1:])
    if op == "->":
        return (not evaluate(stmt[1], assignment)) or evaluate(stmt[2], assignment)
    if op == "<=>":
        return evaluate(stmt[1], assignment) == evaluate(stmt[2], assignment)
    raise StatementError(f"unknown operator {op!r}")


def depth_of(stmt: Statement) -> int:
    """Levels of a statement, counting leaves as 1 (mem-kk-logic's depth constraint)."""
    if stmt[0] in LEAF_OPS:
        return 1
    return 1 + max(depth_of(s) for s in stmt[1:])


def width_of(statements: Sequence[Statement]) -> int:
    """Largest number of operands of any 'and'/'or' (2 when there is none)."""
    best = 2
    todo = list(statements)
    while todo:
        s = todo.pop()
        if s[0] in LEAF_OPS:
            continue
        if s[0] in NARY_OPS:
            best = max(best, len(s) - 1)
        todo.extend(s[1:])
    return best


def mentioned(stmt: Statement) -> list[int]:
    """People a statement talks about, in order of first mention."""
    out: list[int] = []
    todo = [stmt]
    while todo:
        s = todo.pop()
        if s[0] in LEAF_OPS:
            if s[1] not in out:
                out.append(s[1])
        else:
            todo.extend(reversed(s[1:]))
    return out


def canonical(stmt: Statement) -> Statement:
    """Operands of the commutative 'and', 'or', '<=>' sorted, so equal claims compare equal."""
    op = stmt[0]
    if op in LEAF_OPS:
        return stmt
    subs = [canonical(s) for s in stmt[1:]]
    if op != "->" and op != "not":
        subs.sort(key=repr)
    return (op, *subs)
