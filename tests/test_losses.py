"""Signs and values of TRL 1.16's GRPO loss terms on a hand-built batch.

Logic-RL's verl copy once maximised the KL (a sign bug). Here the loss TRL computes is
checked against a hand computation, and one gradient step must (a) pull the policy toward
the reference model through the KL term and (b) raise the log-probability of a completion
with a positive advantage and lower it for a negative one.

Hand formulas (TRL 1.16, ``_compute_loss``, on-policy so the ratio is exactly 1):
    per-token loss = -A_i + beta * (exp(r - p) - (r - p) - 1)      (p, r: policy/ref log-probs)
    loss (dapo)    = sum over completion tokens / number of completion tokens
"""

from __future__ import annotations

import copy
import math

import pytest

torch = pytest.importorskip("torch")

from tiny_trainer import make_tiny_trainer  # noqa: E402

PROMPT = [[5, 9, 14], [7, 21, 3]]
COMPLETION = [[30, 41, 52, 63], [33, 44, 55, 66]]
MASK = [[1, 1, 1, 1], [1, 1, 1, 0]]


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    t = make_tiny_trainer(tmp_path_factory.mktemp("loss"), beta=1.0, loss_type="dapo")
    t.model.train()
    t.current_gradient_accumulation_steps = 1
    return t


def _policy_logps(model, temperature=1.0):
    """Per-token log-probs of the completion tokens, computed independently of TRL."""
    ids = torch.cat([torch.tensor(PROMPT), torch.tensor(COMPLETION)], dim=1)
    logits = model(input_ids=ids).logits[:, len(PROMPT[0]) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(2, torch.tensor(COMPLETION)[..., None])[..., 0]


def _inputs(advantages, ref):
    mask = torch.tensor(MASK)
    return {
        "prompt_ids": torch.tensor(PROMPT),
        "prompt_mask": torch.ones(len(PROMPT), len(PROMPT[0]), dtype=torch.long),
        "completion_ids": torch.tensor(COMPLETION),
        "completion_mask": mask,
        "advantages": torch.tensor(advantages, dtype=torch.float32),
        "ref_per_token_logps": ref,
        "num_items_in_batch": mask.sum(),
    }


def _hand_loss(lp, ref, advantages, beta):
    total, n, kl_sum = 0.0, 0, 0.0
    for i, row in enumerate(MASK):
        for t, m in enumerate(row):
            if not m:
                continue
            d = float(ref[i, t]) - float(lp[i, t])
            kl = math.exp(d) - d - 1.0
            total += -advantages[i] + beta * kl
            kl_sum += kl
            n += 1
    return total / n, kl_sum / n


def _sgd_step(trainer, inputs, lr):
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    with torch.no_grad():
        for p in trainer.model.parameters():
            if p.grad is not None:
                p -= lr * p.grad
    return float(loss.detach())


def _masked_sums(lp):
    m = torch.tensor(MASK, dtype=lp.dtype)
    return (lp * m).sum(1)


def test_loss_value_matches_hand_computation(trainer):
    with torch.no_grad():
        lp = _policy_logps(trainer.model)
    ref = lp + torch.tensor([[0.3, -0.2, 0.1, 0.4], [-0.5, 0.2, 0.0, 0.9]])
    adv = [0.7, -1.3]
    trainer.beta = 0.25
    try:
        with torch.no_grad():
            loss = float(trainer._compute_loss(trainer.model, _inputs(adv, ref)))
    finally:
        trainer.beta = 1.0
    want, want_kl = _hand_loss(lp, ref, adv, 0.25)
    assert loss == pytest.approx(want, abs=1e-5)
    assert trainer._metrics["train"]["kl"][-1] == pytest.approx(want_kl, abs=1e-5)
    assert want_kl > 0  # the k3 estimator is never negative


def test_kl_term_pulls_toward_reference(trainer):
    model_state = copy.deepcopy(trainer.model.state_dict())
    try:
        with torch.no_grad():
            lp0 = _policy_logps(trainer.model)
        # Reference more likely than the policy on row 0, less likely on row 1.
        ref = lp0 + torch.tensor([[0.8] * 4, [-0.8] * 4])
        inputs = _inputs([0.0, 0.0], ref)  # no policy signal: only the KL term acts
        _, kl_before = _hand_loss(lp0, ref, [0.0, 0.0], 1.0)
        _sgd_step(trainer, inputs, lr=0.05)
        with torch.no_grad():
            lp1 = _policy_logps(trainer.model)
        _, kl_after = _hand_loss(lp1, ref, [0.0, 0.0], 1.0)
        assert kl_after < kl_before  # minimising the loss shrinks the KL (not maximises it)
        moved = _masked_sums(lp1) - _masked_sums(lp0)
        assert moved[0] > 0 > moved[1]  # each row moved toward its reference
    finally:
        trainer.model.load_state_dict(model_state)


def test_policy_term_follows_advantage_sign(trainer):
    model_state = copy.deepcopy(trainer.model.state_dict())
    trainer.beta = 0.0
    try:
        with torch.no_grad():
            lp0 = _policy_logps(trainer.model)
        loss = _sgd_step(trainer, _inputs([1.0, -1.0], None), lr=0.05)
        # On-policy ratio 1: loss = -(4 * 1 + 3 * (-1)) / 7 tokens.
        assert loss == pytest.approx(-(4 - 3) / 7, abs=1e-6)
        with torch.no_grad():
            lp1 = _policy_logps(trainer.model)
        moved = _masked_sums(lp1) - _masked_sums(lp0)
        assert moved[0] > 0  # positive advantage: completion made more likely
        assert moved[1] < 0  # negative advantage: less likely
    finally:
        trainer.beta = 1.0
        trainer.model.load_state_dict(model_state)


def test_grpo_loss_type_averages_per_sequence(trainer):
    """loss_type=grpo: mean over sequences of each sequence's token mean (hand computed)."""
    with torch.no_grad():
        lp = _policy_logps(trainer.model)
    trainer.beta, trainer.loss_type = 0.0, "grpo"
    try:
        with torch.no_grad():
            loss = float(trainer._compute_loss(trainer.model, _inputs([2.0, -0.5], lp)))
    finally:
        trainer.beta, trainer.loss_type = 1.0, "dapo"
    assert loss == pytest.approx(((-2.0 * 4) / 4 + (0.5 * 3) / 3) / 2, abs=1e-6)
