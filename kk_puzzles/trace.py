"""A readable, deterministic step-by-step solution trace (the ``cot`` field).

The search assumes a role for someone, lets each claim force what it can, and backs up
on a contradiction:

- *forced*: a person can hold only one role, because in the other role their claim could
  not be what that role requires, given the roles fixed so far;
- *contradiction*: a fixed person's claim can no longer match their role, or some person
  can hold neither role;
- *backtrack*: both roles of an assumed person failed, so an earlier assumption is wrong.

Each check looks at one claim and only at the people it mentions (a small truth table per
claim), so a reader can verify every step by hand.

>>> stmts = (('lying', 1), ('and', ('telling-truth', 0), ('telling-truth', 1)))
>>> roles = {"knight": "knight", "knave": "knave", "a_knight": "a knight", "a_knave": "a knave",
...          "Knight": "Knight", "Knave": "Knave"}
>>> print(render_trace(stmts, ["Ann", "Bo"], roles, trace_steps(stmts)))
Let's reason step by step: assume a role for someone, follow what each claim forces, and back up when we reach a contradiction.
Assume Ann is a knight.
Ann is a knight, so the claim "Bo is a knave" is true; hence Bo is a knave.
Every claim is now consistent with its speaker's role.
Conclusion: Ann is a knight, and Bo is a knave.
"""

from __future__ import annotations

from collections.abc import Sequence

from .grammar import LEAF_OPS, Statement, mentioned
from .render import render_claim, solution_text
from .solver import MAX_PEOPLE, knight_masks, statement_mask

TYPE_CHECKING = False  # typing's, without importing typing (2 ms of every kk-gen run)
if TYPE_CHECKING:
    from typing import Any

Step = tuple  # ('forced', person, role) ('assume', person, role) ('reject', person, role)
# ('implied', ((person, role), ...), speaker, speaker_role) ('implied_any', (...), speaker)
# ('claim', person, role) ('neither', person) ('backtrack', person) ('done', assignment)

HEADER = (
    "Let's reason step by step: assume a role for someone, follow what each claim forces, "
    "and back up when we reach a contradiction."
)


def _remap(stmt: Statement, local: dict[int, int]) -> Statement:
    if stmt[0] in LEAF_OPS:
        return (stmt[0], local[stmt[1]])
    return (stmt[0], *(_remap(s, local) for s in stmt[1:]))


# The search state is one int: bit p says person p's role is fixed, bit VALUE + p that it
# is knight. A claim then reads its own people's part of the state with a single AND.
VALUE = MAX_PEOPLE
KNOWN = (1 << VALUE) - 1
_MISS = object()


class Claim:
    """One speaker's consistency condition as a truth table over an assignment space.

    The space is either the 2^k assignments of the k people the claim involves
    (:func:`claim_for`) or all 2^n of a small puzzle (:func:`claim_from_mask`). Either way,
    fixing person p's role keeps the assignments in p's knight (or knave) mask, and a
    person is forced when the assignments left all give them one role: the claim only
    constrains its own people, so both spaces give the same answers.
    """

    __slots__ = ("keymask", "kmask", "memo", "speaker", "table", "vars")

    def __init__(
        self, speaker: int, people: Sequence[int], masks: Sequence[int], table: int, full: int
    ) -> None:
        """``people`` in increasing order, ``masks[i]`` where ``people[i]`` is a knight in
        the space, ``table`` where the claim matches its speaker's role, ``full`` all of it."""
        self.table = table
        self.speaker = speaker
        self.kmask = masks[people.index(speaker)]
        self.vars = [(p, m, full ^ m) for p, m in zip(people, masks, strict=True)]
        bits = 0
        for p in people:
            bits |= 1 << p
        self.keymask = bits | bits << VALUE
        self.memo: dict[int, Any] = {}

    def check(self, state: int) -> Any:
        """What this claim says given the fixed roles (only its own people's bits matter).

        None: nothing new; a 1-tuple (step,): contradiction; else (steps, state bits to
        add). Memoised: the same claim meets the same situations very often.
        """
        hit = self.memo.get(state & self.keymask, _MISS)
        return self.answer(state) if hit is _MISS else hit

    def answer(self, state: int) -> Any:
        """:meth:`check` without looking in the memo first (the caller just did)."""
        known, value = state & KNOWN, state >> VALUE
        j = self.speaker
        allowed = self.table
        free = []  # (person, knight mask, knave mask) of this claim's people not fixed yet
        for var in self.vars:
            p = var[0]
            if known >> p & 1:
                allowed &= var[1] if value >> p & 1 else var[2]
            else:
                free.append(var)
        if not allowed:
            res: Any = (("claim", j, value >> j & 1 == 1),) if known >> j & 1 else (("neither", j),)
        else:
            forced = [
                (p, not allowed & kv) for p, kn, kv in free if not (allowed & kn and allowed & kv)
            ]
            res = self._explain(forced, allowed, known, value) if forced else None
        if len(self.memo) < 4096:
            self.memo[state & self.keymask] = res
        return res

    def _explain(
        self, forced: list[tuple[int, bool]], allowed: int, known: int, value: int
    ) -> tuple[tuple[Step, ...], int]:
        """The steps that say why these people are forced, and their state bits."""
        j = self.speaker
        steps: list[Step] = []
        others = tuple([f for f in forced if f[0] != j])
        if len(others) < len(forced):
            steps.append(("forced", j, bool(allowed & self.kmask)))
        if others:
            if known >> j & 1:
                steps.append(("implied", others, j, value >> j & 1 == 1))
            elif len(others) == len(forced):
                steps.append(("implied_any", others, j))
            else:  # the speaker's role was just forced above
                steps.append(("implied", others, j, bool(allowed & self.kmask)))
        add = 0
        for p, role in forced:
            add |= 1 << p | role << (VALUE + p)
        return tuple(steps), add


