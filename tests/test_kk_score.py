"""kk-score: the real CLI in a subprocess on kk-gen files and hand-built records."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

RECORD = {
    "names": ["Zoey", "Oliver"],
    "solution": [True, False],
    "knight_knave": {"knight": "knight", "knave": "knave", "a_knight": "a knight",
                     "a_knave": "a knave", "Knight": "Knight", "Knave": "Knave"},
    "solution_text_format": "(1) Zoey is a knight\n(2) Oliver is a knave",
}  # fmt: skip
CORRECT = "<think>x</think><answer>(1) Zoey is a knight\n(2) Oliver is a knave</answer>"
WRONG = "<think>x</think><answer>(1) Zoey is a knave\n(2) Oliver is a knave</answer>"


def run(bin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_dir / "kk-score"), *args], capture_output=True, text=True, timeout=120
    )


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_scores_kk_gen_file(tmp_path: Path, bin_dir: Path) -> None:
    puzzles = tmp_path / "puzzles.jsonl"
    gen = subprocess.run(
        [str(bin_dir / "kk-gen"), "--people", "2-5", "--n", "12", "--seed", "3",
         "--role-words", "random", "--out", str(puzzles), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    records = [json.loads(line) for line in puzzles.read_text().splitlines()]
    rows, expected = [], []
    for i, rec in enumerate(records):
        kind = ("correct", "wrong", "format_error", "unparsed")[i % 4]
        if kind == "correct":
            completion = f"<think>{rec['cot']}</think><answer>{rec['solution_text']}</answer>"
        elif kind == "wrong":
            first = rec["names"][0]
            role = rec["knight_knave"]["knave" if rec["solution"][0] else "knight"]
            lines = rec["solution_text_format"].split("\n")
            lines[0] = f"(1) {first} is a {role}"
            completion = [
                {
                    "role": "assistant",
                    "content": "<think>x</think><answer>" + "\n".join(lines) + "</answer>",
                }
            ]
        elif kind == "format_error":
            completion = rec["solution_text_format"]
        else:
            completion = (
                "<think>x</think><answer>everyone is a "
                + rec["knight_knave"]["knight"]
                + "</answer>"
            )
        rows.append({**rec, "completion": completion})
        expected.append(kind)
    data = write_jsonl(tmp_path / "completions.jsonl", rows)
    out = tmp_path / "scores" / "per_record.jsonl"
    proc = run(bin_dir, str(data), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "kk-score (logic_rl)" in proc.stdout and "all" in proc.stdout
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["kind"] for s in scored] == expected
    assert [s["id"] for s in scored] == [r["id"] for r in records]
    totals = {"correct": 3.0, "wrong": -0.5, "format_error": -3.0, "unparsed": -1.0}
    assert [s["total"] for s in scored] == [totals[k] for k in expected]
    assert [s["line"] for s in scored] == list(range(1, len(rows) + 1))

    summary = run(bin_dir, str(data), "--json")
    assert summary.returncode == 0, summary.stderr
    stats = json.loads(summary.stdout)
    assert stats["records"] == 12
    assert stats["all_correct_ratio"] == 0.25 and stats["format_error_ratio"] == 0.25
    assert stats["total_mean"] == pytest.approx((3 * 3.0 - 3 * 0.5 - 3 * 3.0 - 3 * 1.0) / 12)


def test_scheme_and_prefilled_think(tmp_path: Path, bin_dir: Path) -> None:
    body = "x</think>\n<answer>(1) Zoey is a knight\n(2) Oliver is a knave</answer>"
    data = write_jsonl(tmp_path / "c.jsonl", [{**RECORD, "completion": body}])
    strict = json.loads(run(bin_dir, str(data), "--json", "--prefilled-think").stdout)
    assert strict["format_error_ratio"] == 1.0  # newline between the blocks
    instruct = json.loads(
        run(
            bin_dir, str(data), "--json", "--prefilled-think", "--scheme", "logic_rl_instruct"
        ).stdout
    )
    assert instruct["all_correct_ratio"] == 1.0 and instruct["total_mean"] == 3.0
    plain = json.loads(run(bin_dir, str(data), "--json", "--scheme", "logic_rl_instruct").stdout)
    assert plain["format_error_ratio"] == 1.0


def test_other_framework_field_name(tmp_path: Path, bin_dir: Path) -> None:
    data = write_jsonl(tmp_path / "c.jsonl", [{**RECORD, "response": CORRECT}])
    proc = run(bin_dir, str(data), "--json", "--completion-field", "response")
    assert proc.returncode == 0 and json.loads(proc.stdout)["all_correct_ratio"] == 1.0
    proc = run(bin_dir, str(data))
    assert proc.returncode == 2
    assert "c.jsonl:1: no 'completion' field" in proc.stderr


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([json.dumps({**RECORD, "completion": CORRECT}), "", "{not json"], ":3: invalid JSON"),
        ([json.dumps({**RECORD, "completion": CORRECT}), "[1, 2]"], ":2: expected a JSON object"),
        ([json.dumps({**RECORD, "completion": 5})], ":1: 'completion' must be a string"),
        ([json.dumps({"names": ["A"], "solution": [True, False], "completion": CORRECT})],
         ":1: puzzle has 1 names but 2 solution values"),
        ([json.dumps({"completion": CORRECT})], ":1: puzzle has no 'names'/'solution'"),
        ([], "no records"),
    ],
)  # fmt: skip
def test_bad_file_one_line_error_exit_2(
    tmp_path: Path, bin_dir: Path, lines: list, message: str
) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = run(bin_dir, str(data), "--out", str(out))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # nothing half-written
    assert list(tmp_path.glob(".out.jsonl*")) == []


def test_missing_and_binary_files(tmp_path: Path, bin_dir: Path) -> None:
    proc = run(bin_dir, str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(json.dumps({**RECORD, "completion": CORRECT}).encode() + b"\n\xff\xfe\x00\n")
    proc = run(bin_dir, str(binary))
    assert proc.returncode == 2 and "bin.jsonl:2: not UTF-8" in proc.stderr
    proc = run(bin_dir, str(binary), "--scheme", "nope")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_logic_rl_records(tmp_path: Path, bin_dir: Path, logic_rl_data: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    rows = pq.read_table(logic_rl_data / "4ppl" / "test.parquet").slice(0, 20).to_pylist()
    recs = []
    for i, r in enumerate(rows):
        # Logic-RL prompts end with a prefilled <think>
        answer = r["solution_text_format"] if i % 2 == 0 else "(1) nobody"
        recs.append({**r, "completion": f"reasoning</think><answer>{answer}</answer><|im_end|>"})
    data = write_jsonl(tmp_path / "lrl.jsonl", recs)
    stats = json.loads(run(bin_dir, str(data), "--json", "--prefilled-think").stdout)
    assert stats["all_correct_ratio"] == 0.5 and stats["unparsed_ratio"] == 0.5
    assert stats["total_mean"] == pytest.approx((3.0 - 1.0) / 2)


def test_score_file_reports_progress(tmp_path: Path) -> None:
    from rewards.cli import score_file

    data = write_jsonl(tmp_path / "many.jsonl", [{**RECORD, "completion": CORRECT}] * 9000)
    seen: list[int] = []
    rows, scores = score_file(
        data, scheme="logic_rl", prefilled_think=False, field="completion", progress=seen.append
    )
    assert len(rows) == 9000 and {s.total for s in scores} == {3.0}
    assert len(seen) == 2 and seen == sorted(seen) and 0 < seen[-1] <= data.stat().st_size
