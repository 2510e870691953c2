"""The reserved evaluation slice of puzzle space: puzzles no training data ever contains.

A puzzle's *structure* is its statements up to everything that does not change the logic:
names, role words and the order the quiz lists the statements never enter the statements,
and :func:`structure_key` also forgets the operand order of ``and``/``or``/``<=>`` and any
permutation of the people (speaker i <-> speaker j with every reference renamed). The key
is the smallest relabelled statement tuple over the permutations that respect a
permutation-invariant colouring of the people (Weisfeiler-Lehman refinement), so it is an
exact canonical form: two puzzles share a key exactly when one is a relabelling of the
other. ``RESERVED_PER_MILLE`` of the keys' hash space (a fixed 10%) is reserved for
evaluation.

Who honours it: the tiny model's pre-training stream, every RL stage's data and
``kk-gen --split``'s train side draw with ``reserved="exclude"``; held-out sets (the run's
evaluation, kk-eval's default set for any seed, ``kk-gen --split``'s test side) come from
``kk_puzzles.generator.heldout_puzzles`` (``reserved="only"``). ``kk-gen slice`` prints its size per person
count.

>>> a = (('and', ('telling-truth', 1), ('lying', 2)), ('lying', 0), ('telling-truth', 0))
>>> b = (('lying', 1), ('and', ('lying', 2), ('telling-truth', 0)), ('telling-truth', 1))
>>> structure_key(a) == structure_key(b)  # b is a with people 0 and 1 swapped
True
>>> is_reserved(a) == is_reserved(b)
True
"""

from __future__ import annotations

try:  # blake2 without loading OpenSSL (hashlib's import costs ~20 ms per process)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - other Python builds
    from hashlib import blake2b
import itertools
from collections.abc import Sequence

from .grammar import LEAF_OPS, Statement, mentioned

# Share of structures reserved for evaluation, in thousandths of the key hash space.
RESERVED_PER_MILLE = 100
# Draw modes of kk_puzzles.generate: every puzzle, only training-side, only reserved.
RESERVED_MODES = ("any", "exclude", "only")
# Above this many colour-respecting relabellings, key on the colour refinement alone
# (still invariant under permutations; it may merge rare symmetric structures).
MAX_RELABELLINGS = 5040
WL_ROUNDS = 3
_COMMUTATIVE = ("and", "or", "<=>")


def _encode(stmt: Statement, labels: Sequence[str], at: int = -1, dollar: int = -1) -> str:
    """A claim as text with person j written as ``labels[j]`` (``"@"`` for person ``at``,
    ``"$"`` for person ``dollar``), commutative operands sorted (so the text does not
    depend on their order)."""
    op = stmt[0]
    if op in LEAF_OPS:
        p = stmt[1]
        label = "$" if p == dollar else "@" if p == at else labels[p]
        return ("T" if op == "telling-truth" else "L") + label
    subs = []
    for sub in stmt[1:]:
        kind = sub[0]
        if kind in LEAF_OPS:  # inlined leaf (most operands are leaves)
            p = sub[1]
            label = "$" if p == dollar else "@" if p == at else labels[p]
            subs.append(("T" if kind == "telling-truth" else "L") + label)
        else:
            subs.append(_encode(sub, labels, at, dollar))
    if op in _COMMUTATIVE:
        subs.sort()
    return f"({op} {' '.join(subs)})"


# First-round encodings (every person still labelled "<>") recur across puzzles: cached.
_FIRST_ROUND: dict[tuple[Statement, int, int], str] = {}


def _encode_first(stmt: Statement, labels: Sequence[str], at: int, dollar: int) -> str:
    key = (stmt, at, dollar)
    text = _FIRST_ROUND.get(key)
    if text is None:
        if len(_FIRST_ROUND) > 200_000:  # bound memory on long runs
            _FIRST_ROUND.clear()
        text = _FIRST_ROUND[key] = _encode(stmt, labels, at, dollar)
    return text


def _colours(statements: Sequence[Statement]) -> list[str]:
    """A colour per person that a permutation of the people carries along with them."""
    n = len(statements)
    about = [set(mentioned(s)) for s in statements]
    colours = [""] * n
    for rounds in range(WL_ROUNDS):
        new = []
        seen_as = [f"<{c}>" for c in colours]
        encode = _encode_first if rounds == 0 else _encode
        # claim k with its speaker marked "$": the same for every i that claim k does not
        # mention (marking i "@" changes nothing there), so encoded once per round
        plain = [encode(statements[k], seen_as, -1, k) for k in range(n)]
        for i in range(n):
            # i's own claim with i marked "@", and every other claim with i marked "@" and
            # its speaker "$": what i says and what is said about i, up to relabelling
            own = encode(statements[i], seen_as, i, -1)
            heard = [
                encode(statements[k], seen_as, i, k) if i in about[k] else plain[k]
                for k in range(n)
                if k != i
            ]
            heard.sort()
            digest = blake2b(f"{colours[i]}|{own}|{'|'.join(heard)}".encode(), digest_size=6)
            new.append(digest.hexdigest())
        if len(set(new)) == len(set(colours)) and _ranks(new) == _ranks(colours):
            break
        colours = new
    return colours


def _ranks(colours: Sequence[str]) -> list[int]:
    order = sorted(set(colours))
    return [order.index(c) for c in colours]


def structure_key(statements: Sequence[Statement]) -> str:
    """Canonical text of a puzzle's logic: the same for every renaming, role-word choice,
    statement order, operand order and permutation of the people."""
    n = len(statements)
    colours = _colours(statements)
    groups: dict[str, list[int]] = {}
    for person, colour in enumerate(colours):
        groups.setdefault(colour, []).append(person)
    ordered = [groups[c] for c in sorted(groups)]
    count = 1
    for g in ordered:
        for k in range(2, len(g) + 1):
            count *= k
    if count > MAX_RELABELLINGS:
        return "wl:" + ",".join(sorted(colours))
    best: str | None = None
    for choice in itertools.product(*(itertools.permutations(g) for g in ordered)):
        new_of = [0] * n
        for new, old in enumerate(p for g in choice for p in g):
            new_of[old] = new
        labels = [str(x) for x in new_of]
        by_new = [""] * n
        for old in range(n):
            by_new[new_of[old]] = _encode(statements[old], labels)
        text = ";".join(by_new)
        if best is None or text < best:
            best = text
    assert best is not None
    return best


def key_bucket(key: str) -> int:
    """The key's position in the hash space, 0..999."""
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "little") % 1000


def is_reserved(statements: Sequence[Statement]) -> bool:
    """True when the puzzle's structure lies in the evaluation slice."""
    return key_bucket(structure_key(statements)) < RESERVED_PER_MILLE


_BY_ID: dict[str, bool] = {}


def is_reserved_id(pid: str, statements: Sequence[Statement]) -> bool:
    """``is_reserved`` cached by puzzle id (a training stream meets the same puzzles often)."""
    hit = _BY_ID.get(pid)
    if hit is None:
        if len(_BY_ID) > 500_000:  # bound memory on long runs
            _BY_ID.clear()
        hit = _BY_ID[pid] = is_reserved(statements)
    return hit


def check_mode(mode: str) -> str:
    if mode not in RESERVED_MODES:
        raise ValueError(f"reserved must be one of {', '.join(RESERVED_MODES)}, got {mode!r}")
    return mode
