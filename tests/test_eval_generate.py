"""evaluate() on a tiny randomly initialised Qwen2 model with the project's word-level tokenizer."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import kk_puzzles  # noqa: E402
import rewards  # noqa: E402
from kk_puzzles import prompts  # noqa: E402
from stages.evaluation.heldout import evaluate, generate_completions, render_prompt  # noqa: E402
from stages.tiny.tokenizer import build_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def records():
    return kk_puzzles.generate(2, 3, seed=5) + kk_puzzles.generate(3, 2, seed=5)


@pytest.fixture(scope="module")
def tiny(records):
    tok = build_tokenizer([prompts.base_prompt(r) + r["solution_text_format"] for r in records])
    cfg = transformers.Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(cfg)
    return model, tok


def test_evaluate_counts_are_consistent(tiny, records):
    model, tok = tiny
    res = evaluate(
        model, tok, records, samples=3, temperature=1.0, max_new_tokens=12, batch_size=4, seed=3
    )
    assert sorted(res.groups) == [2, 3]
    assert res.groups[2].puzzles == 3 and res.groups[3].puzzles == 2
    assert len(res.samples) == 15 and res.overall.completions == 15
    for s in res.samples:
        assert 1 <= s.length <= 12
        assert s.length == 12 or not s.truncated
        sc = rewards.score(s.completion, records[s.index], prefilled_think=True)
        assert sc.kind == s.kind and s.strict == (sc.kind == "correct")
    for p, g in res.groups.items():
        flat = [s for s in res.samples if s.people == p]
        assert g.truncated == sum(s.truncated for s in flat)
        assert g.mean_length == pytest.approx(sum(s.length for s in flat) / len(flat))
        assert g.format_errors == sum(s.kind == "format_error" for s in flat)
        assert g.strict_correct <= g.lenient_correct or g.strict_correct == 0
        assert g.format_error.low <= g.format_error.value <= g.format_error.high
    assert res.baselines[2]["n"] == 3 and res.settings["samples"] == 3
    # same seed, same completions; samples of one puzzle differ at temperature 1 on a random model
    again = evaluate(
        model, tok, records, samples=3, temperature=1.0, max_new_tokens=12, batch_size=4, seed=3
    )
    assert [s.completion for s in again.samples] == [s.completion for s in res.samples]


def test_greedy_repeats_and_matches_unbatched(tiny, records):
    model, tok = tiny
    prompts_ = [render_prompt(r, tok, True) for r in records]
    texts, lengths, _truncs = generate_completions(
        model, tok, prompts_, samples=2, temperature=0.0, max_new_tokens=10, batch_size=5
    )
    assert all(row[0] == row[1] for row in texts)
    # left padding must not change greedy output: batch of 5 == one prompt at a time
    solo, solo_len, _ = generate_completions(
        model, tok, prompts_, samples=1, temperature=0.0, max_new_tokens=10, batch_size=1
    )
    assert [row[0] for row in texts] == [row[0] for row in solo]
    assert [row[0] for row in lengths] == [row[0] for row in solo_len]
    with pytest.raises(ValueError):
        evaluate(model, tok, [], max_new_tokens=4)
    with pytest.raises(ValueError):
        generate_completions(model, tok, prompts_, temperature=-1.0, max_new_tokens=4)