_CLAIMS: dict[tuple[int, Statement], Claim] = {}
_SHARED: dict[tuple[int, int, int, tuple[int, ...]], Claim] = {}


def _shared(speaker: int, people: list[int], masks: Sequence[int], table: int, full: int) -> Claim:
    """Claims alike in speaker, people and truth table answer every check alike (whatever
    their wording): one object for them all, so they share one memo."""
    key = (speaker, table, full, tuple(people))
    c = _SHARED.get(key)
    if c is None:
        if len(_SHARED) > 200_000:  # bound memory on long mixed runs
            _SHARED.clear()
        c = _SHARED[key] = Claim(speaker, people, masks, table, full)
    return c


def claim_for(speaker: int, stmt: Statement, cache: bool = True) -> Claim:
    """The claim over the space of the people it involves (any puzzle size); ``cache``
    False for claims unlikely to recur (large puzzles), which would only cost memory."""
    key = (speaker, stmt)
    c = _CLAIMS.get(key) if cache else None
    if c is None:
        people = sorted({speaker, *mentioned(stmt)})
        local = {p: i for i, p in enumerate(people)}
        knights, full = knight_masks(len(people))
        truth = statement_mask(_remap(stmt, local), knights, full)
        table = full ^ knights[local[speaker]] ^ truth
        if not cache:
            return Claim(speaker, people, knights, table, full)
        if len(_CLAIMS) > 200_000:
            _CLAIMS.clear()
        c = _CLAIMS[key] = _shared(speaker, people, knights, table, full)
    return c


def claim_from_mask(speaker: int, stmt: Statement, consistent: int, people: int) -> Claim:
    """The claim over all 2^people assignments, from the mask of those where it matches its
    speaker's role (``full ^ knight_i ^ truth``: the generator has it, nothing is
    re-evaluated). Only for small puzzles: the masks have 2^people bits."""
    involved = sorted({speaker, *mentioned(stmt)})
    knights, full = knight_masks(people)
    return _shared(speaker, involved, [knights[p] for p in involved], consistent, full)


class _Search:
    """One trace search: the claims, the claims that mention each person, the steps so far.

    Methods rather than closures: a recursive closure is a reference cycle, which only the
    garbage collector frees (and the generator runs with it paused).
    """

    __slots__ = ("all_known", "claims", "max_steps", "steps", "touch")

    def __init__(self, claims: Sequence[Claim], max_steps: int) -> None:
        n = len(claims)
        self.claims, self.max_steps = claims, max_steps
        self.all_known = (1 << n) - 1
        self.steps: list[Step] = []
        self.touch = touch = [0] * n  # a speaker mentions themself
        for j, c in enumerate(claims):
            for p, _, _ in c.vars:
                touch[p] |= 1 << j

    def propagate(self, state: int, dirty: int) -> int | None:
        """Let the claims force what they can: the new state, or None on a contradiction.

        Re-checks only claims about people fixed since their last check, lowest index first.
        """
        claims, steps, touch = self.claims, self.steps, self.touch
        while dirty:
            low = dirty & -dirty
            dirty ^= low
            c = claims[low.bit_length() - 1]
            res = c.memo.get(state & c.keymask, _MISS)  # check(), its memo hit inlined
            if res is _MISS:
                res = c.answer(state)
            if res is None:
                continue
            if len(res) == 1:
                steps.append(res[0])
                return None
            steps.extend(res[0])
            add = res[1]
            state |= add
            add &= KNOWN
            checked = low
            while add:
                low = add & -add
                add ^= low
                dirty |= touch[low.bit_length() - 1]
            # Not the claim that forced them: every assignment it still allows agrees with
            # the roles it forced, so checked again now it would find nothing new.
            dirty &= ~checked
        return state

    def dfs(self, state: int, dirty: int) -> int | None:
        """The knight bits of the first consistent assignment below ``state``, or None."""
        steps = self.steps
        if len(steps) > self.max_steps:
            raise RuntimeError(f"trace longer than {self.max_steps} steps")
        res = self.propagate(state, dirty)
        if res is None:
            return None
        state = res
        known = state & KNOWN
        if known == self.all_known:
            return state >> VALUE
        j = (~known & (known + 1)).bit_length() - 1  # lowest unassigned person
        touched = self.touch[j]
        steps.append(("assume", j, True))
        out = self.dfs(state | 1 << j | 1 << (VALUE + j), touched)
        if out is not None:
            return out
        steps.append(("reject", j, True))
        out = self.dfs(state | 1 << j, touched)
        if out is not None:
            return out
        steps.append(("backtrack", j))
        return None


