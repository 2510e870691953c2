"""stages.temperature.set_temperature on a real TRL 1.16 GRPOTrainer.

Generation must sample from softmax(logits / T) at the new T, and the log-probabilities TRL
trains on (policy and reference) must use the same T.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from tiny_trainer import make_tiny_trainer  # noqa: E402

from stages.temperature import (  # noqa: E402
    TrlInternalsError,
    check_fused_heads,
    get_temperatures,
    set_temperature,
)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    t = make_tiny_trainer(tmp_path_factory.mktemp("temp"), beta=0.1, max_completion_length=1)
    # Spread the logits (random init gives near-uniform ones) so temperatures differ visibly.
    with torch.no_grad():
        t.model.lm_head.weight.mul_(8.0)
        t.ref_model.lm_head.weight.copy_(t.model.lm_head.weight)
    return t


def _prompt_ids(trainer, n):
    text = trainer.train_dataset[0]["prompt"]
    ids = trainer.processing_class(text, add_special_tokens=False)["input_ids"]
    return [list(ids) for _ in range(n)], ids


def _next_token_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].float()


def test_every_place_is_updated(trainer):
    before = get_temperatures(trainer)
    assert before["generation_config"] == pytest.approx(1.0)
    assert before["policy_head"] == pytest.approx(1.0)
    assert before["ref_head"] == pytest.approx(1.0)
    set_temperature(trainer, 0.45)
    after = get_temperatures(trainer)
    assert after["trainer"] == after["generation_config"] == after["generation_kwargs"] == 0.45
    assert after["policy_head"] == after["ref_head"] == 0.45
    assert trainer.args.temperature == 0.45
    set_temperature(trainer, 1.0)


def test_bad_value_rejected(trainer):
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            set_temperature(trainer, bad)
    assert get_temperatures(trainer)["generation_config"] == 1.0


def test_generation_samples_from_tempered_softmax(trainer, monkeypatch):
    """The probabilities handed to the sampler are softmax(logits / T) for the new T."""
    seen = []
    real = torch.multinomial

    def spy(probs, *args, **kwargs):
        seen.append(probs.detach().clone())
        return real(probs, *args, **kwargs)

    monkeypatch.setattr(torch, "multinomial", spy)
    prompt_ids, ids = _prompt_ids(trainer, 2)
    logits = _next_token_logits(trainer.model, ids)
    for temp in (0.3, 2.5):
        set_temperature(trainer, temp)
        seen.clear()
        trainer._generate_single_turn(prompt_ids, None, {}, trainer.num_generations)
        assert seen, "generation did not sample"
        got = seen[0][0]
        want = torch.softmax(logits / temp, dim=-1)
        assert torch.allclose(got, want, atol=1e-5), temp
        other = torch.softmax(logits / 1.0, dim=-1)
        assert (got - other).abs().sum() > 0.05  # really not the T=1 distribution
    set_temperature(trainer, 1.0)


def test_empirical_token_distribution_follows_temperature(trainer):
    """Sampled first tokens: their spread grows with T (entropy of the empirical histogram)."""
    prompt_ids, ids = _prompt_ids(trainer, 400)
    logits = _next_token_logits(trainer.model, ids)

    def empirical(temp):
        set_temperature(trainer, temp)
        torch.manual_seed(0)
        out, _ = trainer._generate_single_turn(prompt_ids, None, {}, trainer.num_generations)
        counts = torch.zeros_like(logits)
        for seq in out:
            counts[seq[0]] += 1
        return counts / counts.sum()

    def tv(p, q):
        return 0.5 * (p - q).abs().sum().item()

    cold, hot = empirical(0.3), empirical(3.0)
    p_cold = torch.softmax(logits / 0.3, -1)
    p_hot = torch.softmax(logits / 3.0, -1)
    # Each histogram is close to its own temperature's distribution, far from the other's.
    assert tv(cold, p_cold) < tv(cold, p_hot)
    assert tv(hot, p_hot) < tv(hot, p_cold)
    set_temperature(trainer, 1.0)


def test_log_probs_use_new_temperature(trainer):
    """TRL's per-token log-probs (policy and reference) equal log_softmax(logits / T)."""
    _, ids = _prompt_ids(trainer, 1)
    input_ids = torch.tensor([ids])
    mask = torch.ones_like(input_ids)
    keep = 5
    with torch.no_grad():
        logits = trainer.model(input_ids=input_ids).logits[0, -keep - 1 : -1].float()
    targets = input_ids[0, -keep:]
    for temp in (0.5, 1.7):
        set_temperature(trainer, temp)
        want = torch.log_softmax(logits / temp, -1).gather(1, targets[:, None])[:, 0]
        with torch.no_grad():
            got, _, _ = trainer._get_per_token_logps_and_entropies(
                trainer.model, input_ids, mask, keep
            )
            ref, _, _ = trainer._get_per_token_logps_and_entropies(
                trainer.ref_model, input_ids, mask, keep
            )
        assert torch.allclose(got[0], want, atol=1e-4), temp
        assert torch.allclose(ref[0], want, atol=1e-4), temp
    set_temperature(trainer, 1.0)


def test_fused_heads_are_found_on_a_real_trainer(trainer):
    """TRL 1.16 patches its fused log-prob head where set_temperature looks (policy and ref)."""
    check_fused_heads(trainer)


def test_a_missing_fused_head_stops_the_run_naming_the_trl_version():
    import trl

    from stages.errors import RunSetupError

    unpatched = SimpleNamespace(model=torch.nn.Linear(2, 2), ref_model=None)
    with pytest.raises(TrlInternalsError) as err:
        check_fused_heads(unpatched)
    message = str(err.value)
    assert f"trl {trl.__version__}:" in message and "model" in message
    assert "\n" not in message  # kk-train prints it as one line
    assert isinstance(err.value, RunSetupError)  # ... as it does every RunSetupError
