"""Reward functions called exactly as trl 1.16's GRPOTrainer calls them; registry; shaping values."""

from __future__ import annotations

import json
import math
import pickle
from types import SimpleNamespace

import pytest

from rewards.registry import available, build_reward, build_rewards, describe, reward_weights

NAMES = ["Zoey", "Oliver"]
SOLUTION = [True, False]
KK = {"Knave": "Knave", "Knight": "Knight", "a_knave": "a knave", "a_knight": "a knight",
      "knave": "knave", "knight": "knight"}  # fmt: skip
CORRECT = "<think>check</think><answer>(1) Zoey is a knight\n(2) Oliver is a knave</answer>"
WRONG = "<think>check</think><answer>(1) Zoey is a knave\n(2) Oliver is a knave</answer>"
UNPARSED = "<think>check</think><answer>Zoey is a knight or a knave</answer>"
BROKEN = "(1) Zoey is a knight\n(2) Oliver is a knave"
COMPLETIONS = [CORRECT, WRONG, UNPARSED, BROKEN]


def dataset_rows(completions: list, *, json_columns: bool = True) -> list[dict]:
    """Rows as TRL's `inputs` hold them: dataset columns plus prompt (and completion)."""
    enc = json.dumps if json_columns else (lambda v: v)
    return [
        {
            "prompt": "User: who is who? Assistant: <think>",
            "names": enc(NAMES),
            "solution": enc(SOLUTION),
            "knight_knave": enc(KK),
            "solution_text_format": "(1) Zoey is a knight\n(2) Oliver is a knave",
            "people": 2,
            "id": "abc",
            "completion": c,
        }
        for c in completions
    ]


def trl_calculate_rewards(funcs: list, inputs: list[dict], completions: list) -> tuple[list, dict]:
    """Run trl's own GRPOTrainer._calculate_rewards on a stand-in trainer."""
    pytest.importorskip("trl")
    from transformers import TrainerState
    from trl import GRPOTrainer
    from trl.trainer.utils import get_callable_name

    metrics: dict[str, list] = {}
    extra: dict[str, list] = {}
    trainer = SimpleNamespace(
        accelerator=SimpleNamespace(device="cpu", is_main_process=True),
        args=SimpleNamespace(report_to=[]),
        state=TrainerState(),
        reward_funcs=funcs,
        reward_processing_classes=[None] * len(funcs),
        reward_func_names=[get_callable_name(f) for f in funcs],
        environments=None,
        _log_metric=lambda name, value: metrics.setdefault(name, []).append(value),
        _log_completion_extra=lambda col, values: extra.setdefault(col, []).extend(values),
    )
    prompts = [row["prompt"] for row in inputs]
    completion_ids = [list(range(len(str(c).split()))) for c in completions]
    method = GRPOTrainer._calculate_rewards
    method = getattr(method, "__wrapped__", method)  # skip the profiling decorator
    rewards = method(trainer, inputs, prompts, completions, completion_ids)
    return rewards.tolist(), {"names": trainer.reward_func_names, "metrics": metrics}


def test_logic_rl_components_through_trl() -> None:
    funcs = build_rewards(
        [{"name": "logic_rl_format"}, {"name": "logic_rl_answer"}, {"name": "logic_rl"}]
    )
    rewards, info = trl_calculate_rewards(funcs, dataset_rows(COMPLETIONS), COMPLETIONS)
    assert info["names"] == ["logic_rl_format", "logic_rl_answer", "logic_rl"]
    assert rewards == [
        [1.0, 2.0, 3.0],
        [1.0, -1.5, -0.5],
        [1.0, -2.0, -1.0],
        [-1.0, -2.0, -3.0],
    ]
    # ratios reach TRL's metric log through log_metric (once per function, same values)
    assert info["metrics"]["kk/all_correct_ratio"] == [0.25, 0.25, 0.25]
    assert info["metrics"]["kk/format_error_ratio"] == [0.25, 0.25, 0.25]


def test_conversational_completions_through_trl() -> None:
    conv = [[{"role": "assistant", "content": c}] for c in COMPLETIONS]
    funcs = [build_reward("logic_rl")]
    rewards, _ = trl_calculate_rewards(funcs, dataset_rows(COMPLETIONS, json_columns=False), conv)
    assert [r[0] for r in rewards] == [3.0, -0.5, -1.0, -3.0]


def test_every_registered_reward_runs_through_trl() -> None:
    funcs = [build_reward(name) for name in available()]
    rewards, info = trl_calculate_rewards(funcs, dataset_rows(COMPLETIONS), COMPLETIONS)
    assert info["names"] == available()
    assert all(math.isfinite(v) for row in rewards for v in row)


