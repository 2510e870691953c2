"""kk-analyze on hand-built run directories: every statistic checked against hand values."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from analysis import analyze_cli
from analysis.behaviour import PHRASE_NAMES, collapse, completion_features, role_pattern
from analysis.curves import Curves, detect_phases, smooth, stage_summaries
from analysis.runs import analyse_run, bucket_index
from curriculum import run_records as rr

TRUTH_KN = "(1) Ann is a knight\n(2) Bob is a knave"
TRUTH_NN = "(1) Ann is a knave\n(2) Bob is a knave"
C1 = " Wait, I verify this. Wait again. </think><answer>(1) Ann is a knight\n(2) Bob is a knight</answer>"
C2 = " 我们 check </think><answer>(1) Ann is a knight\n(2) Bob is a knight</answer> <think> more"
C3 = " a b c d a b c d a b c d"
C4 = (
    " Let's test both possibilities. Alternatively, go back. </think>"
    "<answer>(1) Ann is a knave\n(2) Bob is a knave</answer>"
)


def _metric(stage: str, step: int, stage_step: int, **kw) -> rr.StepMetrics:
    base = dict(
        stage=stage, global_step=step, stage_step=stage_step, time=1000.0 + step,
        step_seconds=1.0, reward_mean=0.0, reward_std=1.0, rewards={"logic_rl_format": 0.5},
        format_error_ratio=0.5, all_correct_ratio=0.1, wrong_answer_ratio=0.4,
        unparsed_ratio=0.0, completion_length_mean=100.0, completion_length_min=50.0,
        completion_length_max=150.0, truncation_ratio=0.0, frac_zero_std_groups=0.3,
        learning_rate=1e-4, temperature=1.0, num_generations=4, tokens_per_second=100.0,
        kl=0.01,
    )  # fmt: skip
    base.update(kw)
    return rr.StepMetrics(**base)


def _sample(stage: str, step: int, text: str, truth: str, kind: str) -> rr.CompletionSample:
    return rr.CompletionSample(
        stage=stage, global_step=step, puzzle_id=f"p{step}", people=2, completion=text,
        format=1.0, answer=0.0, total=0.0, kind=kind, reason="", solution_text_format=truth,
    )  # fmt: skip


@pytest.fixture()
def hand_run(tmp_path: Path) -> Path:
    """Stage a: steps 1-20, stage b: steps 21-25; four completions with known features."""
    run = tmp_path / "hand"
    run.mkdir()
    rr.write_run_info(
        run, rr.RunInfo(run_name="hand", model="m", device="cpu", started_at=0.0, total_steps=25)
    )
    for i in range(1, 21):
        rr.append_record(
            run / rr.METRICS_FILE,
            _metric("a", i, i, reward_mean=float(i), format_error_ratio=1.0 - i / 20,
                    completion_length_mean=10.0 * i, kl=None if i == 1 else 0.001 * i),
        )  # fmt: skip
    for i in range(21, 26):
        rr.append_record(
            run / rr.METRICS_FILE,
            _metric("b", i, i - 20, reward_mean=2.0 * i, temperature=1.2, truncation_ratio=0.1 * (i - 20)),
        )  # fmt: skip
    for s in [
        _sample("a", 1, C1, TRUTH_KN, "wrong"),
        _sample("a", 2, C2, TRUTH_KN, "format_error"),
        _sample("b", 21, C3, TRUTH_NN, "format_error"),
        _sample("b", 21, C4, TRUTH_NN, "correct"),
    ]:
        rr.append_record(run / rr.COMPLETIONS_FILE, s)
    rr.append_record(run / rr.EVENTS_FILE, rr.RunEvent(0.0, 3, "alert", "a", "zero-std high"))
    return run


def test_completion_features_hand_values():
    f1 = completion_features(C1, TRUTH_KN, 2)
    assert f1.words == 16
    counts = dict(zip(PHRASE_NAMES, f1.reflection, strict=True))
    assert counts["wait"] == 2 and counts["verify"] == 1 and sum(f1.reflection) == 3
    assert (f1.answer_pattern, f1.truth_pattern, f1.retry_late, f1.other_script) == (
        "KK",
        "KN",
        False,
        0,
    )
    assert f1.think_letters == len("WaitIverifythisWaitagain")
    f2 = completion_features(C2, TRUTH_KN, 2)
    assert f2.other_script == 2 and f2.think_letters == 7 and f2.retry_late
    assert (
        completion_features(" x </think><answer>(1) A is a knight</answer>   \n").retry_late
        is False
    )
    assert completion_features(" x </think><answer><think>(1) A is a knight").retry_late is True
    f3 = completion_features(C3, TRUTH_NN, 2)
    # 12 words -> 9 four-grams, 4 distinct (abcd, bcda, cdab, dabc)
    assert f3.repetition == pytest.approx(1 - 4 / 9) and f3.answer_pattern is None
    f4 = completion_features(C4, TRUTH_NN, 2)
    counts = dict(zip(PHRASE_NAMES, f4.reflection, strict=True))
    assert counts["test both possibilities"] == 1 and counts["alternatively"] == 1
    assert counts["go back"] == 1 and sum(f4.reflection) == 3
    assert f4.answer_pattern == "NN" == f4.truth_pattern
    # double-check is not counted as re-check; re-check and recheck both are
    f5 = completion_features("double-check, re-check, recheck, Summarize, in summary, waiting")
    c5 = dict(zip(PHRASE_NAMES, f5.reflection, strict=True))
    assert (c5["double-check"], c5["re-check"], c5["summarize"], c5["wait"]) == (1, 2, 2, 0)


def test_role_pattern_and_collapse():
    assert role_pattern("(1) Ann Lee is a knight\n(2) Bob is a knave\n(3) Cy is a knight") == "KNK"
    assert role_pattern("(1) A is a saint (2) B is a sinner", people=2) == "KN"
    assert role_pattern("(1) A is a knight\n(3) C is a knave") is None
    c = collapse(["KK", "KK", "NN", "KN", None], ["KK", "NN", "NN", "KK", "KK"])
    assert c["parsed_share"] == 0.8
    assert c["all_knight_share"] == 0.5 and c["all_knight_truth_share"] == 0.5
    assert c["all_knave_share"] == 0.25 and c["all_knave_truth_share"] == 0.5
    assert (c["top_pattern"], c["top_pattern_share"], c["top_pattern_truth_share"]) == (
        "KK",
        0.5,
        0.5,
    )


def test_stage_summaries_and_behaviour_exact(hand_run: Path):
    run = analyse_run(hand_run)
    a, b = run.stage_summary
    assert (a["stage"], a["first_step"], a["last_step"], a["steps"]) == ("a", 1, 20, 20)
    # 20 steps -> edge window 2: start = mean(1, 2), end = mean(19, 20)
    assert a["reward_mean"] == {"start": 1.5, "end": 19.5, "mean": 10.5}
    assert a["format_error_ratio"]["start"] == pytest.approx(1 - 1.5 / 20)
    assert a["completion_length_mean"]["end"] == pytest.approx(195.0)
    # KL missing at step 1: start window holds only step 2
    assert a["kl"]["start"] == pytest.approx(0.002)
    assert b["steps"] == 5 and b["reward_mean"] == {"start": 42.0, "end": 50.0, "mean": 46.0}
    assert b["truncation_ratio"]["end"] == pytest.approx(0.5)
    assert b["temperature"]["mean"] == pytest.approx(1.2)
    sa, sb = run.stage_behaviour
    assert sa["stage"] == "a" and sa["completions"] == 2
    words_a = 16 + len(C2.split())
    assert sa["words"] == words_a
    assert sa["reflection_per_1k"]["wait"] == pytest.approx(2000 / words_a)
    assert sa["reflection_total_per_1k"] == pytest.approx(3000 / words_a)
    assert sa["mixing_share"] == 0.5 and sa["retry_late_share"] == 0.5
    assert sa["other_script_letter_share"] == pytest.approx(2 / (24 + 7))
    assert sa["all_knight_share"] == 1.0 and sa["all_knight_truth_share"] == 0.0
    assert sa["top_pattern"] == "KK" and sa["top_pattern_truth_share"] == 0.0
    assert sa["kinds"] == {"format_error": 0.5, "wrong": 0.5}
    assert sb["repetition_mean"] == pytest.approx((1 - 4 / 9) / 2)
    assert sb["parsed_share"] == 0.5 and sb["all_knave_share"] == 1.0
    o = run.overall_behaviour
    assert o["completions"] == 4 and o["mixing_share"] == 0.25
    # buckets: one per distinct step (1, 2, 21)
    assert [bk["first_step"] for bk in run.buckets] == [1, 2, 21]
    assert [bk["completions"] for bk in run.buckets] == [1, 1, 2]


def test_bucket_index_ranges():
    steps = np.arange(1, 101)
    idx = bucket_index(steps, max_buckets=4)
    # edges linspace(1, 101, 5) = 1, 26, 51, 76, 101
    assert idx[0] == 0 and idx[24] == 0 and idx[25] == 1 and idx[74] == 2 and idx[75] == 3
    assert idx[-1] == 3 and np.bincount(idx).tolist() == [25, 25, 25, 25]


def test_smooth_hand_values():
    assert smooth([1, 2, 3, 4, 5], 3).tolist() == [1.5, 2.0, 3.0, 4.0, 4.5]
    out = smooth([1.0, float("nan"), 3.0], 3)
    assert out.tolist() == [1.0, 2.0, 3.0]


def _phase_metrics() -> list[rr.StepMetrics]:
    """100 steps: format error 0.9 -> 0.05 at step 31; length 200 (1-32), 100 (33-70),
    150 (71-85), 500 (86-100); truncation 0.5 from step 91."""
    out = []
    for step in range(1, 101):
        length = 200.0 if step <= 32 else 100.0 if step <= 70 else 150.0 if step <= 85 else 500.0
        out.append(
            _metric("s", step, step, format_error_ratio=0.9 if step <= 30 else 0.05,
                    completion_length_mean=length, truncation_ratio=0.5 if step > 90 else 0.0)
        )  # fmt: skip
    return out


def test_detect_phases_hand_values():
    # Window 5 (centred, +-2). Format error smoothed at steps 29..33: 0.73, 0.56, 0.39, 0.22,
    # 0.05; the fall is 0.85, done at 90% when <= 0.135: step 33. Length there: (2*200 +
    # 3*100)/5 = 140 (-30%). Shortest after: 100 at step 35. Blow-up when length >= 300:
    # step 85 (3*150 + 2*500)/5 = 290, step 86 (2*150 + 3*500)/5 = 360.
    phases, verdict = detect_phases(Curves(_phase_metrics()))
    assert verdict == "format learning -> normal growth -> blow-up"
    assert [(p.name, p.first_step, p.last_step) for p in phases] == [
        ("format learning", 1, 33),
        ("normal growth", 34, 85),
        ("blow-up", 86, 100),
    ]
    assert phases[0].evidence == "format error 0.90 -> 0.05; length 200 -> 140 (-30%, shrinking)"
    assert phases[1].evidence == "length 100 -> 290 (+190%)"
    assert phases[2].evidence == "length 100 -> 500, truncation up to 50%"


def test_detect_phases_flat_and_short():
    flat = [_metric("s", i, i) for i in range(1, 41)]
    phases, verdict = detect_phases(Curves(flat))
    assert [(p.name, p.first_step, p.last_step) for p in phases] == [("stable length", 1, 40)]
    assert verdict == "stable length"
    assert detect_phases(Curves(flat[:9])) == ([], "too few steps (9) to detect phases")
    # truncated from the first step: no blow-up
    capped = [_metric("s", i, i, truncation_ratio=1.0) for i in range(1, 41)]
    assert detect_phases(Curves(capped))[1] == "stable length"


def test_stage_summaries_empty():
    assert stage_summaries(Curves([])) == []


def test_cli_writes_report_plots_and_json(hand_run: Path, tmp_path: Path, bin_dir: Path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(bin_dir / "kk-analyze"), str(hand_run), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "phases" in proc.stdout and "behaviour" in proc.stdout
    for name in ("curves.png", "behaviour.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    md = (out / "analysis.md").read_text()
    assert "![training curves](curves.png)" in md and "![behaviour](behaviour.png)" in md
    assert "| a | 1–20 | 20 |" in md and "zero-std high" in md
    doc = json.loads((out / "analysis.json").read_text())
    (r,) = doc["runs"]
    assert r["steps"] == 25 and r["completions"] == 4
    assert r["stages"][0]["reward_mean"] == {"start": 1.5, "end": 19.5, "mean": 10.5}
    assert r["behaviour"]["retry_late_share"] == 0.25
    assert not list(out.glob(".*tmp*")), "temp files left behind"


def test_compare_overlays_two_runs(hand_run: Path, tmp_path: Path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    for m in rr.read_metrics(hand_run):
        rr.append_record(other / rr.METRICS_FILE, replace(m, reward_mean=m.reward_mean / 2))
    out = tmp_path / "cmp"
    assert (
        analyze_cli.main([str(hand_run), "--compare", str(other), "--out", str(out), "--quiet"])
        == 0
    )
    doc = json.loads((out / "analysis.json").read_text())
    assert [r["label"] for r in doc["runs"]] == ["hand", "other"]
    assert (
        doc["runs"][1]["completions"] == 0
        and doc["runs"][1]["stages"][1]["reward_mean"]["end"] == 25.0
    )
    assert (out / "curves.png").stat().st_size > 10_000
    assert "hand vs other" in (out / "analysis.md").read_text()


@pytest.mark.parametrize(
    "setup, args, message",
    [
        ("missing", [], "run directory not found"),
        ("empty", [], "neither metrics.jsonl nor completions.jsonl"),
        ("bad_json", [], "malformed JSON"),
        ("hand", ["--bogus"], "unrecognized arguments"),
        ("hand", ["--compare", "MISSING"], "run directory not found"),
    ],
)
def test_cli_errors_one_line_exit_2(setup, args, message, hand_run: Path, tmp_path: Path, capsys):
    target = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "bad_json": tmp_path / "bad"}.get(
        setup, hand_run
    )  # fmt: skip
    if setup == "empty":
        target.mkdir()
    if setup == "bad_json":
        target.mkdir()
        (target / rr.METRICS_FILE).write_text('{"stage": "a", \n')
    args = [str(tmp_path / "nope") if a == "MISSING" else a for a in args]
    out = tmp_path / "o"
    assert analyze_cli.main([str(target), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kk-analyze: error: ") and message in err and err.count("\n") == 1
    assert not (out / "analysis.md").exists()


def test_real_cli_error_exit_code(bin_dir: Path, tmp_path: Path):
    proc = subprocess.run(
        [str(bin_dir / "kk-analyze"), str(tmp_path / "absent")], capture_output=True, text=True, timeout=60
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0


def test_partial_trailing_line_is_ignored(hand_run: Path):
    with open(hand_run / rr.COMPLETIONS_FILE, "a") as fh:
        fh.write('{"stage": "b", "global_step": 22')  # writer mid-append
    run = analyse_run(hand_run)
    assert len(run.table) == 4


def test_parallel_loading_equals_serial(tmp_path: Path):
    from analysis.runs import load_behaviour
    from analysis.synthetic import write_synthetic_run

    run = write_synthetic_run(tmp_path / "syn", steps=30, completions_per_step=5)
    path = run / rr.COMPLETIONS_FILE
    with open(path, "a") as fh:
        fh.write('{"stage": "x"')  # partial trailing line: ignored by both
    serial = load_behaviour(path, workers=1)
    parallel = load_behaviour(path, workers=3, min_bytes=0)
    assert len(serial) == 150
    assert vars(parallel) == vars(serial)
