"""Puzzle sampling (rejection on exactly one solution), dedupe, and record building.

>>> recs = generate(3, 2, seed=1)
>>> len(recs), recs[0]["people"], len(recs[0]["names"]), sorted(recs[0]["knight_knave"])
(2, 3, 3, ['Knave', 'Knight', 'a_knave', 'a_knight', 'knave', 'knight'])
>>> from kk_puzzles import parse_statements, solve
>>> solve(parse_statements(recs[0]["statements"])) == [tuple(recs[0]["solution"])]
True
"""

from __future__ import annotations

try:  # blake2 without loading OpenSSL (hashlib's import costs ~20 ms per process)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - other Python builds
    from hashlib import blake2b
import functools
import gc
import itertools
import random
from bisect import bisect_right
from collections.abc import Callable, Collection, Mapping, Sequence

from .grammar import Statement, canonical, parse_statements
from .render import (
    NAMES,
    ROLE_PAIRS,
    SPEECH_TEMPLATES,
    claim_pattern,
    fill_claims,
    render_quiz,
    role_words,
    solution_texts,
)
from .reserved import RESERVED_PER_MILLE, check_mode, is_reserved_id, key_bucket, structure_key
from .solver import MAX_PEOPLE, combine_masks, knight_masks
from .trace import claim_for, claim_from_mask, render_trace, trace_steps

TYPE_CHECKING = False  # typing's, without importing typing (2 ms of every kk-gen run)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _F = TypeVar("_F", bound=Callable[..., Any])

MIN_PEOPLE = 2
MAX_DEPTH = 5
MAX_WIDTH = 6
OPERATORS = ("leaf", "not", "and", "or", "->", "<=>")
DEFAULT_OP_WEIGHTS: dict[str, float] = dict.fromkeys(OPERATORS, 1.0)  # mem-kk-logic's mix
RANDOM_ROLE_WORDS = "random"
# Names: drawn from the pool per puzzle, or the first N of the pool in order (a fixed cast:
# names then carry no information, which the embedded tiny model needs; see docs/tiny_model.md).
CASTS = ("random", "fixed")
# Give up when this many samples in a row bring no new puzzle (space exhausted).
STALL_LIMIT = 20_000


def collector_paused(fn: _F) -> _F:
    """Run ``fn`` with Python's cyclic garbage collector paused (restored after).

    Generating and perturbing make no reference cycles (tests check), so the collector
    would only walk the growing list of records again and again: about 4% of a kk-gen run.
    Memory is freed by reference counting as usual.
    """

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return run  # type: ignore[return-value]


class GenerationError(ValueError):
    """Arguments that cannot produce the requested puzzles (one-line message)."""


def puzzle_id(statements: Sequence[Statement]) -> str:
    """Stable content hash of the canonical form (commutative operands sorted).

    >>> puzzle_id((('lying', 1), ('telling-truth', 0))) == puzzle_id((('lying', 1), ('telling-truth', 0)))
    True
    >>> a = (('and', ('lying', 1), ('telling-truth', 0)), ('lying', 0))
    >>> b = (('and', ('telling-truth', 0), ('lying', 1)), ('lying', 0))
    >>> puzzle_id(a) == puzzle_id(b)
    True
    """
    return _hash_key(repr(tuple(canonical(s) for s in statements)))


def _hash_key(key: str) -> str:
    return blake2b(key.encode(), digest_size=8).hexdigest()


def _people_chooser(
    people: int | Sequence[int] | Mapping[int, float],
) -> tuple[list[int], list[float] | None]:
    if isinstance(people, bool):
        raise GenerationError(f"people must be an int, a list or a mapping, got {people!r}")
    if isinstance(people, int):
        counts, weights = [people], None
    elif isinstance(people, Mapping):
        counts = [int(k) for k in people]
        weights = [float(people[k]) for k in people]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise GenerationError(f"people weights must be >= 0 with a positive sum: {people!r}")
    else:
        counts, weights = [int(k) for k in people], None
        if not counts:
            raise GenerationError("people is empty")
    for c in counts:
        if not MIN_PEOPLE <= c <= MAX_PEOPLE:
            raise GenerationError(f"people must be between {MIN_PEOPLE} and {MAX_PEOPLE}, got {c}")
    if weights is not None:
        total = sum(weights)
        acc, cum = 0.0, []
        for w in weights:
            acc += w / total
            cum.append(acc)
        cum[-1] = 1.0
        weights = cum
    return counts, weights


