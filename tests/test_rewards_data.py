"""Scoring real mem-kk-logic / Logic-RL records (read in place from ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewards import answer_key, parse_answer, score
from rewards.registry import build_reward


@pytest.fixture(scope="module")
def logic_rl_records(logic_rl_data: Path) -> list[dict]:
    pq = pytest.importorskip("pyarrow.parquet")
    rows: list[dict] = []
    for people in range(3, 8):
        rows.extend(pq.read_table(logic_rl_data / f"{people}ppl" / "test.parquet").to_pylist())
    assert len(rows) == 500
    return rows


def test_every_real_record_scores_its_own_solution(logic_rl_records: list[dict]) -> None:
    for rec in logic_rl_records:
        key = answer_key(rec)
        assert key.names == tuple(rec["names"]) and key.solution == tuple(rec["solution"])
        lines = f"<think>r</think><answer>{rec['solution_text_format']}</answer>"
        sentence = f"<think>r</think><answer>{rec['solution_text']}</answer>"
        assert score(lines, rec).total == 3.0
        assert score(sentence, rec).total == 3.0
        # the prompt ends with a prefilled <think>, as Logic-RL trains
        assert rec["prompt"][0]["content"].rstrip().endswith("<think>")
        assert score(lines[len("<think>") :], rec, prefilled_think=True).total == 3.0


def test_flipping_one_person_is_wrong(logic_rl_records: list[dict]) -> None:
    for rec in logic_rl_records[::7]:
        kk = rec["knight_knave"]
        lines = rec["solution_text_format"].split("\n")
        first_role = kk["knave"] if rec["solution"][-1] else kk["knight"]
        lines[-1] = f"({len(lines)}) {rec['names'][-1]} is a {first_role}"
        text = "<think>r</think><answer>" + "\n".join(lines) + "</answer>"
        s = score(text, rec)
        assert (s.total, s.reason) == (-0.5, f"1 of {len(rec['names'])} wrong")
        flipped = (*rec["solution"][:-1], not rec["solution"][-1])
        assert parse_answer(text, rec) == flipped


def test_record_shapes_agree(logic_rl_records: list[dict]) -> None:
    rec = logic_rl_records[123]
    text = f"<think>r</think><answer>{rec['solution_text_format']}</answer>"
    shapes = [
        rec,
        {k: rec[k] for k in ("names", "solution", "knight_knave")},
        {k: json.dumps(rec[k]) for k in ("names", "solution", "knight_knave")},
        {"solution_text_format": rec["solution_text_format"]},
        {"reward_model": rec["reward_model"]},
    ]
    assert {score(text, shape).total for shape in shapes} == {3.0}


def test_trl_columns_from_real_records(logic_rl_records: list[dict]) -> None:
    batch = logic_rl_records[:16]
    completions = [
        f"r</think><answer>{rec['solution_text_format']}</answer>" if i % 2 else "r</think>"
        for i, rec in enumerate(batch)
    ]
    cols = {k: [json.dumps(rec[k]) for rec in batch] for k in ("names", "solution", "knight_knave")}
    cols["solution_text_format"] = [rec["solution_text_format"] for rec in batch]
    out = build_reward("logic_rl", prefilled_think=True)(completions, **cols)
    assert out == [-3.0, 3.0] * 8
