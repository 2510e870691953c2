"""Per-stage training records and the held-out set: disjoint, seeded, the stage's mix."""

from __future__ import annotations

import pytest

from curriculum import ConfigError, load_config
from curriculum.data import (
    heldout_records,
    people_counts,
    people_quotas,
    stage_dataset_records,
    stage_seed,
)

SMALL = [
    "eval.people=[2,3]",
    "eval.n=15",  # 2 people: the reserved slice holds 18
    "stages.warmup.steps=10",
    "stages.explore.steps=10",
    "stages.anneal.steps=10",
]


@pytest.fixture(scope="module")
def cfg():
    return load_config(None, SMALL)


@pytest.fixture(scope="module")
def held(cfg):
    return heldout_records(cfg)


def test_heldout_is_disjoint_from_every_stage(cfg, held) -> None:
    held_ids = {r["id"] for r in held}
    assert len(held_ids) == len(held) == 30
    assert people_counts(held) == {2: 15, 3: 15}
    for name in cfg.stages:
        train = stage_dataset_records(cfg, name)
        assert not held_ids & {r["id"] for r in train}, name


def test_default_stage_sizes_and_mix(cfg) -> None:
    explore = stage_dataset_records(cfg, "explore")
    st = cfg.stages["explore"]
    assert len(explore) == st.steps * st.prompts_per_step == 40
    assert people_counts(explore) == {2: 10, 3: 30}  # 0.25 / 0.75 of 40
    assert len({r["id"] for r in explore}) == 40  # distinct when the space allows
    anneal = stage_dataset_records(cfg, "anneal")
    assert people_counts(anneal) == {3: 80}
    assert all(r["depth"] == 2 and r["width"] == 2 for r in anneal)
    for field in ("id", "quiz", "names", "solution", "knight_knave", "people", "statements"):
        assert field in anneal[0]


def test_fixed_by_seed(cfg, held) -> None:
    again = load_config(None, SMALL)
    assert [r["id"] for r in heldout_records(again)] == [r["id"] for r in held]
    a = stage_dataset_records(cfg, "anneal")
    assert [r["id"] for r in stage_dataset_records(again, "anneal")] == [r["id"] for r in a]
    other = load_config(None, [*SMALL, "run.seed=5"])
    assert [r["id"] for r in heldout_records(other)] == [r["id"] for r in held]  # eval.seed only
    assert {r["id"] for r in stage_dataset_records(other, "anneal")} != {r["id"] for r in a}
    assert stage_seed(other, "anneal") != stage_seed(cfg, "anneal")
    pinned = load_config(None, [*SMALL, "stages.anneal.seed=7"])
    assert stage_seed(pinned, "anneal") == 7


def test_explicit_exclude_ids(cfg) -> None:
    first = stage_dataset_records(cfg, "anneal", exclude_ids=())
    banned = {r["id"] for r in first[:20]}
    again = stage_dataset_records(cfg, "anneal", exclude_ids=banned)
    assert not banned & {r["id"] for r in again} and len(again) == 80


def test_small_puzzle_space_repeats_with_a_note(cfg) -> None:
    # 2 people, depth 2, width 2: only 184 distinct puzzles exist, 18 in the reserved slice.
    small = load_config(None, [*SMALL, "stages.warmup.dataset_size=300"])
    notes: list[str] = []
    rows = stage_dataset_records(small, "warmup", on_note=notes.append)
    distinct = {r["id"] for r in rows}
    assert len(rows) == 300 and len(distinct) == 184 - 18
    assert len(notes) == 1 and "only 166 distinct 2-person puzzles" in notes[0]


def test_heldout_too_large_is_a_config_error() -> None:
    cfg = load_config(None, ["eval.people=[2]", "eval.n=200"])
    with pytest.raises(ConfigError) as info:
        heldout_records(cfg)
    assert "holds only 18" in str(info.value) and "ask for at most 18" in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_stage(cfg) -> None:
    with pytest.raises(ConfigError, match="unknown stage 'nope'"):
        stage_dataset_records(cfg, "nope", exclude_ids=())


def test_people_quotas_hand_values() -> None:
    assert people_quotas({2: 0.25, 3: 0.75}, 40) == {2: 10, 3: 30}
    assert people_quotas({2: 1.0, 3: 1.0, 4: 1.0}, 10) == {2: 4, 3: 3, 4: 3}
    assert people_quotas({3: 2.0, 5: 1.0}, 1) == {3: 1, 5: 0}
    assert sum(people_quotas({2: 0.1, 3: 0.2, 4: 0.7}, 33).values()) == 33
