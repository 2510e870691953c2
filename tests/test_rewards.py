"""rewards.score / parse_answer / summarize: hand-computed values, record shapes, anti-hacking."""

from __future__ import annotations

import json
import math

import pytest

from rewards import SCHEMES, Score, answer_key, parse_answer, score, summarize
from rewards.parsing import check_format, parse_strict, tag_count_score

PUZZLE = {
    "names": ["Zoey", "Oliver", "Ethan"],
    "solution": [True, False, True],
    "knight_knave": {
        "Knave": "Knave",
        "Knight": "Knight",
        "a_knave": "a knave",
        "a_knight": "a knight",
        "knave": "knave",
        "knight": "knight",
    },
    "solution_text": "Zoey is a knight, Oliver is a knave, and Ethan is a knight.",
    "solution_text_format": "(1) Zoey is a knight\n(2) Oliver is a knave\n(3) Ethan is a knight",
}
SAINTS = {
    "names": ["Ann", "Bo"],
    "solution": [False, True],
    "knight_knave": {
        "Knave": "Sinner",
        "Knight": "Saint",
        "a_knave": "a sinner",
        "a_knight": "a saint",
        "knave": "sinner",
        "knight": "saint",
    },
}
RIGHT = "(1) Zoey is a knight\n(2) Oliver is a knave\n(3) Ethan is a knight"
WRONG = "(1) Zoey is a knight\n(2) Oliver is a knave\n(3) Ethan is a knave"


def wrap(answer: str, think: str = "Let me check each person.") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


CORRECT = wrap(RIGHT)


# --- hand-computed values of every scheme -------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        (CORRECT, (1.0, 2.0, 3.0, "correct")),
        (wrap(WRONG), (1.0, -1.5, -0.5, "wrong")),
        (wrap("I am not sure."), (1.0, -2.0, -1.0, "unparsed")),
        (RIGHT, (-1.0, -2.0, -3.0, "format_error")),
        ("", (-1.0, -2.0, -3.0, "format_error")),
    ],
)
def test_logic_rl_values(completion: str, expected: tuple) -> None:
    s = score(completion, PUZZLE)
    assert (s.format, s.answer, s.total, s.kind) == expected
    assert s.total == s.format + s.answer


def test_instruct_and_lenient_schemes() -> None:
    newline = "<think>x</think>\n\n<answer>" + RIGHT + "</answer>"
    assert score(newline, PUZZLE).kind == "format_error"
    assert score(newline, PUZZLE, scheme="logic_rl_instruct").total == 3.0
    assert score(newline, PUZZLE, scheme="logic_rl_lenient").total == 3.0
    chatty = "Sure. <think>x</think> so <answer>" + WRONG + "</answer> Hope this helps."
    assert score(chatty, PUZZLE, scheme="logic_rl_instruct").total == -3.0
    assert score(chatty, PUZZLE, scheme="logic_rl_lenient").total == -0.5
    # lenient reads the last complete answer block
    two = "<think>x</think><answer>" + WRONG + "</answer><answer>" + RIGHT + "</answer>"
    assert score(two, PUZZLE, scheme="logic_rl_lenient").total == 3.0
    assert score("<answer>" + RIGHT + "</answer>", PUZZLE, scheme="logic_rl_lenient").total == -3.0


def test_partial_scheme_values() -> None:
    # all tags well placed (1.0) + all 3 people right (1.0)
    s = score(CORRECT, PUZZLE, scheme="partial")
    assert (s.format, s.answer, s.total, s.kind) == (1.0, 1.0, 2.0, "correct")
    # 1.0 + 2 of 3 right
    s = score(wrap(WRONG), PUZZLE, scheme="partial")
    assert (s.format, s.answer, s.kind) == (1.0, 2 / 3, "wrong")
    # text after </answer>: 0.75 for tags; Ethan claimed both ways counts wrong: 2/3
    s = score(wrap(RIGHT + "\nEthan is a knave") + " more", PUZZLE, scheme="partial")
    assert (s.format, s.answer, s.kind) == (0.75, 2 / 3, "format_error")
    # no answer block at all: think tags only (0.5), answer 0
    s = score("<think>x</think> Zoey is a knight", PUZZLE, scheme="partial")
    assert (s.format, s.answer, s.total) == (0.5, 0.0, 0.5)


