"""A compact reasoning trace that a tiny model can execute one lookup at a time.

The trace enumerates candidate assignments ("rows") in a fixed order, knight before
knave, the first person varying slowest. Each line checks one speaker against one row:

    <row restated> : <speaker> <role> : <postfix claim> ; <claim truth> <role> <ok|bad>

* the row is restated at the start of every line (``Zoey knight Bob knave``), so each
  later lookup of a candidate role copies from the same line, never from an earlier row
  (in a prototype, 80 of 93 wrong traces copied a role from an earlier row);
* a leaf of the claim is ``<name> <claimed role> = <candidate role> <true|false>``;
* operators follow their operands (postfix): ``not``, ``and``, ``or``, ``->``, ``<=>``
  followed by the operator's truth value, so any statement tree of the grammar works;
* a row stops at its first ``bad`` line; the trace stops after the first row whose
  speakers are all ``ok`` (the unique solution).

Example (two people; Zoey says "Bob is a knave", Bob says "Zoey is a knave and Bob is a
knight"):

>>> record = {
...     "names": ["Zoey", "Bob"],
...     "statements": "(('lying', 1), ('and', ('lying', 0), ('telling-truth', 1)))",
...     "knight_knave": {"knight": "knight", "knave": "knave"},
... }
>>> print(compact_trace(record))
Zoey knight Bob knight : Zoey knight : Bob knave = knight false ; false knight bad
Zoey knight Bob knave : Zoey knight : Bob knave = knave true ; true knight ok
Zoey knight Bob knave : Bob knave : Zoey knave = knight false Bob knight = knave false and false ; false knave ok
>>> trace_solution(record)
(True, False)

Pure standard library: ``kk_puzzles`` imports no ML packages.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from .io import json_or_value

__all__ = [
    "OPERATOR_WORDS",
    "TRACE_WORDS",
    "compact_trace",
    "matching_lines",
    "parse_statement_field",
    "trace_lines",
    "trace_solution",
]

# Words the trace adds to the puzzle's own names and role words (the tokenizer needs them).
OPERATOR_WORDS = {"not": "not", "and": "and", "or": "or", "->": "->", "<=>": "<=>"}
TRACE_WORDS = ("=", ":", ";", "true", "false", "ok", "bad", "not", "and", "or", "->", "<=>")


def parse_statement_field(statements: Any) -> tuple:
    """Nested tuples from a record's ``statements`` (a Python repr string, or already parsed).

    ``ast.literal_eval`` only builds literals, so this is safe on untrusted text.

    >>> parse_statement_field("(('lying', 1), ('telling-truth', 0))")
    (('lying', 1), ('telling-truth', 0))
    >>> parse_statement_field([["not", ["lying", 0]]])
    (('not', ('lying', 0)),)
    """
    if isinstance(statements, str):
        statements = ast.literal_eval(statements)

    def freeze(node: Any) -> Any:
        if isinstance(node, (list, tuple)):
            return tuple(freeze(x) for x in node)
        return node

    frozen = freeze(statements)
    if not isinstance(frozen, tuple):
        raise ValueError(f"statements must be a sequence, got {type(statements).__name__}")
    return frozen


def _roles(record: Mapping[str, Any]) -> tuple[str, str]:
    kk = json_or_value(record.get("knight_knave") or {}, strict=True)
    return str(kk.get("knight", "knight")), str(kk.get("knave", "knave"))


def _names(record: Mapping[str, Any]) -> list[str]:
    names = json_or_value(record["names"], strict=True)
    return [str(n) for n in names]


def _eval_postfix(
    node: tuple, row: Sequence[bool], names: Sequence[str], roles: tuple[str, str], out: list[str]
) -> bool:
    """Append the postfix trace of ``node`` under ``row`` to ``out``; return its truth."""
    op = node[0]
    if op in ("telling-truth", "lying"):
        who = int(node[1])
        claimed_knight = op == "telling-truth"
        value = row[who] == claimed_knight
        out += [
            names[who],
            roles[0] if claimed_knight else roles[1],
            "=",
            roles[0] if row[who] else roles[1],
            "true" if value else "false",
        ]
        return value
    if op not in OPERATOR_WORDS:
        raise ValueError(f"unknown operator {op!r} in statement")
    args = [_eval_postfix(child, row, names, roles, out) for child in node[1:]]
    if op == "not":
        if len(args) != 1:
            raise ValueError("'not' takes one operand")
        value = not args[0]
    elif op == "and":
        value = all(args)
    elif op == "or":
        value = any(args)
    elif op == "->":
        if len(args) != 2:
            raise ValueError("'->' takes two operands")
        value = (not args[0]) or args[1]
    else:
        if len(args) != 2:
            raise ValueError("'<=>' takes two operands")
        value = args[0] == args[1]
    out += [OPERATOR_WORDS[op], "true" if value else "false"]
    return value


def _rows(people: int) -> itertools.product:
    # True (knight) first, first person varying slowest: a fixed order the model can learn.
    return itertools.product((True, False), repeat=people)


def _trace_lines(record: Mapping[str, Any]) -> tuple[list[str], tuple[bool, ...] | None]:
    names = _names(record)
    roles = _roles(record)
    statements = parse_statement_field(record["statements"])
    if len(statements) != len(names):
        raise ValueError(f"{len(statements)} statements for {len(names)} names")
    lines: list[str] = []
    for row in _rows(len(names)):
        restated = " ".join(
            f"{n} {roles[0] if k else roles[1]}" for n, k in zip(names, row, strict=True)
        )
        passed = True
        for speaker, stmt in enumerate(statements):
            role = roles[0] if row[speaker] else roles[1]
            parts: list[str] = []
            truth = _eval_postfix(stmt, row, names, roles, parts)
            ok = truth == row[speaker]
            lines.append(
                f"{restated} : {names[speaker]} {role} : {' '.join(parts)} ; "
                f"{'true' if truth else 'false'} {role} {'ok' if ok else 'bad'}"
            )
            if not ok:
                passed = False
                break
        if passed:
            return lines, tuple(row)
    return lines, None


def compact_trace(record: Mapping[str, Any]) -> str:
    """The compact trace of a puzzle record (``names``, ``statements``, ``knight_knave``).

    Lines are separated by ``\\n``; the last line is the last check of the first row that
    passes, which is the solution when the puzzle has exactly one.
    """
    lines, _ = _trace_lines(record)
    return "\n".join(lines)


def trace_solution(record: Mapping[str, Any]) -> tuple[bool, ...] | None:
    """The assignment the trace ends on (True = knight), or None if no row passes."""
    return _trace_lines(record)[1]


def trace_lines(reasoning: str) -> list[str]:
    """The lines of a written trace, stripped, empty ones dropped."""
    return [ln for ln in (raw.strip() for raw in reasoning.splitlines()) if ln]


def matching_lines(got: Sequence[str], reference: Sequence[str]) -> int:
    """How many leading lines of ``got`` equal the ``reference`` trace's, in order.

    >>> matching_lines(["a", "b", "x"], ["a", "b", "c", "d"]), matching_lines([], ["a"])
    (2, 0)
    """
    n = 0
    for g, w in zip(got, reference, strict=False):
        if g != w:
            break
        n += 1
    return n