def check_knobs(depth: int, width: int, op_weights: Mapping[str, float] | None) -> dict[str, float]:
    """Validate depth/width/operator weights; return the full weight table."""
    weights = dict(DEFAULT_OP_WEIGHTS)
    if op_weights is not None:
        unknown = sorted(set(op_weights) - set(OPERATORS))
        if unknown:
            raise GenerationError(
                f"unknown operator(s) {', '.join(unknown)}; known: {', '.join(OPERATORS)}"
            )
        weights.update({k: float(v) for k, v in op_weights.items()})
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise GenerationError("operator weights must be >= 0 with a positive sum")
    if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise GenerationError(f"depth must be between 2 and {MAX_DEPTH}, got {depth}")
    if not isinstance(width, int) or not 2 <= width <= MAX_WIDTH:
        raise GenerationError(f"width must be between 2 and {MAX_WIDTH}, got {width}")
    compound = sum(weights[k] for k in ("and", "or", "->", "<=>"))
    if depth < 2 or compound == 0:
        # Claims that are single (possibly negated) literals give parity constraints
        # x_i = x_j (+1): flipping everyone maps solutions to solutions, never exactly one.
        raise GenerationError(
            f"depth {depth} with these operators cannot yield a unique puzzle: claims need "
            "depth >= 2 and some weight on and/or/->/<=>"
        )
    return weights


class _Meta:
    """Per-claim facts reused by every puzzle that contains the claim."""

    __slots__ = ("canon", "claim", "pattern", "text")

    def __init__(
        self, speaker: int, stmt: Statement, people: int, consistent: int | None = None
    ) -> None:
        """``consistent``: where the claim matches its speaker's role, over all 2^people
        assignments (the sampler's mask), if known."""
        self.text, self.canon = _texts(stmt) if people <= CACHE_MAX_PEOPLE else _reprs(stmt)
        if people > CACHE_MAX_PEOPLE:
            self.claim = claim_for(speaker, stmt, cache=False)
        elif consistent is None:
            self.claim = claim_for(speaker, stmt)
        else:
            self.claim = claim_from_mask(speaker, stmt, consistent, people)
        self.pattern = claim_pattern(stmt)


def _reprs(stmt: Statement) -> tuple[str, str]:
    """The claim's text in the statements field, and that of its canonical form."""
    text = repr(stmt)
    canon = canonical(stmt)
    return text, text if canon == stmt else repr(canon)


@functools.lru_cache(maxsize=100_000)
def _texts(stmt: Statement) -> tuple[str, str]:
    """:func:`_reprs`, cached: most claims are open to every speaker."""
    return _reprs(stmt)


_METAS: dict[tuple[int, Statement], _Meta] = {}


# Claims repeat across puzzles only when there are few people; above this, keep no cache
# (it would only cost memory).
CACHE_MAX_PEOPLE = 10


def _meta(speaker: int, stmt: Statement, people: int, consistent: int | None = None) -> _Meta:
    if people > CACHE_MAX_PEOPLE:
        return _Meta(speaker, stmt, people)
    key = (speaker, stmt)
    m = _METAS.get(key)
    if m is None:
        if len(_METAS) > 100_000:  # bound memory on long runs
            _METAS.clear()
        m = _METAS[key] = _Meta(speaker, stmt, people, consistent)
    return m


