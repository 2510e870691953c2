"""Rewards never raise on any completion, stay in their value sets, and never backtrack badly."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import SCHEMES, parse_answer, score
from rewards.registry import available, build_reward

PUZZLE = {"names": ["Zoey", "Oliver", "Ethan"], "solution": [True, False, True]}
PIECES = [
    "<think>", "</think>", "<answer>", "</answer>", "＜think＞", "<Think>", "<|im_end|>", "</s>",
    "Zoey", "Oliver", "Ethan", "Mia", " is a ", " is an ", " is not a ", "knight", "knave",
    "Knight", "saint", " or ", "/", "\n", ", ", ". ", "; ", " and ", "so ", "(1) ", "2. ",
    " ", "\t", "?", "All of them are knights", "\x00", "\u200b", "é", "骑士",
]  # fmt: skip
completions = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=5)), max_size=60).map("".join),
)

ALLOWED = {
    "logic_rl": {(1.0, 2.0, "correct"), (1.0, -1.5, "wrong"), (1.0, -2.0, "unparsed"), (-1.0, -2.0, "format_error")},
}  # fmt: skip
ALLOWED["logic_rl_instruct"] = ALLOWED["logic_rl_lenient"] = ALLOWED["logic_rl"]
PARTIAL_FORMAT = {0.0, 0.25, 0.5, 0.75, 1.0}
PARTIAL_ANSWER = {0.0, 1 / 3, 2 / 3, 1.0}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(completions, st.booleans())
def test_score_never_raises_and_stays_in_value_set(text: str, prefilled: bool) -> None:
    for scheme in SCHEMES:
        s = score(text, PUZZLE, scheme=scheme, prefilled_think=prefilled)
        assert s.total == s.format + s.answer
        if scheme in ALLOWED:
            assert (s.format, s.answer, s.kind) in ALLOWED[scheme]
        else:
            assert s.format in PARTIAL_FORMAT and s.answer in PARTIAL_ANSWER
            assert s.kind in {"correct", "wrong", "unparsed", "format_error"}
            if s.kind == "correct":
                assert s.answer == 1.0 and s.format == 1.0
    strict = score(text, PUZZLE, prefilled_think=prefilled)
    parsed = parse_answer(text, PUZZLE, prefilled_think=prefilled)
    assert (parsed is not None) == (strict.kind in ("correct", "wrong"))
    assert (parsed == tuple(PUZZLE["solution"])) == (strict.kind == "correct")


@settings(max_examples=120, deadline=None)
@given(completions)
def test_strict_reading_implies_same_lenient_reading(text: str) -> None:
    strict = parse_answer(text, PUZZLE)
    lenient = parse_answer(text, PUZZLE, lenient=True)
    if strict is not None:
        assert lenient == strict
    assert lenient is None or len(lenient) == 3


@settings(max_examples=50, deadline=None)
@given(st.lists(completions, min_size=1, max_size=4))
def test_every_reward_function_never_raises(texts: list[str]) -> None:
    cols = {"names": [PUZZLE["names"]] * len(texts), "solution": [PUZZLE["solution"]] * len(texts)}
    for name in available():
        out = build_reward(name)(texts, prompts=["Who is a knight?"] * len(texts), **cols)
        assert len(out) == len(texts) and all(isinstance(v, float) for v in out)


def test_correct_answer_with_random_reasoning_stays_correct() -> None:
    @settings(max_examples=150, deadline=None)
    @given(st.text(max_size=200).filter(lambda t: "<" not in t))
    def check(reasoning: str) -> None:
        text = f"<think>{reasoning}</think><answer>Zoey is a knight, Oliver is a knave, Ethan is a knight</answer>"
        assert score(text, PUZZLE).total == 3.0

    check()


ADVERSARIAL = textwrap.dedent(
    """
    import random, sys
    from rewards import SCHEMES, parse_answer, score
    from rewards.registry import available, build_reward

    P = {"names": ["Zoey", "Oliver", "Ethan"], "solution": [True, False, True]}
    M = 1_000_000
    ok = "(1) Zoey is a knight\\n(2) Oliver is a knave\\n(3) Ethan is a knight"
    rnd = random.Random(0)
    junk = bytes(rnd.randrange(256) for _ in range(M)).decode("utf-8", "replace")
    cases = [
        "", "a" * M, " " * M, "\\n" * M, "<" * M, "<think>" * (M // 7), "</answer>" * (M // 9),
        "<think>x</think><answer>" + ", " * (M // 2) + "</answer>",
        "<think>x</think><answer>" + "and " * (M // 4) + "</answer>",
        "<think>x</think><answer>" + "so, " * (M // 4) + ok + "</answer>",
        "<think>x</think><answer>" + "Zoey " * (M // 5) + "</answer>",
        "<think>x</think><answer>" + "Zoey is " * (M // 8) + "</answer>",
        "<think>x</think><answer>" + "is a " * (M // 5) + "</answer>",
        "<think>x</think><answer>" + "(1) " * (M // 4) + "</answer>",
        "<think>x</think><answer>" + "a" * M + " is a knight</answer>",
        "<think>x</think><answer>" + "Zoey" + " " * M + "is a knight</answer>",
        "<think>x</think><answer>" + ok + "\\n" * M + "</answer>",
        "<think>x</think><answer>" + (ok + "\\n") * (M // len(ok)) + "</answer>",
        "<think>x</think><answer>" + ok + "</answer>" + "<eos> " * (M // 6) + "x",
        "<think>x</think><answer>" + ok + "</answer>" + "<|im_end|" * (M // 9),
        "<think>" + "Zoey is a knight " * (M // 17) + "</think><answer>" + ok + "</answer>",
        "<think>" + "\\u00e9\\u9a91" * (M // 2) + "</think>",
        "\\x00" * M, junk, "<think>" + junk + "</think><answer>" + junk + "</answer>",
        "＜think＞" * (M // 7), "<think>" + "<answer>" * (M // 8),
        "Zoey is not " * (M // 12), ("Zoey is a knight. " * (M // 18)),
    ]
    funcs = [build_reward(n) for n in available()]
    cols = {"names": [P["names"]], "solution": [P["solution"]]}
    for text in cases:
        for pre in (False, True):
            score(text, P, prefilled_think=pre)
        # the other schemes and the shaping functions share those code paths; a quarter
        # size keeps this quick
        part = text[: M // 4]
        for scheme in SCHEMES:
            score(part, P, scheme=scheme, prefilled_think=True)
        parse_answer(part, P, lenient=True)
        for f in funcs:
            f([part], prompts=["Who?"], completion_ids=[[0] * 10], **cols)
    print("done", len(cases))
    """
)


def test_adversarial_inputs_finish_without_catastrophic_backtracking(repo_root) -> None:
    # A catastrophic regex takes hours on these; linear code takes a few seconds in all.
    # The generous limit only catches runaway backtracking, it is not a speed assertion.
    proc = subprocess.run(
        [sys.executable, "-c", ADVERSARIAL],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith("done")


def test_one_megabyte_completions_score_as_expected() -> None:
    ok = "(1) Zoey is a knight\n(2) Oliver is a knave\n(3) Ethan is a knight"
    big_think = "<think>" + "step " * 200_000 + "</think><answer>" + ok + "</answer>"
    assert score(big_think, PUZZLE).total == 3.0
    big_answer = "<think>x</think><answer>" + "Zoey is a knight\n" * 60_000 + "</answer>"
    assert score(big_answer, PUZZLE).kind == "unparsed"
    assert score("<think>" * 150_000, PUZZLE).reason == "150000x <think>"


LINE_PARTS = st.tuples(
    st.sampled_from(["", ", ", ". ", "\n", "; ", " and ", ", and ", " ", "!", ",\n", " " * 120]),
    st.sampled_from(
        ["", "(1) ", "2. ", "3) ", "(1)", "1.", "- ", "so ", "So, ", "and so ", "Thus "]
    ),
    st.sampled_from(["Zoey", "Oliver", "Ethan", "zoey", "ETHAN", "Mia", "Zoey Oliver", "so"]),
    st.sampled_from(
        [" is a ", " IS AN ", " is  a ", "\tis a ", " is ", " is not a ", " is a" + " " * 190]
    ),
    st.sampled_from(
        ["knight", "knave", "Knight", "KNAVE", "saint", "knight?", "knights", "knight's"]
    ),
    st.sampled_from(["", ".", ",", ";", "!", " .", ". ", ",,", "\r", " so", " and"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(LINE_PARTS, min_size=1, max_size=5), st.sampled_from(["\n", "", " "]))
def test_fast_shortcut_agrees_with_general_parser(parts, sep) -> None:
    import rewards.parsing as parsing
    from rewards.puzzle import answer_key

    answer = sep.join("".join(p) for p in parts)
    key = answer_key(PUZZLE)
    fast = parsing._parse_fast(answer, key)
    original = parsing._parse_fast
    parsing._parse_fast = lambda answer, key: None
    try:
        general = parsing.parse_strict(answer, key)
    finally:
        parsing._parse_fast = original
    if fast is not None:
        assert general.roles == fast, answer
    assert parsing.parse_strict(answer, key).roles == general.roles, answer


CORRECT_BODY = "<think>check</think><answer>(1) Zoey is a knight\n(2) Oliver is a knave\n(3) Ethan is a knight</answer>"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(CORRECT_BODY)), st.integers(0, 3), st.sampled_from(PIECES)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_correct_answers_are_never_wrongly_accepted(edits) -> None:
    """Insert / replace / delete around a correct completion; whatever still scores 3 must
    state each person's true role exactly once (checked with the independent lenient finder)."""
    from rewards.parsing import check_format, lenient_claims
    from rewards.puzzle import answer_key

    text = CORRECT_BODY
    for pos, cut, piece in edits:
        pos = min(pos, len(text))
        text = text[:pos] + piece + text[pos + cut :]
    s = score(text, PUZZLE)
    if s.kind == "correct":
        block = check_format(text).answer
        assert block is not None
        claims = lenient_claims(block, answer_key(PUZZLE))
        assert claims == [{True}, {False}, {True}], (text, claims)
        assert len(re.findall(r"\bis\b", block.lower())) == 3, text
