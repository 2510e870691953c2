"""kk_puzzles.io: JSONL/parquet round trips, HF datasets, verl export, K&K import."""

from __future__ import annotations

import json

import pytest
from test_puzzles import naive_solutions

from kk_puzzles import generate, parse_statements, solve
from kk_puzzles.io import (
    DataError,
    dumps_jsonl,
    import_records,
    read_jsonl,
    read_parquet,
    to_hf_dataset,
    write_jsonl,
    write_parquet,
    write_verl_parquet,
)
from kk_puzzles.prompts import SYSTEM_PROMPT


def mem_kk_style(rec, index):
    """A record laid out the way mem-kk-logic's data_gen_kk.py writes its JSONL lines."""
    return {
        "quiz": rec["quiz"],
        "names": rec["names"],
        "knight_knave": rec["knight_knave"],
        "solution": rec["solution"],
        "solution_text": rec["solution_text"],
        "solution_text_format": rec["solution_text_format"],
        "cot_head": "head",
        "cot_repeat_steps": ["step one", "step two"],
        "cot_foot": "foot",
        "statements": rec["statements"],
        "index": index,
    }


def test_jsonl_and_parquet_round_trip(tmp_path):
    recs = generate([3, 5], 30, seed=1, role_words="random")
    write_jsonl(recs, tmp_path / "a.jsonl")
    assert read_jsonl(tmp_path / "a.jsonl") == recs
    write_parquet(recs, tmp_path / "a.parquet")
    assert read_parquet(tmp_path / "a.parquet") == recs
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == recs[0] and len(lines) == 30


def test_jsonl_lines_are_json_dumps(tmp_path):
    # write_jsonl encodes with json's C encoder made once: the bytes must be json.dumps's,
    # also for what generated records do not hold (non-ASCII, floats, None, nesting).
    recs = generate(4, 5, seed=2)
    recs[0]["extra"] = {"naïve": [1.5, None, float("inf"), -0.0, True], "e": '\u2603\n"\\'}
    recs[1]["names"] = ["Zoë", "Ünal", "李", "\x7f"]
    write_jsonl(recs, tmp_path / "a.jsonl")
    expected = "".join(json.dumps(r) + "\n" for r in recs)
    assert (tmp_path / "a.jsonl").read_text(encoding="utf-8") == expected
    assert dumps_jsonl(recs) == expected


def test_failed_write_leaves_nothing(tmp_path):
    recs = generate(3, 2)
    recs[1]["bad"] = object()  # not JSON-serialisable: the write fails midway
    with pytest.raises(TypeError):
        write_jsonl(recs, tmp_path / "x.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_read_jsonl_names_bad_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        read_jsonl(p)


def test_hf_dataset_conversational_prompt():
    recs = generate(3, 5, seed=2)
    ds = to_hf_dataset(recs)
    assert len(ds) == 5
    assert ds[0]["prompt"] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": recs[0]["quiz"]},
    ]
    assert ds[0]["solution"] == recs[0]["solution"]
    base = to_hf_dataset(recs, "base", json_fields=("knight_knave",))
    assert base[0]["prompt"].endswith("Assistant: <think>")
    assert json.loads(base[0]["knight_knave"]) == recs[0]["knight_knave"]


def test_verl_parquet_schema_and_reimport(tmp_path, logic_rl_data):
    import pyarrow.parquet as pq

    recs = generate(4, 12, seed=3)
    out = tmp_path / "train.parquet"
    write_verl_parquet(recs, out, split="test")
    ours = pq.read_schema(out).remove_metadata()
    theirs = pq.read_schema(logic_rl_data / "3ppl" / "test.parquet").remove_metadata()
    assert ours.equals(theirs)
    row = pq.read_table(out).to_pylist()[0]
    assert row["reward_model"]["ground_truth"]["statements"] == recs[0]["statements"]
    assert row["prompt"][0]["role"] == "user"
    assert row["prompt"][0]["content"].endswith("<|im_start|>assistant\n<think>")
    assert row["extra_info"] == {"index": 0, "split": "test"}
    res = import_records(out)
    assert [r["id"] for r in res.accepted] == [r["id"] for r in recs]
    assert res.rejected == []


def test_mem_kk_logic_round_trip_and_rejects(tmp_path):
    recs = generate(4, 8, seed=5)
    rows = [mem_kk_style(r, i) for i, r in enumerate(recs)]
    wrong = dict(rows[2], solution=[not x for x in rows[2]["solution"]])
    two = dict(rows[3], statements=repr((("lying", 1), ("lying", 0), ("lying", 3), ("lying", 2))))
    broken = dict(rows[4], statements="(('lying', 1), ('lying'")
    rows += [wrong, two, broken, rows[0]]
    path = tmp_path / "people4_num8.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = import_records(path)
    assert len(res.accepted) == 8
    for got, rec in zip(res.accepted, recs, strict=True):
        assert got["solution"] == rec["solution"] and got["id"] == rec["id"]
        assert got["quiz"] == rec["quiz"] and got["names"] == rec["names"]
        assert naive_solutions(parse_statements(got["statements"])) == [tuple(got["solution"])]
        assert got["cot"]  # our trace is added to imported records
    reasons = dict(res.rejected)
    assert set(reasons) == {8, 9, 10, 11}
    assert "disagrees" in reasons[8]
    assert "4 solutions" in reasons[9]
    assert "bad statements" in reasons[10]
    assert "duplicate of record 0" in reasons[11]


def test_import_real_logic_rl_files(logic_rl_data):
    import pyarrow.parquet as pq

    for people in range(3, 8):
        path = logic_rl_data / f"{people}ppl" / "test.parquet"
        res = import_records(path)
        original = pq.read_table(path).to_pylist()
        assert res.rejected == []
        assert len(res.accepted) == len(original) == 100
        for got, row in zip(res.accepted, original, strict=True):
            assert got["people"] == people
            assert got["solution"] == row["solution"]
            assert got["solution_text_format"] == row["solution_text_format"]
            assert solve(parse_statements(got["statements"])) == [tuple(row["solution"])]
