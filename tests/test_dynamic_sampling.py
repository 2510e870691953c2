"""Dynamic sampling: the filter / refill rules by hand, then on a real TRL 1.16 trainer.

The trainer cases use a reward that is flat (zero std) for chosen dataset rows and spread
for the others, so every number below is known in advance.
"""

from __future__ import annotations

import math

import pytest

from stages.dynamic_sampling import (
    FillPlan,
    UnknownOutputKey,
    group_has_signal,
    groups_with_signal,
    merge_round_outputs,
    plan_fill,
    refill_rows,
)

# ----------------------------------------------------------------------- the rules by hand


def _rounds(flags: dict[int, list[bool]], asked: list[tuple[int, int]]):
    def generate(round_index: int, prompts: int) -> list[bool]:
        asked.append((round_index, prompts))
        return flags[round_index][:prompts]

    return generate


def test_four_groups_two_flat_are_refilled_in_one_round() -> None:
    asked: list[tuple[int, int]] = []
    flags = {0: [True, False, True, False], 1: [True, True], 2: [True, True]}
    plan = plan_fill(4, 3, _rounds(flags, asked))
    assert asked == [(0, 4), (1, 2)]  # round 2 asks for the 2 missing prompts only
    assert plan == FillPlan(
        picks=((0, 0), (0, 2), (1, 0), (1, 1)),
        rounds=2,
        groups_generated=6,
        zero_std_generated=2,
        zero_std_dropped=2,
        filled=True,
    )
    assert plan.zero_std_trained == 0 and plan.frac_zero_std_trained == 0.0


def test_rounds_stop_at_max_rounds_and_the_batch_is_completed_with_flat_groups() -> None:
    asked: list[tuple[int, int]] = []
    flags = {0: [True, False, False, False], 1: [False, True, False], 2: [False, False]}
    plan = plan_fill(4, 3, _rounds(flags, asked))
    assert asked == [(0, 4), (1, 3), (2, 2)]
    # 2 groups with spread; the 2 missing are the earliest flat ones (the step's own).
    assert plan.picks == ((0, 0), (0, 1), (0, 2), (1, 1))
    assert (plan.rounds, plan.groups_generated, plan.zero_std_generated) == (3, 9, 7)
    assert plan.zero_std_dropped == 5 and not plan.filled
    assert plan.zero_std_trained == 2 and plan.frac_zero_std_trained == 0.5


def test_one_round_filters_nothing_away_and_never_refills() -> None:
    asked: list[tuple[int, int]] = []
    plan = plan_fill(2, 1, _rounds({0: [False, True]}, asked))
    assert asked == [(0, 2)]
    assert plan.picks == ((0, 0), (0, 1)) and plan.rounds == 1 and not plan.filled
    assert plan.zero_std_dropped == 0 and plan.frac_zero_std_trained == 0.5


def test_a_full_first_round_is_the_step_as_it_was() -> None:
    plan = plan_fill(3, 4, lambda r, n: [True] * n)
    assert plan.picks == ((0, 0), (0, 1), (0, 2)) and plan.rounds == 1 and plan.filled


def test_plan_fill_rejects_a_wrong_group_count() -> None:
    with pytest.raises(ValueError, match="round 0 gave 1 groups for 2 prompts"):
        plan_fill(2, 2, lambda r, n: [True])


def test_zero_std_rules() -> None:
    assert not group_has_signal([-3.0, -3.0, -3.0])
    assert group_has_signal([-3.0, -3.0, -2.5])
    assert not group_has_signal([math.nan, 1.0])  # one scored completion: no baseline
    assert not group_has_signal([math.nan, math.nan])
    assert groups_with_signal([0, 0, 1, 0], 2) == [False, True]
    with pytest.raises(ValueError):
        groups_with_signal([0, 0, 1], 2)


def test_refill_rows_continue_after_the_batch_and_wrap() -> None:
    assert refill_rows(3, 2, 8) == [4, 5]
    assert refill_rows(6, 4, 8) == [7, 0, 1, 2]


