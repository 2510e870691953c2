"""Exact solver over all 2^N role assignments, with Python ints as bit sets.

Assignment ``a`` (an integer 0 .. 2^N - 1) makes person i a knight when bit i of ``a`` is 1.
Person i's *knight mask* has bit ``a`` set for every assignment in which i is a knight, so
a statement becomes a few bitwise operations on masks, a speaker's consistency is
``~(knight_i ^ claim_i)``, and the number of solutions is a popcount.

>>> count_solutions((('lying', 1), ('and', ('telling-truth', 0), ('telling-truth', 1))), 2)
1
>>> solve((('lying', 1), ('and', ('telling-truth', 0), ('telling-truth', 1))), 2)
[(True, False)]
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from .grammar import Statement, StatementError, check_statement

MAX_PEOPLE = 20


@cache
def knight_masks(people: int) -> tuple[tuple[int, ...], int]:
    """(knight mask of each person, mask of all 2^people assignments)."""
    if not 1 <= people <= MAX_PEOPLE:
        raise ValueError(f"people must be between 1 and {MAX_PEOPLE}, got {people}")
    size = 1 << people
    full = (1 << size) - 1
    masks = []
    for i in range(people):
        half = 1 << i  # runs of 2^i zeros then 2^i ones, repeated: build by doubling
        m = ((1 << half) - 1) << half
        span = 2 * half
        while span < size:
            m |= m << span
            span *= 2
        masks.append(m)
    return tuple(masks), full


def combine_masks(op: str, masks: Sequence[int], full: int) -> int:
    """Bit set of a compound claim from the bit sets of its operands.

    >>> combine_masks("->", [0b0011, 0b0101], 0b1111)  # not a, or b
    13
    """
    if op == "and":
        m = full
        for x in masks:
            m &= x
        return m
    if op == "or":
        m = 0
        for x in masks:
            m |= x
        return m
    if op == "->":
        return (full ^ masks[0]) | masks[1]
    if op == "<=>":
        return full ^ masks[0] ^ masks[1]
    raise StatementError(f"unknown operator {op!r}")


def statement_mask(stmt: Statement, knights: Sequence[int], full: int) -> int:
    """Bit set of the assignments in which ``stmt`` is true."""
    op = stmt[0]
    if op == "telling-truth":
        return knights[stmt[1]]
    if op == "lying":
        return full ^ knights[stmt[1]]
    if op == "not":
        return full ^ statement_mask(stmt[1], knights, full)
    if op in ("and", "or", "->", "<=>"):
        return combine_masks(op, [statement_mask(sub, knights, full) for sub in stmt[1:]], full)
    raise StatementError(f"unknown operator {op!r}")


def consistent_mask(statements: Sequence[Statement], people: int | None = None) -> int:
    """Bit set of the assignments in which every knight's claim is true and every knave's false."""
    n = len(statements) if people is None else people
    if len(statements) != n:
        raise StatementError(f"{len(statements)} statements for {n} people")
    for stmt in statements:
        check_statement(stmt, n)
    knights, full = knight_masks(n)
    ok = full
    for i, stmt in enumerate(statements):
        ok &= full ^ knights[i] ^ statement_mask(stmt, knights, full)
        if not ok:
            break
    return ok


def mask_to_solutions(mask: int, people: int) -> list[tuple[bool, ...]]:
    """Decode assignment bits, ordered like mem-kk-logic (knight before knave, person 0 first)."""
    sols = []
    while mask:
        low = mask & -mask
        a = low.bit_length() - 1
        sols.append(tuple(bool(a >> i & 1) for i in range(people)))
        mask ^= low
    sols.sort(key=lambda s: tuple(not b for b in s))
    return sols


def solve(statements: Sequence[Statement], people: int | None = None) -> list[tuple[bool, ...]]:
    """All solutions (True = knight), in mem-kk-logic's order."""
    n = len(statements) if people is None else people
    return mask_to_solutions(consistent_mask(statements, n), n)


def count_solutions(statements: Sequence[Statement], people: int | None = None) -> int:
    """Number of role assignments consistent with every statement."""
    return consistent_mask(statements, people).bit_count()