class _Sampler:
    """Samples one speaker's statement together with its truth mask."""

    def __init__(
        self, n: int, depth: int, width: int, weights: dict[str, float], rng: random.Random
    ) -> None:
        knights, full = knight_masks(n)
        self.n, self.depth, self.width, self.full = n, depth, width, full
        self.knights = knights
        self.random = rng.random
        self.leaves = []
        for s in range(n):
            row = [(("telling-truth", p), knights[p]) for p in range(n)]
            row += [(("lying", p), full ^ knights[p]) for p in range(n) if p != s]
            self.leaves.append(row)
        total = sum(weights.values())
        acc, self.ops = 0.0, []
        for op in OPERATORS:
            if weights[op] > 0:
                acc += weights[op] / total
                self.ops.append((acc, op))
        self.ops[-1] = (1.0, self.ops[-1][1])
        self.tables = self._tables(weights) if depth == 2 else None
        # Per speaker: cumulative probabilities and each claim's consistency mask (where
        # the speaker's role matches the claim's truth), for puzzle()'s draws.
        self.draws = [
            (cum, [full ^ knights[s] ^ m for _, m in entries])
            for s, (cum, entries, _) in enumerate(self.tables or ())
        ]

    def _tables(self, weights: dict[str, float]) -> list[tuple[list[float], list]] | None:
        """Every depth-2 claim of each speaker with its probability, when that list is short.

        Same distribution as the recursive sampler (operator by weight, operand count
        uniform in 2..width, distinct operands in random order), one draw per claim.
        """
        size = len(self.leaves[0])
        if self.n > CACHE_MAX_PEOPLE or size ** min(self.width, size) > 4000:
            return None
        total = sum(weights.values())
        ks = [min(k, size) for k in range(2, self.width + 1)]
        out = []
        for row in self.leaves:
            probs: list[float] = []
            entries: list[tuple[Statement, int]] = []
            for op in OPERATORS:
                w = weights[op] / total
                if w <= 0:
                    continue
                if op == "leaf":
                    for leaf in row:
                        probs.append(w / size)
                        entries.append(leaf)
                    continue
                if op == "not":
                    for st, m in row:
                        probs.append(w / size)
                        entries.append((("not", st), self.full ^ m))
                    continue
                counts = ks if op in ("and", "or") else [2]
                for k in sorted(set(counts)):
                    pk = w * counts.count(k) / len(counts)
                    perms = list(itertools.permutations(row, k))
                    for combo in perms:
                        m = combine_masks(op, [c[1] for c in combo], self.full)
                        probs.append(pk / len(perms))
                        entries.append(((op, *(c[0] for c in combo)), m))
            cum = list(itertools.accumulate(probs))
            cum[-1] = 1.0
            out.append((cum, entries, [None] * len(entries)))
        return out

    def sample(self, speaker: int, depth: int) -> tuple[Statement, int]:
        rnd = self.random
        if depth > 1:
            r = rnd()
            op = next(o for edge, o in self.ops if r < edge)
        else:
            op = "leaf"
        if op == "leaf":
            row = self.leaves[speaker]
            return row[int(rnd() * len(row))]
        full = self.full
        if op == "not":
            sub, m = self.sample(speaker, depth - 1)
            return ("not", sub), full ^ m
        if op == "and" or op == "or":
            k = 2 + int(rnd() * (self.width - 1))
        else:
            k = 2
        if depth == 2:
            # Operands are leaves: draw k distinct ones directly (same distribution as
            # drawing leaves and rejecting repeats, with fewer calls).
            row = self.leaves[speaker]
            size = len(row)
            if k > size:
                k = size
            idx: list[int] = []
            while len(idx) < k:
                x = int(rnd() * size)
                if x not in idx:
                    idx.append(x)
            picked = [row[x] for x in idx]
            subs = [p[0] for p in picked]
            masks = [p[1] for p in picked]
        else:
            subs = []
            masks = []
            while len(subs) < k:
                sub, m = self.sample(speaker, depth - 1)
                if sub not in subs:  # distinct operands, like mem-kk-logic
                    subs.append(sub)
                    masks.append(m)
        return (op, *subs), combine_masks(op, masks, full)

    def puzzle(self) -> tuple[tuple[Statement, ...], int, list[_Meta]] | None:
        """Statements with exactly one solution (its assignment bits, claim facts), else None."""
        if self.tables is None:
            return self._puzzle_sampled()
        rnd = self.random
        ok = self.full
        picks = []
        for cum, cons in self.draws:  # one draw per speaker, stop at the first conflict
            i = bisect_right(cum, rnd())
            ok &= cons[i]
            if not ok:
                return None
            picks.append(i)
        if ok & (ok - 1):
            return None
        stmts = []
        metas = []
        for s, (i, (_, entries, cache)) in enumerate(zip(picks, self.tables, strict=True)):
            meta = cache[i]
            if meta is None:
                meta = cache[i] = _Meta(s, entries[i][0], self.n, self.draws[s][1][i])
            stmts.append(entries[i][0])
            metas.append(meta)
        return tuple(stmts), ok.bit_length() - 1, metas

    def _puzzle_sampled(self) -> tuple[tuple[Statement, ...], int, list[_Meta]] | None:
        full, knights = self.full, self.knights
        ok = full
        stmts = []
        conses = []
        for s in range(self.n):
            st, m = self.sample(s, self.depth)
            cons = full ^ knights[s] ^ m
            ok &= cons
            if not ok:
                return None
            stmts.append(st)
            conses.append(cons)
        if ok & (ok - 1):
            return None
        return (
            tuple(stmts),
            ok.bit_length() - 1,
            [_meta(s, stmts[s], self.n, conses[s]) for s in range(self.n)],
        )