def test_unknown_scheme_is_value_error() -> None:
    with pytest.raises(ValueError, match="unknown reward scheme 'nope'"):
        score(CORRECT, PUZZLE, scheme="nope")
    assert set(SCHEMES) >= {"logic_rl", "logic_rl_instruct", "logic_rl_lenient", "partial"}


def test_score_is_frozen() -> None:
    s = score(CORRECT, PUZZLE)
    assert isinstance(s, Score)
    with pytest.raises(AttributeError):
        s.total = 0.0  # type: ignore[misc]
    import pickle

    assert pickle.loads(pickle.dumps(s)) == s


# --- accepted answer shapes --------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        RIGHT,
        "  \n" + RIGHT + "\n  ",
        "Zoey is a knight. Oliver is a knave. Ethan is a knight.",
        "Zoey is a knight, Oliver is a knave, and Ethan is a knight.",
        "Zoey is a knight and Oliver is a knave and Ethan is a knight",
        "Zoey is a knight; Oliver is a knave; Ethan is a knight",
        "1. Zoey is a knight\n2. Oliver is a knave\n3. Ethan is a knight",
        "1) Zoey is a knight\n2) Oliver is a knave\n3) Ethan is a knight",
        "- Zoey is a knight\n- Oliver is a knave\n- Ethan is a knight",
        "So, Zoey is a knight, Oliver is a knave, and therefore Ethan is a knight.",
        "ZOEY IS A KNIGHT\noliver is a KNAVE\nEthan Is An Knight",
        "(3) Ethan is a knight\n(1) Zoey is a knight\n(2) Oliver is a knave",
        "(1) Zoey is a knight.\n(2) Oliver is a knave.\n(3) Ethan is a knight.",
    ],
)
def test_natural_shapes_are_correct(answer: str) -> None:
    assert score(wrap(answer), PUZZLE).kind == "correct", answer


def test_prefilled_think() -> None:
    body = "reasoning</think><answer>" + RIGHT + "</answer>"
    assert score(body, PUZZLE, prefilled_think=True).total == 3.0
    assert score(body, PUZZLE).kind == "format_error"
    # re-opening <think> after a prefilled one is a second <think>
    again = score("<think>" + body, PUZZLE, prefilled_think=True)
    assert again.kind == "format_error"
    assert "2x <think>" in again.reason


def test_end_markers_after_answer() -> None:
    for tail in ("<|im_end|>", "\n<|endoftext|>", "</s>", "<eos>\n", " <|im_end|>\n<|endoftext|> "):
        assert score(CORRECT + tail, PUZZLE).total == 3.0, tail
    for tail in ("<|im_end|>x", "<|im_start|>assistant", "</<eos>s>", "< eos>"):
        assert score(CORRECT + tail, PUZZLE).kind == "format_error", tail


def test_spaces_between_think_and_answer_are_fine() -> None:
    assert score("<think>x</think> \t<answer>" + RIGHT + "</answer>", PUZZLE).total == 3.0
    assert score("  \n<think>x</think><answer>" + RIGHT + "</answer>", PUZZLE).total == 3.0


def test_own_role_words() -> None:
    ok = wrap("(1) Ann is a sinner\n(2) Bo is a saint")
    assert score(ok, SAINTS).total == 3.0
    assert score(wrap("(1) Ann is a knave\n(2) Bo is a knight"), SAINTS).kind == "unparsed"
    assert score(wrap("(1) Ann is a saint\n(2) Bo is a saint"), SAINTS).kind == "wrong"


# --- anti-hacking: each scores below a correct answer with a negative component -----------