def test_merge_pads_prompts_left_and_completions_right() -> None:
    torch = pytest.importorskip("torch")
    pad = 9
    round0 = {
        "prompt_ids": torch.tensor([[1, 2], [1, 2], [3, 4], [3, 4]]),
        "prompt_mask": torch.ones(4, 2, dtype=torch.long),
        "completion_ids": torch.tensor([[5], [6], [7], [8]]),
        "completion_mask": torch.ones(4, 1, dtype=torch.long),
        "ref_per_token_logps": torch.full((4, 1), -1.0),
        "advantages": torch.tensor([1.0, -1.0, 0.0, 0.0]),
        "num_items_in_batch": torch.tensor(4),
    }
    round1 = {
        "prompt_ids": torch.tensor([[7, 7, 7], [7, 7, 7]]),
        "prompt_mask": torch.ones(2, 3, dtype=torch.long),
        "completion_ids": torch.tensor([[5, 5], [6, pad]]),
        "completion_mask": torch.tensor([[1, 1], [1, 0]]),
        "ref_per_token_logps": torch.full((2, 2), -2.0),
        "advantages": torch.tensor([0.5, -0.5]),
        "num_items_in_batch": torch.tensor(3),
    }
    merged = merge_round_outputs([round0, round1], [(0, 0), (1, 0)], 2, pad)
    assert "num_items_in_batch" not in merged  # the trainer recomputes it
    assert merged["prompt_ids"].tolist() == [[pad, 1, 2], [pad, 1, 2], [7, 7, 7], [7, 7, 7]]
    assert merged["prompt_mask"].tolist() == [[0, 1, 1], [0, 1, 1], [1, 1, 1], [1, 1, 1]]
    assert merged["completion_ids"].tolist() == [[5, pad], [6, pad], [5, 5], [6, pad]]
    assert merged["completion_mask"].tolist() == [[1, 0], [1, 0], [1, 1], [1, 0]]
    assert merged["ref_per_token_logps"].tolist() == [[-1, 0], [-1, 0], [-2, -2], [-2, -2]]
    assert merged["advantages"].tolist() == [1.0, -1.0, 0.5, -0.5]
    with pytest.raises(UnknownOutputKey):
        merge_round_outputs([{**round0, "pixel_values": torch.zeros(4)}], [(0, 0)], 2, pad)


# --------------------------------------------------------------- on a real TRL trainer

torch = pytest.importorskip("torch")
from tiny_trainer import make_tiny_trainer  # noqa: E402

from stages.temperature import TrlInternalsError  # noqa: E402
from stages.trainer import ROW_COLUMN, KKGRPOTrainer, check_dynamic_sampling_hooks  # noqa: E402

GROUP = 2


class RowReward:
    """Reward 0 for every completion of a flat row, 0 / 1 alternating otherwise; records the
    dataset rows (by puzzle id) and the columns of every call."""

    __name__ = "row_reward"

    def __init__(self, flat_ids: set[str]) -> None:
        self.flat_ids = flat_ids
        self.calls: list[list[str]] = []
        self.columns: list[set[str]] = []

    def __call__(self, completions, id, **kwargs):  # TRL passes the dataset column "id"
        self.calls.append(list(id))
        self.columns.append(set(kwargs))
        return [0.0 if pid in self.flat_ids else float(i % 2) for i, pid in enumerate(id)]


def _trainer(tmp_path, flat_rows, *, rounds=3, prompts=4, **kwargs):
    from kk_puzzles import generate

    ids = [str(r["id"]) for r in generate(2, 8, seed=0)]  # the tiny trainer's 8 puzzles
    reward = RowReward({ids[i] for i in flat_rows})
    trainer = make_tiny_trainer(
        tmp_path,
        trainer_cls=KKGRPOTrainer,
        num_generations=GROUP,
        prompts_per_step=prompts,
        max_completion_length=4,
        reward_funcs=[reward],
        trainer_kwargs={"max_generation_rounds": rounds, **kwargs.pop("trainer_kwargs", {})},
        **kwargs,
    )
    return trainer, reward, ids


def _step_inputs(trainer, rows):
    return [trainer.train_dataset[r] for r in rows for _ in range(GROUP)]