def _pick(rng: random.Random, pool: Sequence[str], k: int) -> list[str]:
    """k distinct items (partial Fisher-Yates on random(), stable across Python versions)."""
    items = list(pool)
    rnd = rng.random
    for i in range(k):
        j = i + int(rnd() * (len(items) - i))
        items[i], items[j] = items[j], items[i]
    return items[:k]


_POOL_MIN = 1 << 64  # keep >= 64 random bits in the pool, so bias is < 2^-58
_POOL_TOP = 1 << 512
_MODULI: dict[tuple[int, str], tuple[list[int], int]] = {}


def _one_digest_span(moduli: Sequence[int]) -> int:
    """The product of the moduli when one digest serves every draw (the pool never drops
    below _POOL_MIN), else 0."""
    span = 1
    for m in moduli:
        span *= m
    return span if span * _POOL_MIN <= _POOL_TOP else 0


def _hash_draws(key: str, moduli: Sequence[int], span: int = 0) -> list[int]:
    """One uniform draw below each modulus, from blake2b digests of ``key`` (cheaper than
    seeding a Random): a 512-bit digest is a pool that each draw divides.

    ``span``: ``_one_digest_span(moduli)``, if known and not 0: the same draws, as the
    mixed-radix digits of the pool modulo the span (a small number, so cheap divisions).
    """
    raw = key.encode()
    if span:
        digest = blake2b(raw + b"\0\0\0\0").digest()  # counter 0, as below
        pool = (int.from_bytes(digest, "little") | _POOL_TOP) % span
        out = []
        for m in moduli:
            pool, x = divmod(pool, m)
            out.append(x)
        return out
    counter = 0
    pool = 1
    out = []
    for m in moduli:
        if pool < _POOL_MIN:
            digest = blake2b(raw + counter.to_bytes(4, "little")).digest()
            counter += 1
            pool = int.from_bytes(digest, "little") | _POOL_TOP
        pool, x = divmod(pool, m)
        out.append(x)
    return out


def surface(
    pid: str, seed: int | None, people: int, cast: str = "random"
) -> tuple[list[str], int, list[int]]:
    """Names, a role-pair draw and speech templates of one puzzle, from its own stream.

    Keyed by (seed, id), so a perturbation can re-render the same puzzle changing one thing.
    With ``cast="fixed"`` the names are the pool's first ``people`` names, in order.
    """
    known = _MODULI.get((people, cast))
    if known is None:
        shuffle = [len(NAMES) - i for i in range(people)] if cast != "fixed" else []
        moduli = [*shuffle, len(ROLE_PAIRS)] + [len(SPEECH_TEMPLATES)] * people
        known = _MODULI[people, cast] = (moduli, _one_digest_span(moduli))
    draws = _hash_draws(f"{seed}:{pid}", *known)
    if cast == "fixed":
        return list(NAMES[:people]), draws[0], draws[1:]
    names = list(NAMES)
    for i in range(people):
        j = i + draws[i]
        names[i], names[j] = names[j], names[i]
    return names[:people], draws[people], draws[people + 1 :]


def build_record(
    statements: Sequence[Statement],
    solution: Sequence[bool],
    names: Sequence[str],
    roles: dict[str, str],
    templates: Sequence[int],
    *,
    depth: int,
    width: int,
    seed: int | None,
    order: Sequence[int] | None = None,
    pid: str | None = None,
    metas: Sequence[_Meta] | None = None,
) -> dict[str, Any]:
    """A full record (interop fields first, in mem-kk-logic's order, then ours)."""
    solution = [bool(x) for x in solution]
    names = list(names)
    if metas is None:
        metas = [_meta(i, s, len(statements)) for i, s in enumerate(statements)]
    texts = fill_claims([m.pattern for m in metas], names, roles)
    steps = trace_steps(statements, claims=[m.claim for m in metas])
    sol_text, sol_format = solution_texts(names, solution, roles)
    return {
        "quiz": render_quiz(statements, names, roles, templates, order, texts),
        "names": names,
        "knight_knave": dict(roles),
        "solution": solution,
        "solution_text": sol_text,
        "solution_text_format": sol_format,
        "statements": "("
        + ", ".join([m.text for m in metas])
        + ("," if len(metas) == 1 else "")
        + ")",
        "id": pid or puzzle_id(statements),
        "people": len(statements),
        "depth": depth,
        "width": width,
        "seed": seed,
        "cot": render_trace(statements, names, roles, steps, texts, sol_text),
    }


