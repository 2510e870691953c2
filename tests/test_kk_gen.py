"""The real ``kk-gen`` CLI in a subprocess: outputs, summaries, sub-commands, error paths."""

from __future__ import annotations

import json
import subprocess

import pytest
from test_puzzles import check_record

pytestmark = pytest.mark.slow


def run(bin_dir, cwd, *args):
    return subprocess.run(
        [str(bin_dir / "kk-gen"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def read_lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_default_file_and_summary(bin_dir, tmp_path):
    res = run(bin_dir, tmp_path, "--people", 4, "--n", 60)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "data" / "kk_4ppl_n60_seed0.jsonl"
    recs = read_lines(out)
    assert len(recs) == 60 and len({r["id"] for r in recs}) == 60
    for r in recs:
        check_record(r)
    text = res.stdout
    assert "wrote 60 puzzles" in text and "data/kk_4ppl_n60_seed0.jsonl" in text
    knights = sum(sum(r["solution"]) for r in recs)
    assert f"{100 * knights / 240:.1f}% knights" in text
    assert " s" in text.splitlines()[-1] and "done in" in text
    # the same command again, other process, other file: byte-identical
    res2 = run(bin_dir, tmp_path, "--people", 4, "--n", 60, "--out", "again.jsonl")
    assert res2.returncode == 0, res2.stderr
    assert (tmp_path / "again.jsonl").read_bytes() == out.read_bytes()
    assert list((tmp_path / "data").iterdir()) == [out]  # no temporary files left


def test_split_perturb_formats(bin_dir, tmp_path):
    res = run(
        bin_dir, tmp_path, "--people", "3,5", "--n", 80, "--split", 0.25,
        "--perturb", "statement,leaf,names", "--seed", 3, "--role-words", "saint/sinner",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    data = tmp_path / "data"
    stem = "kk_3+5ppl_n80_seed3_saint-sinner"
    train = read_lines(data / f"{stem}.train.jsonl")
    test = read_lines(data / f"{stem}.test.jsonl")
    assert len(train) == 60 and len(test) == 20
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    assert {r["people"] for r in train + test} == {3, 5}
    assert all(r["knight_knave"]["knight"] == "saint" for r in train)
    leaf = read_lines(data / f"{stem}.test.perturbed_leaf.jsonl")
    by_id = {r["id"]: r for r in test}
    for p in leaf:
        check_record(p)
        assert p["solution"] != by_id[p["source_id"]]["solution"]
    assert len(read_lines(data / f"{stem}.train.perturbed_names.jsonl")) == 60
    assert len(list(data.iterdir())) == 8

    res = run(bin_dir, tmp_path, "--people", "3-4", "--n", 30, "--format", "verl")
    assert res.returncode == 0, res.stderr
    import pyarrow.parquet as pq

    rows = pq.read_table(data / "kk_3-4ppl_n30_seed0_verl.parquet").to_pylist()
    assert len(rows) == 30 and rows[0]["reward_model"]["style"] == "rule"
    res = run(bin_dir, tmp_path, "--people", 3, "--n", 10, "--format", "parquet", "--depth", 3)
    assert res.returncode == 0, res.stderr
    rows = pq.read_table(data / "kk_3ppl_n10_seed0_d3.parquet").to_pylist()
    for r in rows:
        check_record(r)


def test_show_and_import(bin_dir, tmp_path, logic_rl_data):
    assert run(bin_dir, tmp_path, "--people", 3, "--n", 5, "--out", "p.jsonl").returncode == 0
    rec = read_lines(tmp_path / "p.jsonl")[2]
    res = run(bin_dir, tmp_path, "show", "p.jsonl", "--index", 2)
    assert res.returncode == 0, res.stderr
    flat = " ".join(res.stdout.split())
    assert " ".join(rec["quiz"].split()) in flat
    assert "(1) " in res.stdout and "Conclusion:" in res.stdout
    res = run(bin_dir, tmp_path, "show", "p.jsonl", "--index", 9)
    assert res.returncode == 2 and "out of range" in res.stderr

    src = logic_rl_data / "5ppl" / "test.parquet"
    res = run(bin_dir, tmp_path, "import", src, "--out", "imp.jsonl")
    assert res.returncode == 0, res.stderr
    assert "100 accepted, 0 rejected" in res.stdout
    assert len(read_lines(tmp_path / "imp.jsonl")) == 100
    res = run(bin_dir, tmp_path, "show", src, "--index", 4)
    assert res.returncode == 0 and "Trace:" in res.stdout


def test_import_reports_mismatch(bin_dir, tmp_path):
    assert run(bin_dir, tmp_path, "--people", 3, "--n", 4, "--out", "p.jsonl").returncode == 0
    recs = read_lines(tmp_path / "p.jsonl")
    recs[1]["solution"] = [not x for x in recs[1]["solution"]]
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = run(bin_dir, tmp_path, "import", "bad.jsonl")
    assert res.returncode == 0
    assert "rejected record 1" in res.stderr and "disagrees" in res.stderr
    assert len(read_lines(tmp_path / "data" / "bad.imported.jsonl")) == 3
    res = run(bin_dir, tmp_path, "import", "bad.jsonl", "--strict", "--force")
    assert res.returncode == 1


BAD = [
    (["--people", 1], "between 2 and"),
    (["--people", 21], "between 2 and"),
    (["--people", "3-x"], "--people must look like"),
    (["--people", "5-3"], "empty"),
    (["--n", 0], "--n must be"),
    (["--n", -5], "--n must be"),
    (["--n", "ten"], "invalid int"),
    (["--format", "csv"], "unknown --format"),
    (["--depth", 1], "cannot yield a unique puzzle"),
    (["--width", 1], "width must be"),
    (["--depth", 7], "depth must be"),
    (["--people", 2, "--n", 3000], "distinct unique-solution puzzles"),
    (["--split", 0], "--split must be"),
    (["--split", 50, "--n", 50], "leaves no training"),
    (["--perturb", "shuffle"], "unknown --perturb"),
    (["--role-words", "knight"], "--role-words"),
    (["--out", "afile/x.jsonl"], "not a writable directory"),
    (["--out", "adir"], "is a directory"),
    (["--nope"], "unrecognized arguments"),
    (["show"], "required"),
    (["show", "missing.jsonl"], "no such file"),
    (["show", "afile"], "unknown file type"),
    (["import", "missing.parquet"], "no such file"),
    (["import", "garbage.jsonl"], "not valid JSON"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(map(str, a)) for a, _ in BAD])
def test_error_paths(bin_dir, tmp_path, args, message):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    (tmp_path / "garbage.jsonl").write_text("{not json\n")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    res = run(bin_dir, tmp_path, *args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kk-gen: error:"), res.stderr
    assert message in lines[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_existing_file_needs_force(bin_dir, tmp_path):
    out = tmp_path / "x.jsonl"
    out.write_text("keep me\n")
    res = run(bin_dir, tmp_path, "--people", 3, "--n", 5, "--out", out)
    assert res.returncode == 2 and "--force" in res.stderr
    assert out.read_text() == "keep me\n"
    res = run(bin_dir, tmp_path, "--people", 3, "--n", 5, "--out", out, "--force")
    assert res.returncode == 0 and len(read_lines(out)) == 5


@pytest.mark.parametrize("columns", [None, "57", "0", "wide"])
def test_help_width_is_shutils(monkeypatch, columns):
    # The CLIs' parsers find the terminal width without importing shutil (it pulls in the
    # compression modules): the width must be shutil's, whatever COLUMNS says.
    import shutil

    from kk_puzzles.cli import _gen_parser
    from kk_puzzles.cli_errors import _terminal_columns

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert _terminal_columns() == shutil.get_terminal_size().columns
    formatter = _gen_parser()._get_formatter()
    assert formatter._width == shutil.get_terminal_size().columns - 2