def test_two_flat_groups_of_four_are_refilled_from_the_next_prompts(tmp_path) -> None:
    trainer, reward, ids = _trainer(tmp_path, flat_rows={1, 3})
    out = trainer._generate_and_score_completions(_step_inputs(trainer, range(4)))
    # Round 1 scored rows 0-3; round 2 the two rows after them, 4 and 5.
    assert reward.calls == [
        [ids[r] for r in (0, 1, 2, 3) for _ in range(GROUP)],
        [ids[r] for r in (4, 5) for _ in range(GROUP)],
    ]
    assert trainer.kk_last_fill == FillPlan(((0, 0), (0, 2), (1, 0), (1, 1)), 2, 6, 2, 2, True)
    # The trained batch: 4 groups (rows 0, 2, 4, 5), every one with advantage spread.
    assert out["prompt_ids"].shape[0] == 4 * GROUP == out["advantages"].shape[0]
    adv = out["advantages"].view(-1, GROUP)
    assert bool((adv.abs().sum(dim=1) > 0).all())
    prompts = [trainer.train_dataset[r]["prompt"] for r in (0, 2, 4, 5)]
    want = [trainer.processing_class(p)["input_ids"] for p in prompts]
    got = [
        out["prompt_ids"][i][out["prompt_mask"][i].bool()].tolist()
        for i in range(0, 4 * GROUP, GROUP)
    ]
    assert got == want
    mask = out["completion_mask"]
    assert int(out["num_items_in_batch"]) == int(mask.sum())
    # TRL logged the step's own round only; the reward functions never saw the row column.
    assert len(trainer._metrics["train"]["reward"]) == 1
    assert all(ROW_COLUMN not in cols for cols in reward.columns)


def test_rounds_stop_at_max_rounds(tmp_path) -> None:
    trainer, reward, ids = _trainer(tmp_path, flat_rows=set(range(8)), rounds=3)
    out = trainer._generate_and_score_completions(_step_inputs(trainer, range(4)))
    # 4 + 4 + 4 prompts in 3 rounds, wrapping round the 8-row dataset; nothing had spread.
    assert [sorted(set(c), key=ids.index) for c in reward.calls] == [
        ids[0:4],
        ids[4:8],
        ids[0:4],
    ]
    plan = trainer.kk_last_fill
    assert (plan.rounds, plan.groups_generated, plan.zero_std_dropped) == (3, 12, 8)
    assert not plan.filled and plan.frac_zero_std_trained == 1.0
    assert out["prompt_ids"].shape[0] == 4 * GROUP  # the step's own batch, trained as is


def _lr(step: int) -> float:
    return 1e-3 * step / 4


def _train(tmp_path, rounds):
    from transformers import TrainerCallback

    fills = []

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            fills.append(trainer.kk_last_fill)

    trainer, reward, _ = _trainer(
        tmp_path,
        flat_rows={0, 1, 3},
        rounds=rounds,
        prompts=2,
        max_steps=4,
        callbacks=[Record()],
        trainer_kwargs={"lr_at": _lr},
    )
    trainer.train()
    lrs = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    return trainer, reward, fills, lrs


def test_lr_schedule_and_global_step_do_not_see_extra_rounds(tmp_path) -> None:
    on, reward, fills, lrs_on = _train(tmp_path / "on", rounds=3)
    # Step 1 (rows 0, 1 flat) refills from rows 2 (spread), 3 (flat), then 4; step 2 (rows 2,
    # 3) from row 4; steps 3 and 4 (rows 4-7) need nothing.
    assert [f.rounds for f in fills] == [3, 2, 1, 1] and len(reward.calls) == 7
    off, _, _, lrs_off = _train(tmp_path / "off", rounds=None)
    assert on.state.global_step == off.state.global_step == 4
    assert lrs_on == lrs_off == pytest.approx([_lr(s) for s in (1, 2, 3, 4)])
    assert on.lr_scheduler.last_epoch == 4
    steps = {int(s["step"]) for s in on.optimizer.state_dict()["state"].values()}
    assert steps == {4}  # one optimizer step per global step, however many rounds
    assert all(f.filled for f in fills)
    assert off.kk_last_fill is None and ROW_COLUMN not in off.train_dataset.column_names


def test_trl_internals_are_checked_at_build(tmp_path, monkeypatch) -> None:
    trainer, _, _ = _trainer(tmp_path, flat_rows=set())
    check_dynamic_sampling_hooks(trainer)  # TRL 1.16 as installed: fine
    import trl

    def other_signature(self, inputs, prompts):  # what a future TRL might have
        return None

    monkeypatch.setattr(trl.GRPOTrainer, "_calculate_rewards", other_signature)
    with pytest.raises(TrlInternalsError) as err:
        check_dynamic_sampling_hooks(trainer)
    msg = str(err.value)
    assert msg.startswith(f"trl {trl.__version__}: ") and "\n" not in msg
    assert "_calculate_rewards is not" in msg and "trl 1.16.0" in msg
