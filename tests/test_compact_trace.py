"""The compact trace of the tiny model: correct answers, fixed row order, one lookup a token."""

from __future__ import annotations

import itertools

import pytest

import kk_puzzles
from kk_puzzles.compact_trace import compact_trace, parse_statement_field, trace_solution

ROLES = {"knight": "knight", "knave": "knave"}


def _record(statements: tuple, names: list[str], roles: dict[str, str] = ROLES) -> dict:
    return {"names": names, "statements": repr(statements), "knight_knave": roles}


@pytest.mark.parametrize(
    ("people", "depth", "width"),
    [(2, 2, 2), (3, 2, 2), (4, 2, 2), (5, 2, 2), (3, 3, 3), (4, 3, 2), (6, 2, 2)],
)
def test_trace_ends_on_the_solver_solution(people: int, depth: int, width: int) -> None:
    n = 100 if people == 2 else 150
    records = kk_puzzles.generate(people, n, seed=11, depth=depth, width=width)
    for rec in records:
        truth = kk_puzzles.solve(kk_puzzles.parse_statements(rec["statements"]), people)
        assert len(truth) == 1
        assert trace_solution(rec) == tuple(truth[0]) == tuple(rec["solution"])
        last = compact_trace(rec).split("\n")[-people:]
        # The last row: every speaker checked once, each line ending in "ok".
        assert all(line.endswith(" ok") for line in last)
        row = last[0].split(" : ")[0]
        assert all(line.split(" : ")[0] == row for line in last)
        expected = " ".join(
            f"{n} {'knight' if k else 'knave'}"
            for n, k in zip(rec["names"], rec["solution"], strict=True)
        )
        assert row == expected


def test_rows_in_fixed_order_and_each_stops_at_first_bad() -> None:
    rec = kk_puzzles.generate(3, 1, seed=5)[0]
    lines = compact_trace(rec).split("\n")
    rows = [line.split(" : ")[0] for line in lines]
    distinct = list(dict.fromkeys(rows))
    names = rec["names"]
    order = [
        " ".join(f"{n} {'knight' if k else 'knave'}" for n, k in zip(names, bits, strict=True))
        for bits in itertools.product((True, False), repeat=3)
    ]
    assert distinct == order[: len(distinct)]
    for row in distinct[:-1]:  # rows that fail: all ok lines, then exactly one bad, last
        verdicts = [line.rsplit(" ", 1)[1] for line in lines if line.split(" : ")[0] == row]
        assert verdicts[-1] == "bad" and set(verdicts[:-1]) <= {"ok"}


def test_every_line_restates_its_row_and_lookups_match_it() -> None:
    recs = kk_puzzles.generate(4, 40, seed=2)
    for rec in recs:
        for line in compact_trace(rec).split("\n"):
            row_text, speaker, claim = line.split(" : ")
            words = row_text.split()
            row = dict(zip(words[::2], words[1::2], strict=True))
            name, role = speaker.split()
            assert row[name] == role
            toks = claim.split()
            for i, tok in enumerate(toks):
                if tok == "=":  # "<name> <claimed> = <candidate role of name in this row> <t/f>"
                    assert toks[i + 1] == row[toks[i - 2]]
                    assert toks[i + 2] == ("true" if toks[i - 1] == toks[i + 1] else "false")
            truth, role_again, verdict = toks[-3:]
            assert role_again == role
            assert verdict == ("ok" if (truth == "true") == (role == "knight") else "bad")


def test_all_operators_and_nesting_by_hand() -> None:
    names = ["Ann", "Bob", "Cid"]
    stmts = (
        ("<=>", ("telling-truth", 1), ("lying", 2)),
        ("not", ("and", ("lying", 0), ("or", ("telling-truth", 2), ("lying", 1)))),
        ("->", ("lying", 0), ("not", ("telling-truth", 1))),
    )
    rec = _record(stmts, names)
    text = compact_trace(rec)
    first = text.split("\n")[0]
    # Row 1 is everyone a knight. Ann: Bob knight (true) <=> Cid knave (false) -> false: bad.
    assert first == (
        "Ann knight Bob knight Cid knight : Ann knight : "
        "Bob knight = knight true Cid knave = knight false <=> false ; false knight bad"
    )
    solutions = kk_puzzles.solve(stmts, 3)
    if len(solutions) == 1:
        assert trace_solution(rec) == tuple(solutions[0])
    # Postfix evaluation agrees with the grammar's evaluator on every row and statement.
    for row in itertools.product((True, False), repeat=3):
        for st in stmts:
            got = _postfix_value(st, row, names)
            assert got == kk_puzzles.evaluate(st, row)