def trace_steps(
    statements: Sequence[Statement],
    max_steps: int = 100_000,
    claims: Sequence[Claim] | None = None,
) -> list[Step]:
    """The structured trace: a list of steps ending in ('done', assignment)."""
    n = len(statements)
    if claims is None:
        claims = [claim_for(i, s) for i, s in enumerate(statements)]
    search = _Search(claims, max_steps)
    found = search.dfs(0, search.all_known)
    steps = search.steps
    if found is None:
        steps.append(("fail",))
    else:
        steps.append(("done", tuple([found >> i & 1 == 1 for i in range(n)])))
    return steps


def _forced_list(forced: Sequence[tuple[int, bool]], names: Sequence[str], roles: dict) -> str:
    parts = [f"{names[p]} is {roles['a_knight'] if r else roles['a_knave']}" for p, r in forced]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def render_trace(
    statements: Sequence[Statement],
    names: Sequence[str],
    roles: dict[str, str],
    steps: Sequence[Step],
    claim_texts: Sequence[str] | None = None,
    conclusion: str | None = None,
) -> str:
    """The trace as English lines (header, one line per step, conclusion).

    ``claim_texts`` may hold the already rendered claims of all speakers.
    """
    a_kn, a_kv = roles["a_knight"], roles["a_knave"]
    if claim_texts is None:
        claim_texts = [render_claim(s, names, roles) for s in statements]

    lines = [HEADER]
    for st in steps:
        kind = st[0]
        if kind == "forced":
            p, role = st[1], st[2]
            other, need = (a_kv, "false") if role else (a_kn, "true")
            lines.append(
                f"{names[p]} must be {a_kn if role else a_kv}: if {names[p]} were {other}, "
                f'the claim "{claim_texts[p]}" would have to be {need}, and it cannot be.'
            )
        elif kind == "implied":
            j, jrole = st[2], st[3]
            lines.append(
                f'{names[j]} is {a_kn if jrole else a_kv}, so the claim "{claim_texts[j]}" is '
                f"{'true' if jrole else 'false'}; hence {_forced_list(st[1], names, roles)}."
            )
        elif kind == "implied_any":
            j = st[2]
            lines.append(
                f'Whatever {names[j]} is, {names[j]}\'s claim "{claim_texts[j]}" requires that '
                f"{_forced_list(st[1], names, roles)}."
            )
        elif kind == "assume":
            lines.append(f"Assume {names[st[1]]} is {a_kn if st[2] else a_kv}.")
        elif kind == "reject":
            p = st[1]
            lines.append(
                f"So {names[p]} cannot be {a_kn if st[2] else a_kv}; "
                f"{names[p]} must be {a_kv if st[2] else a_kn}."
            )
        elif kind == "claim":
            p, role = st[1], st[2]
            lines.append(
                f'Contradiction: {names[p]}\'s claim "{claim_texts[p]}" cannot be '
                f"{'true' if role else 'false'} now, yet {names[p]} is {a_kn if role else a_kv}."
            )
        elif kind == "neither":
            p = st[1]
            lines.append(f"Contradiction: {names[p]} can be neither {a_kn} nor {a_kv} now.")
        elif kind == "backtrack":
            lines.append(
                f"Both roles for {names[st[1]]} fail, so an earlier assumption is wrong; "
                "we go back."
            )
        elif kind == "done":
            lines.append("Every claim is now consistent with its speaker's role.")
            lines.append("Conclusion: " + (conclusion or solution_text(names, st[1], roles)))
        else:
            lines.append("No assignment of roles is consistent with all the claims.")
    return "\n".join(lines)