def test_prefilled_think_parameter() -> None:
    body = ["check</think><answer>(1) Zoey is a knight\n(2) Oliver is a knave</answer>"]
    rows = dataset_rows(body)
    assert build_reward("logic_rl", prefilled_think=True)(body, **_columns(rows)) == [3.0]
    assert build_reward("logic_rl")(body, **_columns(rows)) == [-3.0]


def _columns(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k not in ("prompt", "completion", "completion_ids")]
    return {k: [r[k] for r in rows] for k in keys}


def test_pickle_roundtrip_keeps_name_and_values() -> None:
    cols = _columns(dataset_rows(COMPLETIONS))
    for name in available():
        f = build_reward(name)
        g = pickle.loads(pickle.dumps(f))
        assert g.__name__ == name
        assert g(COMPLETIONS, **cols) == f(COMPLETIONS, **cols)


def test_registry_specs_and_errors() -> None:
    specs = [
        {"name": "logic_rl_format", "prefilled_think": True},
        {"name": "repetition_penalty", "weight": 0.5, "ngram_size": 4},
        {"name": "repetition_penalty", "ngram_size": 2},
    ]
    funcs = build_rewards(specs)
    assert [f.__name__ for f in funcs] == [
        "logic_rl_format",
        "repetition_penalty",
        "repetition_penalty_2",
    ]
    assert [f.weight for f in funcs] == [1.0, 0.5, 1.0]
    assert reward_weights(specs) == [1.0, 0.5, 1.0]
    assert funcs[1].params["ngram_size"] == 4
    assert describe("tag_count") == {"prefilled_think": False, "per_tag": 0.25}
    with pytest.raises(ValueError, match="unknown reward 'nope'; available: logic_rl_format"):
        build_reward("nope")
    with pytest.raises(
        ValueError, match=r"rewards\[0\]: reward 'tag_count' has no parameter 'bogus'"
    ):
        build_rewards([{"name": "tag_count", "bogus": 1}])
    with pytest.raises(ValueError, match="has no 'name'"):
        build_rewards([{"weight": 1.0}])
    with pytest.raises(ValueError, match="weight must be a number"):
        build_rewards([{"name": "logic_rl", "weight": "high"}])
    with pytest.raises(ValueError, match="must be true/false"):
        build_reward("logic_rl", prefilled_think="yes")
    with pytest.raises(ValueError, match="format_mode"):
        build_reward("logic_rl", format_mode="loose")
    with pytest.raises(ValueError, match="per_tag must be a number"):
        build_reward("tag_count", per_tag=float("nan"))
    assert build_reward("tag_count").weight == 1.0
    with pytest.raises(ValueError, match="buffer"):
        build_reward("overlong", max_length=10, buffer=20)


def test_registry_accepts_omegaconf_specs() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create(
        {"rewards": [{"name": "logic_rl", "weight": 2, "prefilled_think": True}]}
    )
    (f,) = build_rewards(cfg.rewards)
    assert f.weight == 2.0 and f.params["prefilled_think"] is True
    assert reward_weights(cfg.rewards) == [2.0]


def test_mismatched_column_is_a_clear_error() -> None:
    f = build_reward("logic_rl")
    with pytest.raises(ValueError, match="one value per completion"):
        f(COMPLETIONS, names=[NAMES], solution=[SOLUTION] * 4)


# --- hand-computed values of the shaping rewards ------------------------------------------


def test_format_alternatives_values() -> None:
    texts = [
        CORRECT,
        "<think>a</think>\n<answer>b</answer>",
        "Sure <think>a</think> x <answer>b</answer> bye",
        "<answer>b</answer><think>a</think>",
    ]
    assert build_reward("logic_rl_format")(texts) == [1.0, -1.0, -1.0, -1.0]
    assert build_reward("instruct_format")(texts) == [1.0, 1.0, -1.0, -1.0]
    assert build_reward("lenient_format")(texts) == [1.0, 1.0, 1.0, -1.0]
    assert build_reward("lenient_format", reward=0.5, penalty=0.0)(texts) == [0.5, 0.5, 0.5, 0.0]
    # tag_count: placement only (a newline between is fine); 3: </think> + <answer> placed;
    # 4: only </think> follows its opener
    assert build_reward("tag_count")(texts) == [1.0, 1.0, 0.5, 0.25]
    assert build_reward("tag_count", per_tag=0.1)(texts[:1]) == [pytest.approx(0.4)]


