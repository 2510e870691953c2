"""The embedded tiny base model: micro pre-training end to end, reload, cache, layouts, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

import kk_puzzles
import rewards
from stages import model_io
from stages.tiny import base, corpus, measure, pretrain
from stages.tiny import model as tiny_model

# A micro model: a few seconds of pre-training on two cores.
MICRO = {
    "hidden_size": 32,
    "layers": 1,
    "heads": 2,
    "kv_heads": 2,
    "intermediate_size": 64,
    "steps": 3,
    "batch_size": 4,
    "warmup_steps": 1,
    "people": {2: 1.0, 3: 1.0},
    "threads": 1,
}


@pytest.fixture(scope="module")
def micro_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    seen: list[tuple[int, int, str]] = []
    path = base.ensure_base_model(
        MICRO, tmp_path_factory.mktemp("cache"), progress=lambda *a: seen.append(a)
    )
    assert [s[0] for s in seen] == [1, 2, 3] and all(s[1] == 3 for s in seen)
    return path


def test_micro_base_model_builds_loads_and_generates(micro_dir: Path) -> None:
    import torch

    assert (micro_dir / base.DONE_FILE).is_file()
    assert micro_dir.name == f"tiny-{tiny_model.cfg_key(MICRO)}"
    model, tok = model_io.load_model_and_tokenizer(micro_dir)
    from transformers import PreTrainedTokenizerFast

    assert isinstance(tok, PreTrainedTokenizerFast) and model_io.is_tiny_tokenizer(tok)
    assert model.config.tie_word_embeddings and model.config.hidden_size == 32
    assert model.config.vocab_size == len(tok)
    rec = kk_puzzles.generate(2, 1, seed=3)[0]
    prompt = model_io.prompt_for(rec, tok, True)
    assert prompt.endswith("Assistant: <think>") and rec["quiz"] in prompt
    enc = tok(prompt, return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(**enc, max_new_tokens=5, do_sample=True, pad_token_id=tok.pad_token_id)
    assert out.shape[1] <= enc["input_ids"].shape[1] + 5
    # Loading again gives bit-identical logits.
    again, tok2 = model_io.load_model_and_tokenizer(micro_dir)
    with torch.no_grad():
        a = model(**enc).logits
        b = again(**enc).logits
    assert torch.equal(a, b)
    assert tok2(prompt)["input_ids"] == tok(prompt)["input_ids"]


def test_cache_is_reused_without_training(micro_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("pre-trained again")

    monkeypatch.setattr(base, "pretrain", boom)
    stamp = (micro_dir / "model.safetensors").stat().st_mtime_ns
    assert base.ensure_base_model(dict(MICRO), micro_dir.parent) == micro_dir
    assert (micro_dir / "model.safetensors").stat().st_mtime_ns == stamp
    # threads is a run-time knob: same key; any other change is a different model
    assert tiny_model.cfg_key({**MICRO, "threads": 2}) == tiny_model.cfg_key(MICRO)
    assert tiny_model.cfg_key({**MICRO, "seed": 1}) != tiny_model.cfg_key(MICRO)


def test_pretraining_is_deterministic_and_loss_falls(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    cfg = {**MICRO, "steps": 4}
    s1 = pretrain.pretrain(cfg, tmp_path / "a")
    s2 = pretrain.pretrain(cfg, tmp_path / "b")
    w1 = load_file(str(tmp_path / "a" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert s1["steps"] == s2["steps"] == 4 and s1["tokens"] == s2["tokens"] > 0
    info = json.loads((tmp_path / "a" / "pretrain_info.json").read_text())
    assert info["steps"] == 4 and info["parameters"] == s1["parameters"]


def test_failed_build_leaves_nothing_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(cfg, out, **kwargs):
        Path(out, "partial.bin").write_text("x")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(base, "pretrain", broken)
    with pytest.raises(RuntimeError):
        base.ensure_base_model({**MICRO, "seed": 7}, tmp_path)
    # only the (empty) build lock stays, for the next build to take
    key = tiny_model.cfg_key({**MICRO, "seed": 7})
    assert [p.name for p in tmp_path.iterdir()] == [f"tiny-{key}.lock"]
    assert (tmp_path / f"tiny-{key}.lock").read_bytes() == b""


def test_bad_config_is_one_line_error() -> None:
    with pytest.raises(tiny_model.TinyConfigError, match=r"unknown model\.tiny key"):
        tiny_model.resolve_cfg({"hiden_size": 3})
    with pytest.raises(tiny_model.TinyConfigError, match="divisible"):
        tiny_model.resolve_cfg({"hidden_size": 100, "heads": 3})
    with pytest.raises(tiny_model.TinyConfigError, match="people"):
        tiny_model.resolve_cfg({"people": {1: 1.0}})


def test_layouts_exact_is_the_only_strict_format_and_all_read_leniently() -> None:
    recs = kk_puzzles.generate({2: 1, 3: 1}, 20, seed=4)
    for rec in recs:
        truth = tuple(rec["solution"])
        for prefilled in (True, False):
            for layout in corpus.LAYOUTS:
                comp = corpus.completion_for(rec, layout, prefilled)
                sc = rewards.score(comp, rec, prefilled_think=prefilled)
                assert (sc.format > 0) == (layout == "exact"), (layout, sc)
                if layout == "exact":
                    assert sc.kind == "correct"
                assert rewards.parse_answer(comp, rec, lenient=True) == truth, layout


def test_layout_mix_matches_the_configured_exact_fraction() -> None:
    import random

    rng = random.Random(0)
    picks = [corpus.pick_layout(rng, 0.15) for _ in range(4000)]
    share = picks.count("exact") / len(picks)
    assert 0.12 < share < 0.18
    assert set(picks) == set(corpus.LAYOUTS)


def test_prompt_for_other_tokenizers_uses_their_chat_template() -> None:
    class FakeChat:
        chat_template = "x"
        init_kwargs: ClassVar[dict] = {}

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return "|".join(m["role"] for m in messages) + "|gen"

    rec = {"quiz": "Q?", "names": ["A", "B"]}
    assert model_io.prompt_for(rec, FakeChat(), True) == "system|user|gen<think>"
    assert model_io.prompt_for(rec, FakeChat(), False) == "system|user|gen"

    class NoTemplate:
        chat_template = None
        init_kwargs: ClassVar[dict] = {}

    assert model_io.prompt_for(rec, NoTemplate(), True) == kk_puzzles.prompts.base_prompt(rec, True)


def test_measure_base_uses_the_reserved_slice(micro_dir: Path) -> None:
    from kk_puzzles.generator import heldout_puzzles
    from kk_puzzles.reserved import is_reserved

    got = measure.measure_base(micro_dir, n=3, people=[2, 3], batch_size=4)
    assert got["2"]["n"] == 3 and got["3"]["n"] == 3
    row = got["3"]["greedy"]
    assert 0 <= row["exact_format"] <= 1 and row["lenient_ci"][0] <= row["lenient_acc"]
    assert got["2"]["baselines"]["random"] == pytest.approx(0.25)
    recs = heldout_puzzles(3, 3, seed=measure.MEASURE_SEED, cast="fixed")
    assert all(is_reserved(kk_puzzles.parse_statements(r["statements"])) for r in recs)
    assert got["3"]["baselines"]["all_knight"] == sum(all(r["solution"]) for r in recs) / 3
    # two people: the slice holds fewer puzzles than asked, and measuring takes them all
    assert measure.measure_base(micro_dir, n=500, people=[2], batch_size=64)["2"]["n"] < 500


def test_cli_builds_a_model_and_rejects_bad_flags(tmp_path: Path) -> None:
    out = tmp_path / "m"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in MICRO.items() if k != "steps"]
    done = subprocess.run(
        [sys.executable, "-m", "stages.tiny", "--out", str(out), "--steps", "2", *sets],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert json.loads(done.stdout.strip().splitlines()[-1])["steps"] == 2
    bad = subprocess.run(
        [sys.executable, "-m", "stages.tiny", "--out", str(tmp_path / "x"), "--set", "hiden=3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "hiden" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_shipped_asset_is_used_when_config_matches(
    micro_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    dest = tmp_path / "assets" / "tiny_base"
    manifest = base.ship(
        micro_dir, dest, command="python -m stages.tiny ...", measurements={"2": {}}
    )
    assert manifest["sha256"]["model.safetensors"] == base.file_sha256(dest / "model.safetensors")
    assert manifest["config"]["hidden_size"] == 32 and manifest["steps"] == 3
    monkeypatch.setattr(base, "ASSET_DIR", dest)
    assert base.ensure_base_model(dict(MICRO), tmp_path / "cache") == dest
    assert not (tmp_path / "cache").exists()  # nothing built
    assert base.shipped_model({**MICRO, "seed": 5}) is None
    model, tok = model_io.load_model_and_tokenizer(dest)
    assert next(model.parameters()).dtype == torch.float32  # bf16 on disk, fp32 in memory
    ref, _ = model_io.load_model_and_tokenizer(micro_dir)
    enc = tok("User: hi\nAssistant: <think>", return_tensors="pt")
    with torch.no_grad():
        diff = (model(**enc).logits - ref(**enc).logits).abs().max().item()
    assert diff < 0.1  # only bf16 rounding of the weights
