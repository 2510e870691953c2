"""Perturbations as in the memorisation study (mem-kk-logic), on our records.

Logical ones change the puzzle and must keep exactly one solution that differs from the
original's:

- ``statement``: one random person's whole claim is re-sampled;
- ``leaf``: one leaf (``X is a knight/knave``) somewhere is replaced by another leaf.

Language ones keep the logic and change the surface only:

- ``names``: new names (none of the original ones); ``roles``: another role-word pair;
- ``order``: the claims are told in a different order.

Each perturbed record carries ``perturbation`` (the kind) and ``source_id``.

>>> from kk_puzzles import generate, solve, parse_statements
>>> rec = generate(5, 1, seed=3)[0]
>>> p = perturb(rec, "leaf", seed=0)
>>> p["solution"] != rec["solution"] and p["source_id"] == rec["id"]
True
>>> solve(parse_statements(p["statements"])) == [tuple(p["solution"])]
True
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from .generator import (
    DEFAULT_OP_WEIGHTS,
    NAMES,
    ROLE_PAIRS,
    SPEECH_TEMPLATES,
    _hash_key,
    _meta,
    _pick,
    _Sampler,
    build_record,
    collector_paused,
    surface,
)
from .grammar import LEAF_OPS, Statement, parse_statements
from .render import role_words
from .solver import knight_masks, statement_mask

LOGICAL_KINDS = ("statement", "leaf")
LANGUAGE_KINDS = ("names", "roles", "order")
KINDS = LOGICAL_KINDS + LANGUAGE_KINDS


def _constraints(stmts: Sequence[Statement], n: int) -> tuple[list[int], int, tuple[int, ...]]:
    knights, full = knight_masks(n)
    cons = [full ^ knights[i] ^ statement_mask(s, knights, full) for i, s in enumerate(stmts)]
    return cons, full, knights


def _others(cons: list[int], full: int, person: int) -> int:
    ok = full
    for j, c in enumerate(cons):
        if j != person:
            ok &= c
    return ok


def _leaf_paths(stmt: Statement, path: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    if stmt[0] in LEAF_OPS:
        return [path]
    out: list[tuple[int, ...]] = []
    for k, sub in enumerate(stmt[1:], 1):
        out.extend(_leaf_paths(sub, (*path, k)))
    return out


def _replace(stmt: Statement, path: tuple[int, ...], leaf: Statement) -> Statement | None:
    """``stmt`` with the leaf at ``path`` replaced; None if that repeats a sibling operand."""
    if not path:
        return leaf
    k = path[0]
    sub = _replace(stmt[k], path[1:], leaf)
    if sub is None:
        return None
    parts = list(stmt)
    parts[k] = sub
    if sub in stmt[1:k] or sub in stmt[k + 1 :]:
        return None
    return tuple(parts)


@lru_cache(maxsize=64)
def _sampler(n: int, depth: int, width: int, weights: tuple[tuple[str, float], ...]) -> _Sampler:
    # Building a sampler (its claim tables) costs more than one perturbation: reuse it.
    return _Sampler(n, depth, width, dict(weights), random.Random(0))


def _logical(
    rec: Mapping[str, Any],
    stmts: tuple[Statement, ...],
    kind: str,
    rng: random.Random,
    max_retry: int,
    op_weights: Mapping[str, float] | None,
) -> tuple[tuple[Statement, ...], int] | None:
    n = len(stmts)
    orig_bits = sum(1 << i for i, k in enumerate(rec["solution"]) if k)
    cons, full, knights = _constraints(stmts, n)
    rnd = rng.random
    if kind == "statement":
        depth, width = int(rec.get("depth") or 2), int(rec.get("width") or 2)
        weights = dict(DEFAULT_OP_WEIGHTS)
        weights.update(op_weights or {})
        sampler = _sampler(n, max(depth, 2), max(width, 2), tuple(sorted(weights.items())))
        sampler.random = rnd
        others = [None] * n
        for _ in range(max_retry):
            p = int(rnd() * n)
            if sampler.tables is not None:  # same distribution, one draw, mask included
                cum, entries, _ = sampler.tables[p]
                new, m = entries[bisect_right(cum, rnd())]
            else:
                new, m = sampler.sample(p, sampler.depth)
            if new == stmts[p]:
                continue
            if others[p] is None:
                others[p] = _others(cons, full, p)
            ok = others[p] & (full ^ knights[p] ^ m)
            if ok and not ok & (ok - 1) and ok != 1 << orig_bits:
                return (*stmts[:p], new, *stmts[p + 1 :]), ok.bit_length() - 1
        return None
    # leaf: walk the (position, replacement) pairs in a random order until one works
    # (a lazy Fisher-Yates shuffle over their indices: most walks stop after a few)
    positions = [(p, path) for p, s in enumerate(stmts) for path in _leaf_paths(s)]
    width = 2 * n
    total = len(positions) * width
    swapped: dict[int, int] = {}
    others_cache: dict[int, int] = {}
    for i in range(total):
        j = i + int(rnd() * (total - i))
        pick = swapped.get(j, j)
        swapped[j] = swapped.get(i, i)
        (p, path), q = positions[pick // width], pick % width
        leaf = ("telling-truth", q) if q < n else ("lying", q - n)
        if leaf == ("lying", p):
            continue  # the trivially false self-accusation, as in the sampler
        new = _replace(stmts[p], path, leaf)
        if new is None or new == stmts[p]:
            continue
        if p not in others_cache:
            others_cache[p] = _others(cons, full, p)
        ok = others_cache[p] & (full ^ knights[p] ^ statement_mask(new, knights, full))
        if ok and not ok & (ok - 1) and ok != 1 << orig_bits:
            return (*stmts[:p], new, *stmts[p + 1 :]), ok.bit_length() - 1
    return None


def perturb(
    record: Mapping[str, Any],
    kind: str,
    *,
    seed: int = 0,
    max_retry: int = 1000,
    op_weights: Mapping[str, float] | None = None,
) -> dict[str, Any] | None:
    """One perturbed copy of ``record`` (None when no valid perturbation exists/was found)."""
    if kind not in KINDS:
        raise ValueError(f"unknown perturbation {kind!r}; known: {', '.join(KINDS)}")
    rng = random.Random(f"perturb:{kind}:{seed}:{record['id']}")
    stmts = parse_statements(record["statements"])
    n = len(stmts)
    rec_seed = record.get("seed")
    names = list(record["names"])
    roles = dict(record["knight_knave"])
    if isinstance(rec_seed, int):
        templates = surface(record["id"], rec_seed, n)[2]
    else:
        templates = [int(rng.random() * len(SPEECH_TEMPLATES)) for _ in range(n)]
    order = None
    metas = None
    solution = list(record["solution"])
    pid = record["id"]
    if kind in LOGICAL_KINDS:
        got = _logical(record, stmts, kind, rng, max_retry, op_weights)
        if got is None:
            return None
        stmts, bits = got
        solution = [bool(bits >> i & 1) for i in range(n)]
        metas = [_meta(i, st, n) for i, st in enumerate(stmts)]
        pid = _hash_key("(" + ", ".join(m.canon for m in metas) + ")")
    elif kind == "names":
        pool = [x for x in NAMES if x not in set(names)]
        names = _pick(rng, pool, n)
    elif kind == "roles":
        current = f"{roles.get('knight')}/{roles.get('knave')}"
        choices = [k for k in ROLE_PAIRS if k != current]
        roles = role_words(choices[int(rng.random() * len(choices))])
    else:
        order = list(range(n))
        while order == sorted(order):
            for i in range(n - 1):
                j = i + int(rng.random() * (n - i))
                order[i], order[j] = order[j], order[i]
    out = build_record(
        stmts,
        solution,
        names,
        roles,
        templates,
        depth=int(record.get("depth") or 2),
        width=int(record.get("width") or 2),
        seed=rec_seed,
        order=order,
        pid=pid,
        metas=metas,
    )
    out["perturbation"] = kind
    out["source_id"] = record["id"]
    return out


@collector_paused
def perturb_all(
    records: Iterable[Mapping[str, Any]],
    kinds: Sequence[str],
    *,
    seed: int = 0,
    max_retry: int = 1000,
) -> dict[str, list[dict[str, Any]]]:
    """Perturbed sets per kind; logical ones skip records with no valid perturbation and
    never repeat an original puzzle or each other."""
    records = list(records)
    taken = {r["id"] for r in records}
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in kinds:
        got = []
        seen = set(taken) if kind in LOGICAL_KINDS else set()
        for r in records:
            p = perturb(r, kind, seed=seed, max_retry=max_retry)
            if p is None:
                continue
            if kind in LOGICAL_KINDS:
                if p["id"] in seen:
                    continue
                seen.add(p["id"])
            got.append(p)
        out[kind] = got
    return out
