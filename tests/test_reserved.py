"""The reserved evaluation slice: invariance of the structure key, and that no training
stream ever contains a reserved puzzle while every held-out set comes only from it."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
from conftest import BIN_DIR

import kk_puzzles
from curriculum import ConfigError, load_config
from curriculum.data import heldout_records, heldout_set, stage_dataset_records
from kk_puzzles import parse_statements
from kk_puzzles.perturb import perturb_all
from kk_puzzles.reserved import is_reserved, structure_key


def permuted(statements: tuple, perm: list[int]) -> tuple:
    """The same puzzle with person i renamed perm[i] everywhere (speakers and references)."""

    def relabel(s: tuple) -> tuple:
        if s[0] in ("telling-truth", "lying"):
            return (s[0], perm[s[1]])
        return (s[0], *(relabel(x) for x in s[1:]))

    out: list = [None] * len(statements)
    for old, stmt in enumerate(statements):
        out[perm[old]] = relabel(stmt)
    return tuple(out)


def reserved_record(rec: dict) -> bool:
    return is_reserved(parse_statements(rec["statements"]))


@pytest.mark.parametrize("people", [2, 3, 4, 5, 6])
def test_key_is_invariant_under_permutations_and_operand_order(people: int) -> None:
    rng = random.Random(people)
    for rec in kk_puzzles.generate(people, 60, seed=11):
        stmts = parse_statements(rec["statements"])
        key = structure_key(stmts)
        for _ in range(3):
            perm = list(range(people))
            rng.shuffle(perm)
            assert structure_key(permuted(stmts, perm)) == key
        swapped = tuple(
            (s[0], *reversed(s[1:])) if s[0] in ("and", "or", "<=>") else s for s in stmts
        )
        assert structure_key(swapped) == key


def test_a_permuted_copy_of_a_reserved_puzzle_is_reserved() -> None:
    recs = kk_puzzles.generate(4, 40, seed=5, reserved="only")
    rng = random.Random(0)
    for rec in recs:
        perm = [1, 0, 3, 2]
        rng.shuffle(perm)
        assert is_reserved(permuted(parse_statements(rec["statements"]), perm))


def test_distinct_structures_get_distinct_keys() -> None:
    # 2 people: 184 puzzles; a pair related by swapping the people shares a key, others not
    recs = kk_puzzles.generate(2, 184, seed=0)
    keys = {structure_key(parse_statements(r["statements"])) for r in recs}
    swaps = {
        frozenset((r["statements"], repr(permuted(parse_statements(r["statements"]), [1, 0]))))
        for r in recs
    }
    assert len(keys) == 95 and 90 <= len(swaps) <= 184


def test_renamed_reworded_and_reordered_copies_share_the_slice() -> None:
    recs = kk_puzzles.generate(3, 30, seed=2, reserved="only")
    got = perturb_all(recs, ["names", "roles", "order"], seed=2)
    for kind, rows in got.items():
        assert rows and all(reserved_record(r) for r in rows), kind


def test_pretraining_stream_never_contains_a_reserved_puzzle() -> None:
    from stages.tiny.corpus import DocumentStream
    from stages.tiny.model import resolve_cfg

    cfg = resolve_cfg({"people": {2: 0.3, 3: 0.6, 4: 0.1}, "batch_size": 500})
    stream = DocumentStream(cfg, tokenizer=None)
    seen = 0
    step = 0
    while seen < 100_000:
        recs = stream.records(step)
        assert not any(reserved_record(r) for r in recs), step
        assert all(r["names"] == list(kk_puzzles.NAMES[: r["people"]]) for r in recs)
        seen += len(recs)
        step += 1


def test_stage_data_outside_and_heldout_inside_the_slice() -> None:
    cfg = load_config("configs/default.yaml", [])
    for name in cfg.stages:
        recs = stage_dataset_records(cfg, name)
        assert recs and not any(reserved_record(r) for r in recs), name
    held = heldout_records(cfg)
    assert len(held) == cfg.eval.n * len(cfg.eval.people)
    assert all(reserved_record(r) for r in held)
    other_seed = heldout_set(cfg, [3, 4], 20, seed=99)
    assert all(reserved_record(r) for r in other_seed)


def test_a_heldout_request_beyond_the_slice_names_the_maximum() -> None:
    cfg = load_config("configs/default.yaml", [])
    with pytest.raises(ConfigError, match=r"holds only 18 puzzles.*at most 18"):
        heldout_set(cfg, [2], 50)
    assert len(heldout_set(cfg, [2], 18)) == 18


def test_kk_gen_split_draws_test_from_the_slice(tmp_path: Path) -> None:
    out = tmp_path / "kk.jsonl"
    done = subprocess.run(
        [str(BIN_DIR / "kk-gen"), "--people", "3", "--n", "300", "--split", "0.2", "--out",
         str(out), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    test = [json.loads(x) for x in (tmp_path / "kk.test.jsonl").read_text().splitlines()]
    train = [json.loads(x) for x in (tmp_path / "kk.train.jsonl").read_text().splitlines()]
    assert len(test) == 60 and len(train) == 240
    assert all(reserved_record(r) for r in test)
    assert not any(reserved_record(r) for r in train)


def test_kk_gen_slice_prints_sizes() -> None:
    done = subprocess.run(
        [str(BIN_DIR / "kk-gen"), "slice", "--people", "2-3", "--samples", "500"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 people: 18 of all 184 puzzles (exact) reserved" in done.stdout
    assert "3 people:" in done.stdout
    bad = subprocess.run(
        [str(BIN_DIR / "kk-gen"), "slice", "--samples", "0"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
