"""Evaluation statistics against hand-computed values: pass@k, Wilson, baselines, scoring."""

from __future__ import annotations

import json
import math

import pytest

from stages.evaluation.heldout import (
    Rate,
    overall_baselines,
    pass_at_k,
    summarize_generations,
    trivial_baselines,
    wilson_interval,
)


def test_pass_at_k_hand_values():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    # n=10, c=3, k=5: 1 - C(7,5)/C(10,5) = 1 - 21/252
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)
    # pass@1 is the plain success ratio
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)
    # not enough wrong samples to fill k draws: always solved
    assert pass_at_k(4, 2, 3) == 1.0
    assert pass_at_k(4, 0, 4) == 0.0
    for n, c, k in [(0, 0, 1), (3, 4, 1), (3, 1, 4), (3, 1, 0)]:
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def test_pass_at_k_matches_binomial_form():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)


def test_wilson_hand_values():
    # 8/10 at z = 1.96: centre (0.8 + z^2/20) / (1 + z^2/10), half-width
    # z * sqrt(0.8*0.2/10 + z^2/400) / (1 + z^2/10).
    z = 1.959963984540054
    d = 1 + z * z / 10
    centre = (0.8 + z * z / 20) / d
    half = z * math.sqrt(0.016 + z * z / 400) / d
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(centre - half)
    assert high == pytest.approx(centre + half)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    # 0/10: lower bound 0, upper z^2/(n+z^2) = 3.8415/13.8415
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(z * z / (10 + z * z))
    # symmetric: k/n and (n-k)/n mirror each other
    lo1, hi1 = wilson_interval(3, 20)
    lo2, hi2 = wilson_interval(17, 20)
    assert lo1 == pytest.approx(1 - hi2) and hi1 == pytest.approx(1 - lo2)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    r = Rate.of(8, 10)
    assert r.value == 0.8 and r.n == 10 and r.fmt() == "80.0% [49.0, 94.3]"


def _rec(names, solution, rid):
    roles = ["knight" if s else "knave" for s in solution]
    return {
        "id": rid,
        "names": names,
        "solution": solution,
        "people": len(names),
        "knight_knave": {
            "knight": "knight",
            "knave": "knave",
            "a_knight": "a knight",
            "a_knave": "a knave",
            "Knight": "Knight",
            "Knave": "Knave",
        },
        "solution_text_format": "\n".join(
            f"({i + 1}) {n} is a {r}" for i, (n, r) in enumerate(zip(names, roles, strict=True))
        ),
    }


def test_trivial_baselines_exact():
    recs = [
        _rec(["A", "B"], [True, True], "a"),
        _rec(["A", "B"], [False, False], "b"),
        _rec(["A", "B"], [True, False], "c"),
        _rec(["A", "B"], [False, True], "d"),
        _rec(["A", "B", "C"], [True, True, True], "e"),
        _rec(["A", "B", "C"], [True, False, True], "f"),
    ]
    # JSON-string columns (how training datasets store them) give the same answer
    recs[5] = {**recs[5], "solution": json.dumps(recs[5]["solution"])}
    b = trivial_baselines(recs)
    assert b[2] == {"all_knight": 0.25, "all_knave": 0.25, "random": 0.25, "n": 4}
    assert b[3] == {"all_knight": 0.5, "all_knave": 0.0, "random": 0.125, "n": 2}
    pooled = overall_baselines(recs)
    assert pooled["all_knight"] == pytest.approx(2 / 6)
    assert pooled["all_knave"] == pytest.approx(1 / 6)
    assert pooled["random"] == pytest.approx((4 * 0.25 + 2 * 0.125) / 6)


def test_summarize_generations_hand_counts():
    r1 = _rec(["Zoey", "Bob"], [True, False], "p1")
    r2 = _rec(["Ann", "Cid", "Dee"], [False, False, True], "p2")
    good1 = " Try. </think><answer>(1) Zoey is a knight\n(2) Bob is a knave</answer>"
    wrong1 = " Try. </think><answer>(1) Zoey is a knight\n(2) Bob is a knight</answer>"
    loose1 = " I think (1) Zoey is a knight and (2) Bob is a knave"  # no tags: lenient only
    good2 = (
        " Hm. </think><answer>(1) Ann is a knave\n(2) Cid is a knave\n(3) Dee is a knight</answer>"
    )
    bad2 = " loop loop loop"
    res = summarize_generations(
        [r1, r2],
        [[good1, wrong1, loose1], [good2, bad2, bad2]],
        [[10, 12, 9], [20, 50, 50]],
        [[False, False, False], [False, True, True]],
        prefill_think=True,
    )
    g2, g3 = res.groups[2], res.groups[3]
    assert (g2.puzzles, g2.completions, g2.strict_correct, g2.lenient_correct) == (1, 3, 1, 2)
    assert g2.format_errors == 1 and g2.kinds == {"correct": 1, "format_error": 1, "wrong": 1}
    assert g2.strict.value == pytest.approx(1 / 3) and g2.lenient.value == pytest.approx(2 / 3)
    assert g2.pass_at[3].value == 1.0 and g2.pass_at[1].value == pytest.approx(1 / 3)
    # pass@2 for n=3, c=1: 1 - C(2,2)/C(3,2) = 2/3
    assert g2.pass_at[2].value == pytest.approx(2 / 3)
    assert g2.mean_length == pytest.approx(31 / 3) and g2.truncated == 0
    assert (g3.strict_correct, g3.lenient_correct, g3.format_errors, g3.truncated) == (1, 1, 2, 2)
    assert g3.truncation.value == pytest.approx(2 / 3) and g3.mean_length == pytest.approx(40)
    o = res.overall
    assert o.people is None and o.puzzles == 2 and o.completions == 6
    assert o.strict.value == pytest.approx(1 / 3)  # mean over puzzles of 1/3 and 1/3
    assert o.lenient.value == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert o.pass_at_k.value == 1.0 and o.pass_at_k.n == 2
    assert res.baselines[3]["all_knave"] == 0.0
    assert [s.strict for s in res.samples] == [True, False, False, True, False, False]
    d = res.to_dict(include_samples=True)
    assert json.loads(json.dumps(d))["groups"]["2"]["pass_at"]["2"]["value"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        summarize_generations([r1], [["a"], ["b"]], [[1]], [[False]])
