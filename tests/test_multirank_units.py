"""The pieces that make a multi-process run global, checked by hand in one process:
the batch merge behind every step record, the sharded evaluation's reassembly, the report's
pooled intervals over the recorded global batch, and indexed-CPU checkpoint loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import rewards
from curriculum.promotion import _m
from stages import run_eval
from stages.callbacks import Batch, BatchRecorder, batch_statistics, merge_batches
from stages.evaluation.heldout import wilson_interval
from stages.evaluation.report import pooled_rate
from stages.trainer import allow_indexed_cpu_loads

PUZZLE = {"names": ["Ann", "Bob"], "solution": [True, False]}
RIGHT = "<think>t</think> <answer>(1) Ann is a knight\n(2) Bob is a knave</answer>"
NO_FORMAT = "Ann is a knight and Bob is a knave"


def _share(texts: list[str], reward: list[float]) -> Batch:
    n = len(texts)
    scores = [rewards.score(t, PUZZLE, scheme="logic_rl", prefilled_think=False) for t in texts]
    return Batch(list(texts), [PUZZLE] * n, ["p"] * n, [2] * n, [""] * n, scores, {"r": reward}, 1)


def test_statistics_of_merged_shares_are_the_global_batch_statistics() -> None:
    # Rank 0 scored 2 completions (exact format, right), rank 1 scored 2 (the right roles
    # in prose: a format error read leniently as right; no answer at all). Global batch:
    # exact format 2/4, strictly correct 2/4, lenient accuracy 3/4; rank 0's share alone
    # says 1.0 exact format, rank 1's 0.0.
    rank0 = _share([RIGHT, RIGHT], [1.0, 1.0])
    rank1 = _share([NO_FORMAT, "no answer"], [0.0, 0.0])
    merged = merge_batches([rank0, rank1])
    assert merged is not None and len(merged.completions) == 4
    stats = batch_statistics(merged, prefilled_think=False)
    assert stats["exact_format_ratio"] == pytest.approx(0.5)
    assert stats["all_correct_ratio"] == pytest.approx(0.5)
    assert stats["lenient_accuracy"] == pytest.approx(0.75)
    assert batch_statistics(rank0, False)["exact_format_ratio"] == pytest.approx(1.0)
    assert batch_statistics(rank1, False)["exact_format_ratio"] == pytest.approx(0.0)
    recorder = BatchRecorder(prefilled_think=False, weights={"r": 2.0})
    assert recorder.totals(merged) == [2.0, 2.0, 0.0, 0.0]
    assert merge_batches([None, None]) is None


def test_sharded_generation_reassembles_prompt_order(monkeypatch) -> None:
    prompts = [f"p{i}" for i in range(5)]

    def fake_generate(model, tokenizer, mine, **kwargs):
        return [[f"out-{p}"] for p in mine], [[len(p)] for p in mine], [[p == "p3"] for p in mine]

    monkeypatch.setattr(run_eval, "generate_completions", fake_generate)
    # What each of two processes contributes: prompts 0, 2, 4 and prompts 1, 3.
    parts = [fake_generate(None, None, prompts[r::2]) for r in (0, 1)]
    monkeypatch.setattr(run_eval, "gather_from_all", lambda part: parts)
    texts, lengths, truncs = run_eval.sharded_generate(1, 2)(None, None, prompts, seed=0)
    assert texts == [[f"out-p{i}"] for i in range(5)]
    assert lengths == [[2]] * 5
    assert truncs == [[False], [False], [False], [True], [False]]


def test_pooled_rate_counts_each_steps_recorded_batch() -> None:
    # Two steps recorded 8 and 4 completions (global batches) with rates 0.5 and 0.25:
    # 4 + 1 = 5 successes of 12, whatever the planned batch says.
    a = _m(1, 0.5)
    b = _m(2, 0.75)
    a.exact_format_ratio, a.batch_completions = 0.5, 8
    b.exact_format_ratio, b.batch_completions = 0.25, 4
    rate, low, high, n = pooled_rate([a, b], "exact_format_ratio", batch=100)
    assert (rate, n) == (pytest.approx(5 / 12), 12)
    assert (low, high) == pytest.approx(wilson_interval(5, 12))
    # Records without the field keep the planned batch.
    a.batch_completions = b.batch_completions = None
    assert pooled_rate([a, b], "exact_format_ratio", batch=4)[3] == 8


def test_optimizer_state_saved_on_an_indexed_cpu_device_loads(tmp_path: Path) -> None:
    # accelerate's CPU processes use torch.device("cpu", 0); transformers then loads the
    # optimizer with that map_location, which torch alone cannot restore.
    path = tmp_path / "optimizer.pt"
    torch.save({"exp_avg": torch.arange(3.0)}, path)
    allow_indexed_cpu_loads()
    allow_indexed_cpu_loads()  # idempotent
    loaded = torch.load(path, map_location=torch.device("cpu", 0), weights_only=True)
    assert loaded["exp_avg"].tolist() == [0.0, 1.0, 2.0]