def _postfix_value(stmt: tuple, row: tuple, names: list[str]) -> bool:
    from kk_puzzles.compact_trace import _eval_postfix

    out: list[str] = []
    value = _eval_postfix(stmt, row, names, ("knight", "knave"), out)
    assert out[-1] == ("true" if value else "false")
    return value


def test_role_words_of_the_puzzle_are_used() -> None:
    rec = kk_puzzles.generate(3, 1, seed=4, role_words="saint/sinner")[0]
    text = compact_trace(rec)
    assert "saint" in text and "knight" not in text and "knave" not in text
    assert trace_solution(rec) == tuple(rec["solution"])


def test_no_solution_and_bad_input() -> None:
    # "I am a knave" has no consistent assignment: the trace tries every row, returns None.
    rec = _record((("lying", 0), ("telling-truth", 0)), ["Ann", "Bob"])
    assert trace_solution(rec) is None
    assert len(compact_trace(rec).split("\n")) == 4
    with pytest.raises(ValueError, match="statements for"):
        compact_trace(_record((("lying", 0),), ["Ann", "Bob"]))
    with pytest.raises(ValueError, match="unknown operator"):
        compact_trace(_record((("xor", ("lying", 1), ("lying", 0)), ("lying", 0)), ["A", "B"]))
    with pytest.raises(ValueError):
        parse_statement_field("__import__('os')")


def test_json_string_fields_are_accepted() -> None:
    import json

    rec = kk_puzzles.generate(3, 1, seed=9)[0]
    as_json = {
        **rec,
        "names": json.dumps(rec["names"]),
        "knight_knave": json.dumps(rec["knight_knave"]),
    }
    assert compact_trace(as_json) == compact_trace(rec)


def _trace_errors_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "trace_errors.py"
    spec = importlib.util.spec_from_file_location("trace_errors", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_trace_errors_classes_the_first_wrong_field() -> None:
    te = _trace_errors_module()
    # Zoey: "Bob is a knave"; Bob: "Zoey is a knave and Bob is a knight" (the module doc's)
    record = {
        "names": ["Zoey", "Bob"],
        "statements": "(('lying', 1), ('and', ('lying', 0), ('telling-truth', 1)))",
        "knight_knave": {"knight": "knight", "knave": "knave"},
    }
    ref = compact_trace(record).splitlines()
    last = ref[
        2
    ]  # "Zoey knight Bob knave : Bob knave : Zoey knave = knight false Bob knight = knave false and false ; false knave ok"

    def with_last(line: str) -> str:
        return "\n" + "\n".join([*ref[:2], line]) + "\n</think><answer>x</answer>"

    assert te.classify("\n" + "\n".join(ref) + "\n</think>", record) == "trace right"
    assert te.classify("\n" + ref[0] + "\n</think>", record) == "stopped early"
    cases = {
        "row restated": last.replace("Zoey knight Bob knave :", "Zoey knave Bob knave :", 1),
        "speaker": last.replace(": Bob knave :", ": Zoey knave :", 1),
        "claim translated": last.replace("and false ;", "or false ;", 1),
        "lookup": last.replace("Zoey knave = knight", "Zoey knave = knave", 1),
        "truth value": last.replace("= knight false Bob", "= knight true Bob", 1),
        "verdict": last.replace("knave ok", "knave bad"),
        "malformed line": "Zoey knight Bob knave Bob knave",
    }
    for want, line in cases.items():
        assert line != last
        assert te.classify(with_last(line), record) == want, want