@collector_paused
def _generate(
    people: int | Sequence[int] | Mapping[int, float],
    n: int,
    *,
    rng: random.Random,
    seed: int,
    depth: int,
    width: int,
    role_words_spec: str,
    op_weights: Mapping[str, float] | None,
    exclude_ids: Collection[str],
    progress: Callable[[int], None] | None,
    reserved: str = "any",
    cast: str = "random",
) -> list[dict[str, Any]]:
    check_mode(reserved)
    if cast not in CASTS:
        raise GenerationError(f"cast must be one of {', '.join(CASTS)}, got {cast!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise GenerationError(f"n must be a positive integer, got {n!r}")
    weights = check_knobs(depth, width, op_weights)
    counts, cum = _people_chooser(people)
    if role_words_spec == RANDOM_ROLE_WORDS:
        role_choices = [role_words(k) for k in ROLE_PAIRS]
    else:
        try:
            role_choices = [role_words(role_words_spec)]
        except ValueError as exc:
            raise GenerationError(str(exc)) from None
    samplers = {c: _Sampler(c, depth, width, weights, rng) for c in counts}
    seen = set(exclude_ids)
    rnd = rng.random
    out: list[dict[str, Any]] = []
    stall = 0
    while len(out) < n:
        if cum is None:
            c = counts[0] if len(counts) == 1 else counts[int(rnd() * len(counts))]
        else:
            r = rnd()
            c = next(k for k, edge in zip(counts, cum, strict=True) if r < edge)
        got = samplers[c].puzzle()
        if got is None:
            stall += 1
            if stall > STALL_LIMIT:
                _stalled(people, n, len(out), depth, width, reserved)
            continue
        stmts, bits, metas = got
        pid = _hash_key("(" + ", ".join([m.canon for m in metas]) + ")")
        if pid in seen or (
            reserved != "any" and is_reserved_id(pid, stmts) != (reserved == "only")
        ):
            seen.add(pid)
            stall += 1
            if stall > STALL_LIMIT:
                _stalled(people, n, len(out), depth, width, reserved)
            continue
        stall = 0
        seen.add(pid)
        names, role_i, templates = surface(pid, seed, c, cast)
        roles = role_choices[role_i % len(role_choices)]
        solution = [bits >> i & 1 == 1 for i in range(c)]
        out.append(
            build_record(
                stmts,
                solution,
                names,
                roles,
                templates,
                depth=depth,
                width=width,
                seed=seed,
                pid=pid,
                metas=metas,
            )
        )
        if progress is not None and (len(out) % 256 == 0 or len(out) == n):
            progress(len(out))
    return out


def _stalled(people: Any, n: int, made: int, depth: int, width: int, reserved: str) -> None:
    if reserved == "only":
        err = GenerationError(
            f"the reserved evaluation slice holds only {made} puzzles for people={people} at "
            f"depth={depth}, width={width} ({STALL_LIMIT} draws in a row gave nothing new); "
            f"ask for at most {made}, or more people/depth/width"
        )
        err.made = made  # type: ignore[attr-defined]
        raise err
    if reserved == "exclude":
        raise GenerationError(
            f"only {made} of {n} distinct unique-solution puzzles outside the reserved "
            f"evaluation slice found for people={people}, depth={depth}, width={width} "
            f"({STALL_LIMIT} samples in a row gave nothing new); ask for fewer puzzles or "
            "more people/depth/width"
        )
    err = GenerationError(
        f"only {made} of {n} distinct unique-solution puzzles found for people={people}, "
        f"depth={depth}, width={width} ({STALL_LIMIT} samples in a row gave nothing new); "
        "ask for fewer puzzles or more people/depth/width"
    )
    err.made = made  # type: ignore[attr-defined]
    raise err


def generate(
    people: int | Sequence[int] | Mapping[int, float],
    n: int,
    *,
    seed: int = 0,
    depth: int = 2,
    width: int = 2,
    role_words: str = "knight/knave",
    op_weights: Mapping[str, float] | None = None,
    exclude_ids: Collection[str] = (),
    progress: Callable[[int], None] | None = None,
    reserved: str = "any",
    cast: str = "random",
) -> list[dict[str, Any]]:
    """``n`` distinct puzzles, each with exactly one solution, deterministic in the arguments.

    ``people``: a count, a sequence of counts (uniform mix) or a mapping count -> weight.
    ``depth``: levels of each claim counting leaves (2 = one operator over leaves).
    ``width``: most operands of an 'and'/'or'. ``role_words``: a pair such as
    ``"saint/sinner"``, or ``"random"`` for a random known pair per puzzle.
    ``op_weights``: relative weights of ``leaf, not, and, or, ->, <=>`` (default equal).
    ``exclude_ids``: ids that must not be produced (to keep a held-out set disjoint).
    ``progress``: called with the number of puzzles made so far.
    ``reserved``: ``"any"`` puzzle, only puzzles outside the reserved evaluation slice
    (``"exclude"``, for training data) or only inside it (``"only"``, for held-out sets);
    see ``kk_puzzles.reserved``. ``cast``: ``"random"`` names per puzzle or ``"fixed"``
    (the pool's first names, in order).
    """
    return _generate(
        people,
        n,
        rng=random.Random(seed),
        seed=seed,
        depth=depth,
        width=width,
        role_words_spec=role_words,
        op_weights=op_weights,
        exclude_ids=exclude_ids,
        progress=progress,
        reserved=reserved,
        cast=cast,
    )


def split(
    people: int | Sequence[int] | Mapping[int, float],
    n_train: int,
    n_test: int,
    *,
    seed: int = 0,
    exclude_ids: Collection[str] = (),
    **kwargs: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Disjoint (train, test) sets: test is ``generate(people, n_test, seed=seed,
    reserved="only", ...)`` (the reserved evaluation slice), train is drawn from a separate
    stream outside the slice (so no permuted or renamed copy of a test puzzle either).

    The test set therefore does not depend on ``n_train``. ``progress`` (if given) is
    called with the number made so far, test first, then train.

    >>> train, test = split(3, 20, 5, seed=3)
    >>> len(train), len(test), bool({r["id"] for r in train} & {r["id"] for r in test})
    (20, 5, False)
    """
    progress = kwargs.pop("progress", None)  # counts test then train puzzles
    test = generate(
        people, n_test, seed=seed, exclude_ids=exclude_ids, progress=progress, reserved="only",
        **kwargs,
    )  # fmt: skip
    taken = set(exclude_ids) | {r["id"] for r in test}
    train = _generate(
        people,
        n_train,
        rng=random.Random(f"kk-train-stream:{seed}"),
        seed=seed,
        depth=kwargs.get("depth", 2),
        width=kwargs.get("width", 2),
        role_words_spec=kwargs.get("role_words", "knight/knave"),
        op_weights=kwargs.get("op_weights"),
        exclude_ids=taken,
        progress=None if progress is None else (lambda k: progress(n_test + k)),
        reserved="exclude",
        cast=kwargs.get("cast", "random"),
    )
    return train, test


def heldout_puzzles(
    people: int, n: int, *, allow_fewer: bool = False, **kwargs: Any
) -> list[dict[str, Any]]:
    """``n`` held-out puzzles of ``people`` people, all from the reserved slice.

    ``kwargs`` go to ``kk_puzzles.generate`` (seed, depth, width, role_words, cast). When the
    slice holds fewer than ``n`` such puzzles, GenerationError names the maximum, or with
    ``allow_fewer`` all of them are returned (a seeded stream: ``generate(c, m)`` is a
    prefix of ``generate(c, m + k)``).

    >>> from kk_puzzles import parse_statements
    >>> from kk_puzzles.reserved import is_reserved
    >>> recs = heldout_puzzles(3, 5, seed=1)
    >>> len(recs), all(is_reserved(parse_statements(r["statements"])) for r in recs)
    (5, True)
    """
    try:
        return generate(people, n, reserved="only", **kwargs)
    except GenerationError as err:
        made = getattr(err, "made", None)
        if not allow_fewer or not made:
            raise
        return generate(people, made, reserved="only", **kwargs)


def slice_size(people: int, samples: int = 4000, **kwargs: Any) -> dict[str, Any]:
    """How much of the ``people``-person puzzle space the slice reserves.

    Draws up to ``samples`` distinct puzzles (every one when the space is smaller: then the
    counts are exact) and counts the reserved ones and the distinct structures.
    """
    try:
        recs = generate(people, samples, **kwargs)
        exact = False
    except GenerationError as err:
        made = getattr(err, "made", 0)
        recs = generate(people, made, **kwargs) if made else []
        exact = True
    keys = [structure_key(parse_statements(r["statements"])) for r in recs]
    reserved = sum(key_bucket(k) < RESERVED_PER_MILLE for k in keys)
    return {
        "people": people,
        "puzzles": len(recs),
        "structures": len(set(keys)),
        "reserved": reserved,
        "share": reserved / len(recs) if recs else 0.0,
        "exact": exact,
    }