def test_partial_answer_values() -> None:
    f = build_reward("partial_answer", scale=2.0)
    texts = [
        CORRECT,
        WRONG,
        UNPARSED,
        BROKEN,
        "<think>x</think><answer>Zoey is a knight, Zoey is a knave</answer>",
    ]
    cols = {"names": [NAMES] * 5, "solution": [SOLUTION] * 5}
    # right people: 2/2, 1/2, 0 (Zoey given both roles... "knight or a knave" names one role
    # only through the lenient finder: Zoey knight), no block, Zoey both roles
    assert f(texts, **cols) == [2.0, 1.0, 1.0, 0.0, 0.0]


def test_cosine_length_values() -> None:
    f = build_reward("cosine_length", max_length=10)
    cols = {"names": [NAMES] * 4, "solution": [SOLUTION] * 4}
    ids = [[0] * 0, [0] * 5, [0] * 0, [0] * 20]
    out = f([CORRECT, CORRECT, WRONG, WRONG], completion_ids=ids, **cols)
    # correct: 1.0 at length 0, 0.75 at half (cos(pi/2) = 0); wrong: -1 at 0, -0.5 beyond max
    assert out == pytest.approx([1.0, 0.75, -1.0, -0.5])
    words = build_reward("cosine_length", max_length=100, unit="chars")(
        [CORRECT], **{k: v[:1] for k, v in cols.items()}
    )
    t = len(CORRECT) / 100
    assert words == pytest.approx([0.5 + 0.25 * (1 + math.cos(math.pi * t))])


def test_repetition_and_overlong_values() -> None:
    rep = build_reward("repetition_penalty", ngram_size=3, max_penalty=-2.0)
    # 6 words -> 4 trigrams, distinct: (a b c), (b c a), (c a b) = 3 -> -2 * (1 - 3/4)
    assert rep(["a b c a b c", "one two", ""]) == [-0.5, 0.0, 0.0]
    over = build_reward("overlong", max_length=100, buffer=20, penalty=-1.0)
    ids = [[0] * 80, [0] * 90, [0] * 100, [0] * 150]
    assert over(["x"] * 4, completion_ids=ids) == [0.0, -0.5, -1.0, -1.0]


def test_language_consistency_values() -> None:
    f = build_reward("language_consistency")
    prompts_en = [
        [{"role": "system", "content": "系统"}, {"role": "user", "content": "Who is a knight?"}]
    ] * 3
    texts = ["<think>abcd</think>", "<think>ab 是骑</think>", "<think>123</think>"]
    assert f(texts, prompts=prompts_en) == [1.0, 0.5, 0.0]
    prompts_zh = ["谁是骑士？"] * 3
    assert f(texts, prompts=prompts_zh) == [0.0, 0.5, 0.0]
    fixed = build_reward("language_consistency", language="cyrillic", scale=2.0)
    assert fixed(["<think>да no</think>"]) == [1.0]
    pre = build_reward("language_consistency", prefilled_think=True)
    assert pre(["abc</think><answer>是</answer>"], prompts=["hello"]) == [1.0]


def test_trace_prefix_values() -> None:
    # Zoey says "Oliver is a knave", Oliver says "Zoey is a knave": two candidate rows are
    # checked before the solution row (Zoey knight, Oliver knave) passes both speakers.
    stmts = "(('lying', 1), ('lying', 0))"
    ref = [
        "Zoey knight Oliver knight : Zoey knight : Oliver knave = knight false ; false knight bad",
        "Zoey knight Oliver knave : Zoey knight : Oliver knave = knave true ; true knight ok",
        "Zoey knight Oliver knave : Oliver knave : Zoey knave = knight false ; false knave ok",
    ]
    f = build_reward("trace_prefix", scale=3.0)
    full = "<think>\n" + "\n".join(ref) + "\n</think><answer>x</answer>"
    wrong_second = full.replace("knave true ; true knight ok", "knave true ; true knight bad")
    skipped_first = "<think>\n" + "\n".join(ref[1:]) + "\n</think>"
    cols = {"names": [json.dumps(NAMES)] * 5, "knight_knave": [json.dumps(KK)] * 5,
            "statements": [stmts] * 5}  # fmt: skip
    texts = [full, wrong_second, skipped_first, "no think block", full]
    # 3/3 lines, 1 line before the first wrong one, none (starts at the wrong row), no
    # reasoning; the last one without a statements column value scores 0
    cols["statements"][4] = ""
    assert f(texts, **cols) == [3.0, 1.0, 0.0, 0.0, 0.0]
    assert build_reward("trace_prefix", prefilled_think=True)(["\n" + ref[0]], **{
        k: v[:1] for k, v in cols.items()}) == [pytest.approx(1 / 3)]  # fmt: skip