HACKS = {
    "two answer blocks": CORRECT + "<answer>" + RIGHT + "</answer>",
    "two answer blocks, different": wrap(WRONG) + "<answer>" + RIGHT + "</answer>",
    "answer only inside think": "<think>" + RIGHT + "</think><answer></answer>",
    "answer in think, junk block": "<think>" + RIGHT + "</think><answer>see above</answer>",
    "text after answer": CORRECT + " I hope this is right.",
    "new think after answer": CORRECT + "<think>wait",
    "think after answer, closed": CORRECT + "<think>more</think>",
    "tags out of order": "<answer>" + RIGHT + "</answer><think>x</think>",
    "answer before think close": "<think>x<answer>" + RIGHT + "</answer></think>",
    "nested think": "<think>a<think>b</think></think><answer>" + RIGHT + "</answer>",
    "unclosed answer": "<think>x</think><answer>" + RIGHT,
    "person twice same role": wrap(RIGHT + "\n(4) Zoey is a knight"),
    "person with both roles": wrap(RIGHT + "\nZoey is a knave"),
    "person missing": wrap("(1) Zoey is a knight\n(2) Oliver is a knave"),
    "extra name": wrap(RIGHT + "\n(4) Mia is a knave"),
    "knight or knave": wrap(
        "(1) Zoey is a knight or knave\n(2) Oliver is a knave\n(3) Ethan is a knight"
    ),
    "knight/knave": wrap(
        "(1) Zoey is a knight/knave\n(2) Oliver is a knave\n(3) Ethan is a knight"
    ),
    "either": wrap(
        "(1) Zoey is either a knight or a knave\n(2) Oliver is a knave\n(3) Ethan is a knight"
    ),
    "all knights": wrap("All of them are knights."),
    "everyone": wrap("Everyone is a knight"),
    "group claim": wrap("Zoey and Ethan are knights, Oliver is a knave"),
    "other role words": wrap("(1) Zoey is a saint\n(2) Oliver is a sinner\n(3) Ethan is a saint"),
    "correct then different": wrap(RIGHT + "\n" + WRONG),
    "different then correct": wrap(WRONG + "\n" + RIGHT),
    "question mark hedge": wrap(
        "(1) Zoey is a knight?\n(2) Oliver is a knave\n(3) Ethan is a knight"
    ),
    "maybe": wrap("(1) Zoey is maybe a knight\n(2) Oliver is a knave\n(3) Ethan is a knight"),
    "probably": wrap("(1) Zoey is probably a knight\n(2) Oliver is a knave\n(3) Ethan is a knight"),
    "negation": wrap("(1) Zoey is not a knave\n(2) Oliver is a knave\n(3) Ethan is a knight"),
    "prose around": wrap("I think " + RIGHT),
    "both roles in one claim": wrap(
        "(1) Zoey is a knight and a knave\n(2) Oliver is a knave\n(3) Ethan is a knight"
    ),
    "fullwidth tags": "＜think＞x＜/think＞＜answer＞" + RIGHT + "＜/answer＞",
    "upper-case tags": "<THINK>x</THINK><ANSWER>" + RIGHT + "</ANSWER>",
    "spaced tags": "< think >x< /think >< answer >" + RIGHT + "< /answer >",
    "tags with attributes": '<think id="1">x</think><answer>' + RIGHT + "</answer>",
    "zero-width in tag": "<think>x</think><ans\u200bwer>" + RIGHT + "</answer>",
    "only tags": "<think></think><answer></answer>",
    "empty": "",
    "text between think and answer": "<think>x</think>Zoey is a knight<answer>"
    + RIGHT
    + "</answer>",
    "new turn after answer": CORRECT + "<|im_end|>\n<|im_start|>user\nthanks",
    "look-alike name": wrap("(1) Zоey is a knight\n(2) Oliver is a knave\n(3) Ethan is a knight"),
    "fullwidth name": wrap("(1) Ｚoey is a knight\n(2) Oliver is a knave\n(3) Ethan is a knight"),
    "name as substring": wrap(
        "(1) Zoeyy is a knight\n(2) Oliver is a knave\n(3) Ethan is a knight"
    ),
    "plural role": wrap("(1) Zoey is a knights\n(2) Oliver is a knave\n(3) Ethan is a knight"),
    "no article": wrap("(1) Zoey knight\n(2) Oliver knave\n(3) Ethan knight"),
    "role list only": wrap("knight, knave, knight"),
    "claims about roles": wrap("Zoey is a knight if Oliver is a knave, Ethan is a knight"),
    "code block": wrap("```\n" + RIGHT + "\n```"),
    "markdown bold": wrap("**Zoey** is a knight\n**Oliver** is a knave\n**Ethan** is a knight"),
    "answer tag inside think text": "<think>the tag </answer> x</think><answer>"
    + RIGHT
    + "</answer>",
    "huge filler": wrap("so, " * 5000 + RIGHT),
    "confusable role letter": wrap(
        "(1) Zoey is a kn\u0456ght\n(2) Oliver is a knave\n(3) Ethan is a knight"
    ),
    "zero-width in role": wrap(
        "(1) Zoey is a kni\u200bght\n(2) Oliver is a knave\n(3) Ethan is a knight"
    ),
    "marker inside answer": wrap(RIGHT + "<|im_end|>"),
    "claim split over lines": wrap(
        "Zoey\nis a knight\n(2) Oliver is a knave\n(3) Ethan is a knight"
    ),
    "same name other case twice": wrap(RIGHT + "\nZOEY is a knave"),
    "answer then reopened answer": CORRECT + "<answer>",
    "closing tags doubled": CORRECT + "</answer>",
    "empty think, answer in think tag text": "<think></think><answer></answer>" + RIGHT,
    "prefill-style body without prefill": "x</think><answer>" + RIGHT + "</answer>",
    "tokenizer-spaced enumerators": wrap(
        "( 1 ) Zoey is a knight\n( 2 ) Oliver is a knave\n( 3 ) Ethan is a knight"
    ),
    "repeated enumerators": wrap(
        "(1) (2) Zoey is a knight\n(2) Oliver is a knave\n(3) Ethan is a knight"
    ),
}


