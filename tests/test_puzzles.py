"""kk_puzzles core: grammar, solver, generator, traces, prompts.

Every generated puzzle is re-solved here by a naive evaluator written independently of the
package (recursive evaluation over itertools.product).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kk_puzzles
from kk_puzzles import (
    MAX_PEOPLE,
    NAMES,
    GenerationError,
    StatementError,
    count_solutions,
    generate,
    parse_statements,
    puzzle_id,
    solve,
    split,
)
from kk_puzzles.io import dumps_jsonl
from kk_puzzles.prompts import SYSTEM_PROMPT, base_prompt, chat_messages

# ---------------------------------------------------------------- naive reference solver


def naive_truth(stmt, world):
    op = stmt[0]
    if op == "telling-truth":
        return world[stmt[1]]
    if op == "lying":
        return not world[stmt[1]]
    if op == "not":
        return not naive_truth(stmt[1], world)
    if op == "and":
        return all(naive_truth(s, world) for s in stmt[1:])
    if op == "or":
        return any(naive_truth(s, world) for s in stmt[1:])
    if op == "->":
        return (not naive_truth(stmt[1], world)) or naive_truth(stmt[2], world)
    if op == "<=>":
        return naive_truth(stmt[1], world) == naive_truth(stmt[2], world)
    raise AssertionError(op)


def naive_solutions(statements):
    """All worlds where each knight's claim is true and each knave's false."""
    n = len(statements)
    return [
        world
        for world in itertools.product([True, False], repeat=n)
        if all(naive_truth(s, world) == world[i] for i, s in enumerate(statements))
    ]


def check_record(rec):
    stmts = parse_statements(rec["statements"])
    n = rec["people"]
    assert len(stmts) == n == len(rec["names"]) == len(rec["solution"])
    assert naive_solutions(stmts) == [tuple(rec["solution"])]
    assert len(set(rec["names"])) == n
    roles = rec["knight_knave"]
    lines = rec["solution_text_format"].split("\n")
    assert len(lines) == n
    for i, (name, knight) in enumerate(zip(rec["names"], rec["solution"], strict=True)):
        role = roles["a_knight"] if knight else roles["a_knave"]
        assert lines[i] == f"({i + 1}) {name} is {role}"
        assert f"{name} is {role}" in rec["solution_text"]
        assert name in rec["quiz"]
    assert rec["id"] == puzzle_id(stmts)
    assert rec["statements"] == repr(stmts)
    assert rec["cot"].rstrip().endswith(rec["solution_text"])


# ---------------------------------------------------------------- grammar and solver

EXAMPLE = (("lying", 1), ("and", ("telling-truth", 0), ("telling-truth", 1)))


def test_solver_hand_example():
    # B says "A and B are knights": B a knight would make it true only if A is a knight,
    # but A says B is a knave. Worked by hand: A knight, B knave is the only world.
    assert solve(EXAMPLE) == [(True, False)]
    assert count_solutions(EXAMPLE) == 1
    # Both accuse each other of lying: exactly the two mixed worlds, knight-first order.
    mutual = (("lying", 1), ("lying", 0))
    assert solve(mutual) == [(True, False), (False, True)]
    # "I am a knight" twice: all four worlds.
    assert count_solutions((("telling-truth", 0), ("telling-truth", 1))) == 4


def test_parse_statements_round_trip_and_safety():
    text = repr(EXAMPLE)
    assert parse_statements(text) == EXAMPLE
    assert parse_statements(text.replace("'", '"')) == EXAMPLE
    for bad in [
        "__import__('os').system('true')",
        "(('lying', 1),",
        "(('lying', 5), ('lying', 0))",
        "(('xor', ('lying', 1), ('lying', 0)), ('lying', 0))",
        "(('not', ('lying', 1), ('lying', 0)), ('lying', 0))",
        "(('->', ('lying', 1)), ('lying', 0))",
        "(('and', ('lying', 1)), ('lying', 0))",
        "(('lying', 1) ('lying', 0))",
        "",
        "[1, 2]",
    ]:
        with pytest.raises(StatementError):
            parse_statements(bad)


leaf = st.builds(
    lambda op, i: (op, i), st.sampled_from(["telling-truth", "lying"]), st.integers(0, 5)
)


def _extend(children):
    return st.one_of(
        st.builds(lambda s: ("not", s), children),
        st.builds(lambda op, xs: (op, *xs), st.sampled_from(["and", "or"]), st.lists(children, min_size=2, max_size=3)),
        st.builds(lambda op, a, b: (op, a, b), st.sampled_from(["->", "<=>"]), children, children),
    )  # fmt: skip


statement = st.recursive(leaf, _extend, max_leaves=6)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6).flatmap(lambda n: st.lists(statement, min_size=n, max_size=n)))
def test_bitmask_solver_matches_naive(stmts):
    n = len(stmts)
    stmts = tuple(_clip(s, n) for s in stmts)
    expected = naive_solutions(stmts)
    assert solve(stmts) == expected
    assert count_solutions(stmts) == len(expected)
    assert parse_statements(repr(stmts)) == stmts


def _clip(stmt, n):
    if stmt[0] in ("telling-truth", "lying"):
        return (stmt[0], stmt[1] % n)
    return (stmt[0], *(_clip(s, n) for s in stmt[1:]))


def test_solver_large_people():
    # Person i says "person i+1 is a knight"; the last one says "person 0 is a knave"
    # -> a chain that flips: no world; then a "knight iff" ring with one anchor.
    n = 16
    chain = (*(("telling-truth", (i + 1) % n) for i in range(n - 1)), ("lying", 0))
    assert count_solutions(chain) == 0
    anchor = (
        ("or", ("telling-truth", 0), ("lying", 0)),
        *(("telling-truth", i - 1) for i in range(1, n)),
    )
    assert solve(anchor) == [(True,) * n]


# ---------------------------------------------------------------- generator


@pytest.mark.parametrize("people", [2, 3, 4, 5, 6, 7, 8])
def test_generated_puzzles_resolved_naively(people):
    recs = generate(people, 40, seed=people)
    assert len(recs) == 40
    for rec in recs:
        check_record(rec)
        assert rec["depth"] == 2 and rec["width"] == 2 and rec["seed"] == people
    assert len({r["id"] for r in recs}) == 40


def test_large_puzzles_resolved_naively():
    for people, n in [(12, 3), (16, 1)]:
        for rec in generate(people, n, seed=1):
            check_record(rec)


def test_max_people_supported():
    rec = generate(MAX_PEOPLE, 1, seed=0)[0]
    stmts = parse_statements(rec["statements"])
    assert solve(stmts) == [tuple(rec["solution"])]


def test_record_fields_and_order():
    rec = generate(3, 1)[0]
    assert list(rec) == [
        "quiz", "names", "knight_knave", "solution", "solution_text",
        "solution_text_format", "statements", "id", "people", "depth", "width", "seed", "cot",
    ]  # fmt: skip
    assert list(rec["knight_knave"]) == [
        "knight",
        "knave",
        "a_knight",
        "a_knave",
        "Knight",
        "Knave",
    ]
    assert rec["knight_knave"]["a_knight"] == "a knight"
    assert all(isinstance(x, bool) for x in rec["solution"])
    assert set(rec["names"]) <= set(NAMES)


def test_deterministic_and_seed_sensitive():
    assert generate(5, 30, seed=11) == generate(5, 30, seed=11)
    assert generate(5, 30, seed=11) != generate(5, 30, seed=12)


def test_byte_identical_across_processes(tmp_path):
    code = (
        "import sys; from kk_puzzles import generate; from kk_puzzles.io import dumps_jsonl;"
        "sys.stdout.write(dumps_jsonl(generate({3: 1, 6: 2}, 60, seed=5, role_words='random')))"
    )
    outs = []
    for hashseed in ("1", "987"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        outs.append(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, check=True
            ).stdout
        )
    assert outs[0] == outs[1]
    here = dumps_jsonl(generate({3: 1, 6: 2}, 60, seed=5, role_words="random")).encode()
    assert outs[0] == here


def test_no_duplicates_canonical():
    recs = generate(3, 1500, seed=2)
    assert len({r["id"] for r in recs}) == 1500
    # same canonical form (commutative operands sorted) never appears twice
    from kk_puzzles.grammar import canonical

    forms = {tuple(canonical(s) for s in parse_statements(r["statements"])) for r in recs}
    assert len(forms) == 1500


def test_exclude_ids_and_split_disjoint():
    first = generate(4, 100, seed=0)
    ids = {r["id"] for r in first}
    second = generate(4, 100, seed=0, exclude_ids=ids)
    assert not ids & {r["id"] for r in second}
    train, test = split(4, 150, 50, seed=9)
    assert len(train) == 150 and len(test) == 50
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    _, test_again = split(4, 10, 50, seed=9)
    assert test_again == test  # the held-out set does not depend on the train size


def test_people_mix():
    recs = generate({3: 3.0, 6: 1.0}, 200, seed=4)
    counts = Counter(r["people"] for r in recs)
    assert set(counts) == {3, 6}
    assert counts[3] > counts[6]
    recs = generate([2, 4], 100, seed=4)
    assert {r["people"] for r in recs} == {2, 4}


def test_role_words():
    rec = generate(3, 1, role_words="saint/sinner")[0]
    assert rec["knight_knave"]["a_knight"] == "a saint"
    assert "Saints always tell the truth" in rec["quiz"]
    assert "knight" not in rec["quiz"] and "knight" not in rec["cot"]
    rec = generate(3, 1, role_words="truth-teller/liar")[0]
    assert rec["knight_knave"]["a_knave"] == "a liar"
    pairs = {r["knight_knave"]["knight"] for r in generate(3, 80, role_words="random")}
    assert len(pairs) >= 4


def test_operator_weights_depth_width():
    recs = generate(4, 60, op_weights={"leaf": 0, "not": 0, "or": 0, "->": 0, "<=>": 0})
    for r in recs:
        for s in parse_statements(r["statements"]):
            assert s[0] == "and"
    deep = generate(4, 60, depth=3, width=3, seed=3)
    for r in deep:
        check_record(r)
    from kk_puzzles.grammar import depth_of, width_of

    stmts = [parse_statements(r["statements"]) for r in deep]
    assert max(depth_of(s) for ss in stmts for s in ss) == 3
    assert max(width_of(ss) for ss in stmts) == 3


def test_names_pool():
    assert len(NAMES) >= 100 and len(set(NAMES)) == len(NAMES)
    for a in NAMES:
        assert a.isalpha() and a[0].isupper()
        for b in NAMES:
            assert a == b or not b.startswith(a)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"people": 1, "n": 5},
        {"people": MAX_PEOPLE + 1, "n": 5},
        {"people": 3, "n": 0},
        {"people": 3, "n": 5, "depth": 1},
        {"people": 3, "n": 5, "width": 1},
        {"people": 3, "n": 5, "op_weights": {"xor": 1.0}},
        {"people": 3, "n": 5, "op_weights": {"and": 0, "or": 0, "->": 0, "<=>": 0}},
        {"people": 2, "n": 5000},
        {"people": 3, "n": 5, "role_words": "Knight/knave"},
        {"people": 3, "n": 5, "role_words": "knight"},
    ],
)
def test_generation_errors(kwargs):
    people, n = kwargs.pop("people"), kwargs.pop("n")
    with pytest.raises(GenerationError):
        generate(people, n, **kwargs)


def test_progress_callback():
    seen = []
    generate(3, 600, progress=seen.append)
    assert seen == [256, 512, 600]
    seen.clear()
    split(3, 300, 100, progress=seen.append)
    assert seen == [100, 356, 400]  # test first, then train, counted together


# ---------------------------------------------------------------- trace


def test_trace_reaches_solution_and_is_deterministic():
    from kk_puzzles import trace_steps

    for people in (3, 5, 8):
        for rec in generate(people, 30, seed=21):
            steps = trace_steps(parse_statements(rec["statements"]))
            assert steps[-1] == ("done", tuple(rec["solution"]))
            kinds = {s[0] for s in steps}
            assert kinds <= {"forced", "implied", "implied_any", "assume", "reject", "claim",
                             "neither", "backtrack", "done"}  # fmt: skip
    rec = generate(6, 1, seed=3)[0]
    assert generate(6, 1, seed=3)[0]["cot"] == rec["cot"]


def test_trace_backtracks_on_contradiction():
    # Ann: "Bo is a knight and Cy is a knave"; Bo: "Ann is not a knight";
    # Cy: "Ann is a knight or Bo is a knight". Worked by hand: Ann a knight makes Bo a
    # knight and Cy a knave, but then knight Bo's claim is false: contradiction. So Ann is
    # a knave; Bo's claim is then true, so Bo is a knight; Ann's claim is false with Bo a
    # knight, so Cy is a knight (and Cy's claim holds).
    from kk_puzzles import render_trace, role_words, trace_steps

    stmts = (
        ("and", ("telling-truth", 1), ("lying", 2)),
        ("not", ("telling-truth", 0)),
        ("or", ("telling-truth", 0), ("telling-truth", 1)),
    )
    assert naive_solutions(stmts) == [(False, True, True)]
    steps = trace_steps(stmts)
    assert steps == [
        ("assume", 0, True),
        ("implied", ((1, True), (2, False)), 0, True),
        ("claim", 1, True),
        ("reject", 0, True),
        ("forced", 1, True),
        ("implied", ((2, True),), 0, False),
        ("done", (False, True, True)),
    ]
    lines = render_trace(stmts, ["Ann", "Bo", "Cy"], role_words(), steps).splitlines()
    assert lines[1] == "Assume Ann is a knight."
    assert lines[3].startswith("Contradiction: Bo's claim")
    assert lines[4] == "So Ann cannot be a knight; Ann must be a knave."
    assert lines[-1] == "Conclusion: Ann is a knave, Bo is a knight, and Cy is a knight."


def test_hash_draws_one_digest_shortcut_is_exact():
    # The names/templates stream: with one digest enough for every draw, the draws are
    # taken as digits of the pool modulo the moduli's product; they must equal the
    # draw-by-draw divisions (and a span too large for one digest is refused).
    import random

    from kk_puzzles.generator import _hash_draws, _one_digest_span

    rng = random.Random(1)
    used = 0
    for t in range(2000):
        moduli = [rng.randint(1, 200) for _ in range(rng.randint(1, 80))]
        span = _one_digest_span(moduli)
        if span:
            used += 1
            key = f"{t}:{rng.random()}"
            assert _hash_draws(key, moduli, span) == _hash_draws(key, moduli)
    assert 0 < used < 2000
    assert _one_digest_span([112] * 80) == 0


def test_trace_same_in_both_claim_spaces():
    # A claim's truth table over only its own people (claim_for) and over all 2^n
    # assignments (claim_from_mask, the generator's masks) must give the same trace, also
    # for puzzles with no solution or several (the search then backtracks or stops early).
    import random

    from kk_puzzles.generator import DEFAULT_OP_WEIGHTS, _Sampler
    from kk_puzzles.solver import knight_masks
    from kk_puzzles.trace import claim_for, claim_from_mask, trace_steps

    rng = random.Random(5)
    kinds = Counter()
    for n, depth, width in [(2, 2, 2), (3, 2, 2), (4, 3, 3), (5, 2, 2), (6, 3, 2), (7, 4, 3)]:
        sampler = _Sampler(n, depth, width, DEFAULT_OP_WEIGHTS, rng)
        knights, full = knight_masks(n)
        for _ in range(150):
            drawn = [sampler.sample(s, depth) for s in range(n)]
            stmts = tuple(st for st, _ in drawn)
            local = [claim_for(s, st, cache=False) for s, st in enumerate(stmts)]
            whole = [
                claim_from_mask(s, st, full ^ knights[s] ^ m, n) for s, (st, m) in enumerate(drawn)
            ]
            steps = trace_steps(stmts, claims=local)
            assert trace_steps(stmts, claims=whole) == steps
            assert trace_steps(stmts) == steps  # cached, shared claims
            sols = naive_solutions(stmts)
            assert steps[-1] == (("done", sols[0]) if sols else ("fail",))
            kinds.update(s[0] for s in steps)
    assert kinds["backtrack"] and kinds["fail"] and kinds["claim"] and kinds["neither"]


def test_generation_makes_no_reference_cycles():
    # generate() and perturb_all() run with the cyclic garbage collector paused: that is
    # only safe while they leave no cyclic garbage behind.
    import gc

    from kk_puzzles.perturb import perturb_all

    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        recs = generate(5, 200, seed=0)
        generate(16, 10, seed=1, depth=3)
        split(3, 50, 20, seed=2, cast="fixed")
        perturb_all(recs[:50], ["statement", "leaf", "names", "roles", "order"], seed=0)
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()
    assert gc.isenabled() == was_enabled


# ---------------------------------------------------------------- prompts and import hygiene


def test_prompts():
    rec = generate(3, 1)[0]
    for tag in ("<think>", "</think>", "<answer>", "</answer>", "(1) Zoey is a knight"):
        assert tag in SYSTEM_PROMPT
    msgs = chat_messages(rec)
    assert msgs == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": rec["quiz"]},
    ]
    p = base_prompt(rec)
    assert p.endswith("Assistant: <think>") and f"User: {rec['quiz']}" in p
    assert base_prompt(rec, prefill_think=False).endswith("Assistant:")


def test_import_has_no_ml_libraries():
    code = (
        "import sys, kk_puzzles, kk_puzzles.io, kk_puzzles.cli, kk_puzzles.perturb;"
        "bad = [m for m in ('torch', 'transformers', 'datasets', 'trl', 'pyarrow', 'numpy')"
        " if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert kk_puzzles.generate is generate


def test_kk_gen_imports_no_typing_or_shutil(tmp_path):
    # typing, and shutil with the compression modules, cost every kk-gen process about
    # 2 ms each: generating and writing JSONL runs without them (annotations are strings;
    # argparse's width is found without shutil). -S: no site hooks, only the standard
    # library.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        f"import sys; sys.path.insert(0, {root!r}); from kk_puzzles.cli import main;"
        f"main(['--people', '4', '--n', '20', '--quiet', '--out', {str(tmp_path / 'p.jsonl')!r}]);"
        "print(sorted(m for m in ('typing', 'shutil', 'tempfile', 'dataclasses') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "p.jsonl").read_text().count("\n") == 20


def test_prefix_property():
    # curriculum.data relies on it: one seeded stream, so a shorter run is a prefix.
    long = generate({3: 1, 5: 1}, 120, seed=6)
    assert generate({3: 1, 5: 1}, 45, seed=6) == long[:45]