@pytest.mark.parametrize("name", sorted(HACKS))
def test_hack_scores_below_correct(name: str) -> None:
    correct = score(CORRECT, PUZZLE)
    hack = score(HACKS[name], PUZZLE)
    assert hack.total < correct.total, (name, hack)
    assert hack.format < 0 or hack.answer < 0, (name, hack)
    assert hack.kind != "correct"
    # the harsh scheme never pays a hack more than an honest wrong answer
    assert hack.total <= score(wrap(WRONG), PUZZLE).total


@pytest.mark.parametrize("name", sorted(HACKS))
def test_hack_not_correct_in_other_strict_schemes(name: str) -> None:
    for scheme in ("logic_rl_instruct", "partial"):
        assert score(HACKS[name], PUZZLE, scheme=scheme).kind != "correct", (name, scheme)


def test_prefilled_hacks() -> None:
    body = "x</think><answer>" + RIGHT + "</answer>"
    assert score(body, PUZZLE, prefilled_think=True).total == 3.0
    for hack in (
        "<think>" + body,  # re-opens the prefilled think
        body + "<think>more",
        "x</think><answer>" + RIGHT + "</answer></think>",
        "x<answer>" + RIGHT + "</answer></think>",
    ):
        s = score(hack, PUZZLE, prefilled_think=True)
        assert s.kind == "format_error" and s.total == -3.0, hack


def test_names_that_contain_each_other() -> None:
    p = {"names": ["Ann", "Anna", "Mary Ann"], "solution": [True, False, True]}
    ok = wrap("Anna is a knave, Mary Ann is a knight, Ann is a knight")
    assert score(ok, p).total == 3.0
    assert score(wrap("Anna is a knave, Ann is a knight"), p).reason == "no claim for Mary Ann"
    assert (
        score(
            wrap("Anna is a knave, Mary Ann is a knight, Ann is a knight, Ann is a knight"), p
        ).kind
        == "unparsed"
    )
    assert parse_answer(
        "Anna is a knave. Mary Ann is a knight. Ann is a knight.", p, lenient=True
    ) == (
        True,
        False,
        True,
    )


def test_hack_reasons_are_specific() -> None:
    assert score(HACKS["two answer blocks"], PUZZLE).reason == "2x <answer>"
    assert score(HACKS["person with both roles"], PUZZLE).reason == "Zoey claimed twice"
    assert score(HACKS["person missing"], PUZZLE).reason == "no claim for Ethan"
    assert score(HACKS["text after answer"], PUZZLE).reason == "text after </answer>"
    assert score(HACKS["tags out of order"], PUZZLE).reason == "tags out of order"
    assert score(HACKS["extra name"], PUZZLE).reason == "names someone not in the puzzle"


# --- puzzle records -----------------------------------------------------------------------


def test_json_string_columns() -> None:
    rec = {
        "names": json.dumps(PUZZLE["names"]),
        "solution": json.dumps(PUZZLE["solution"]),
        "knight_knave": json.dumps(PUZZLE["knight_knave"]),
    }
    assert score(CORRECT, rec).total == 3.0
    assert score(wrap(WRONG), rec).total == -0.5


def test_solution_text_format_fallback_and_verl_ground_truth() -> None:
    rec = {"solution_text_format": PUZZLE["solution_text_format"]}
    assert answer_key(rec).names == ("Zoey", "Oliver", "Ethan")
    assert score(CORRECT, rec).total == 3.0
    verl = {"reward_model": {"ground_truth": {"solution_text_format": RIGHT}, "style": "rule"}}
    assert score(wrap(WRONG), verl).total == -0.5


def test_numpy_rows() -> None:
    np = pytest.importorskip("numpy")
    rec = {
        "names": np.array(PUZZLE["names"], dtype=object),
        "solution": np.array([True, False, True]),
    }
    assert score(CORRECT, rec).total == 3.0


def test_tuple_and_cached_rows_agree() -> None:
    rec = {"names": ("Zoey", "Oliver", "Ethan"), "solution": (True, False, True)}
    assert score(CORRECT, rec) == score(CORRECT, PUZZLE)
    # the content cache must not let ints pass where a bool list was seen before
    with pytest.raises(ValueError, match="booleans"):
        answer_key({"names": ["Zoey", "Oliver", "Ethan"], "solution": [1, 0, 1]})


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({}, "no 'names'/'solution'"),
        ({"names": ["A", "B"], "solution": [True]}, "2 names but 1 solution"),
        ({"names": ["A", "A"], "solution": [True, False]}, "repeats a name"),
        ({"names": [], "solution": []}, "'names' is empty"),
        ({"names": ["A", ""], "solution": [True, False]}, "non-empty strings"),
        ({"names": "[not json", "solution": "[true]"}, "not valid JSON"),
        ({"names": ["A"], "solution": ["yes"]}, "booleans"),
        ({"names": ["A"], "solution": [True], "knight_knave": {"knight": "x"}}, "knight_knave"),
        (
            {"names": ["A"], "solution": [True], "knight_knave": {"knight": "x", "knave": "x"}},
            "unusable",
        ),
        ({"names": "A", "solution": [True]}, "not valid JSON"),
        ({"names": 5, "solution": [True]}, "must be a list"),
        ({"solution_text_format": "(1) A is a hero"}, "solution_text_format"),
        ("not a mapping", "must be a mapping"),
    ],
)
def test_malformed_puzzle_raises_one_value_error(record: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score(CORRECT, record)  # type: ignore[arg-type]


# --- parse_answer, check_format, tag_count -------------------------------------------------


def test_parse_answer_strict_and_lenient() -> None:
    assert parse_answer(CORRECT, PUZZLE) == (True, False, True)
    assert parse_answer(wrap(WRONG), PUZZLE) == (True, False, False)
    assert parse_answer(RIGHT, PUZZLE) is None
    assert parse_answer(RIGHT, PUZZLE, lenient=True) == (True, False, True)
    # lenient: the last claim per person wins, negations count, the answer block first
    text = (
        "Assume Zoey is a knave. Then... Zoey is not a knave, Oliver is a knave, Ethan is a knight."
    )
    assert parse_answer(text, PUZZLE, lenient=True) == (True, False, True)
    text = "<think>Zoey is a knave, Oliver is a knight, Ethan is a knave</think><answer>" + RIGHT
    assert parse_answer(text, PUZZLE, lenient=True) == (True, False, True)
    assert parse_answer("Zoey is a knight", PUZZLE, lenient=True) is None
    assert parse_answer("nothing", SAINTS, lenient=True) is None
    assert parse_answer(
        "Ann is a sinner and Bo is no sinner, Bo is a saint", SAINTS, lenient=True
    ) == (
        False,
        True,
    )
    assert parse_answer(
        "reasoning</think><answer>" + RIGHT + "</answer>", PUZZLE, prefilled_think=True
    )


def test_check_format_reasons() -> None:
    assert check_format("<think>a</think><answer>b</answer>").answer == "b"
    assert check_format("<think>a</think><answer>b</answer>", mode="lenient").ok
    assert check_format("a</think><answer>b</answer>").reason == "missing <think>"
    assert (
        check_format("<think>a</think>x<answer>b</answer>").reason
        == "text between </think> and <answer>"
    )
    assert check_format("x<think>a</think><answer>b</answer>").reason == "text before <think>"
    with pytest.raises(ValueError, match="format mode"):
        check_format("", mode="loose")


@pytest.mark.parametrize(
    ("text", "prefilled", "expected"),
    [
        ("<think>a</think><answer>b</answer>", False, 1.0),
        ("<think>a</think><answer>b</answer> tail", False, 0.75),
        ("<think>a</think>", False, 0.5),
        ("x <think>a</think>", False, 0.25),
        ("a</think><answer>b</answer>", True, 1.0),
        ("<think>a</think><answer>b</answer>", True, 0.75),
        ("</answer><answer></think><think>", False, 0.0),
        ("", False, 0.0),
    ],
)
def test_tag_count(text: str, prefilled: bool, expected: float) -> None:
    assert tag_count_score(text, prefilled) == expected


def test_parse_strict_canonical_and_general_agree() -> None:
    key = answer_key(PUZZLE)
    for answer in (RIGHT, WRONG, RIGHT.replace("\n", "\n\n"), RIGHT.replace("(1) ", "(1)")):
        fast = parse_strict(answer, key)
        general = parse_strict(answer.replace("\n", " ;\n"), key)
        assert fast.roles == general.roles, answer


# --- summarize ----------------------------------------------------------------------------


def test_summarize_hand_computed() -> None:
    scores = [
        score(CORRECT, PUZZLE),  # 1, 2, 3
        score(wrap(WRONG), PUZZLE),  # 1, -1.5, -0.5
        score(wrap("?"), PUZZLE),  # 1, -2, -1
        score("", PUZZLE),  # -1, -2, -3
    ]
    assert summarize(scores) == {
        "format_error_ratio": 0.25,
        "all_correct_ratio": 0.25,
        "wrong_answer_ratio": 0.25,
        "unparsed_ratio": 0.25,
        "format_mean": 0.5,
        "answer_mean": -0.875,
        "total_mean": -0.375,
    }
    empty = summarize([])
    assert empty["format_error_ratio"] == 0.0 and math.isnan(empty["total_mean"])


def test_conversational_completion() -> None:
    conv = [{"role": "assistant", "content": CORRECT}]
    assert score(conv, PUZZLE).total == 3.0  # type: ignore[arg-type]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": CORRECT}]}]
    assert score(parts, PUZZLE).total == 3.0  # type: ignore[arg-type]
    assert score(None, PUZZLE).total == -3.0  # type: ignore[arg-type]


def test_rewards_imports_no_ml_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rewards, rewards.registry, rewards.cli, rewards.functions;"
        "bad = [m for m in ('torch', 'transformers', 'trl', 'datasets', 'numpy') if m in sys.modules];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_custom_schemes() -> None:
    from rewards import Scheme

    graded_strict = Scheme("graded", format_mode="tag_count")
    s = score(wrap(WRONG) + " tail", PUZZLE, scheme=graded_strict)
    assert (s.format, s.answer, s.kind) == (0.75, -2.0, "format_error")
    s = score(wrap(WRONG), PUZZLE, scheme=graded_strict)
    assert (s.format, s.answer, s.kind) == (1.0, -1.5, "wrong")
    harsh_partial = Scheme("hp", answer_mode="partial", answer_correct=3.0)
    s = score(wrap(WRONG) + " tail", PUZZLE, scheme=harsh_partial)
    assert (s.format, s.answer, s.kind) == (-1.0, 2.0, "format_error")
    with pytest.raises(ValueError, match="format_mode"):
        Scheme("bad", format_mode="loose")
    with pytest.raises(ValueError, match="answer_mode"):
        Scheme("bad", answer_mode="fuzzy")
