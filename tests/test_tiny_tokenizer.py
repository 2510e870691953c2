"""Word-level tokenizer of the tiny model: coverage, exact round trips, non-special tags, reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kk_puzzles
from kk_puzzles.compact_trace import compact_trace
from stages.model_io import prompt_for
from stages.tiny.corpus import LAYOUTS, completion_for
from stages.tiny.tokenizer import (
    EOS_TOKEN,
    PAD_TOKEN,
    TAGS,
    UNK_TOKEN,
    build_tokenizer,
    is_word_level_folder,
    load_tokenizer,
    save_tokenizer,
    vocabulary,
    words_in,
)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_answer_lines_round_trip_with_normal_spacing(tok) -> None:
    text = "(1) Zoe is a knight\n(2) Liam is a knave\n(3) Mia is a knight"
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text
    assert tok.convert_ids_to_tokens(ids)[:4] == ["(", "1", ")", " Zoe"]


def test_every_name_and_role_pair_is_covered_and_round_trips(tok) -> None:
    vocab = tok.get_vocab()
    for name in kk_puzzles.NAMES:
        assert " " + name in vocab, name
    for pair in kk_puzzles.ROLE_PAIRS:
        recs = kk_puzzles.generate({2: 1, 3: 1, 4: 1}, 12, seed=3, role_words=pair)
        for rec in recs:
            for prefilled in (True, False):
                for layout in LAYOUTS:
                    text = prompt_for(rec, tok, prefilled) + completion_for(rec, layout, prefilled)
                    ids = tok(text)["input_ids"]
                    assert tok.unk_token_id not in ids, [
                        t for t in words_in(text) if t not in vocab
                    ]
                    assert tok.decode(ids) == text


def test_tags_are_ordinary_tokens_that_survive_skip_special_tokens(tok) -> None:
    special = set(tok.all_special_ids)
    for tag in TAGS:
        ids = tok(tag)["input_ids"]
        assert len(ids) == 1 and ids[0] not in special
    assert {tok.eos_token, tok.pad_token, tok.unk_token} == {EOS_TOKEN, PAD_TOKEN, UNK_TOKEN}
    text = "<think> Zoe knight : ok </think><answer> (1) Zoe is a knight </answer>"
    ids = tok(text)["input_ids"] + [tok.eos_token_id, tok.pad_token_id, tok.pad_token_id]
    assert tok.batch_decode([ids], skip_special_tokens=True) == [text]
    assert tok.decode(ids, skip_special_tokens=False).endswith(EOS_TOKEN + PAD_TOKEN + PAD_TOKEN)


def test_unknown_words_map_to_unk_and_nothing_crashes(tok) -> None:
    ids = tok("Zoe is a wizard ☃")["input_ids"]
    assert ids.count(tok.unk_token_id) == 2
    assert tok("")["input_ids"] == []


def test_save_reload_gives_identical_ids(tok, tmp_path: Path) -> None:
    rec = kk_puzzles.generate(3, 1, seed=8)[0]
    text = prompt_for(rec, tok, True) + completion_for(rec, "exact", True)
    save_tokenizer(tok, tmp_path)
    assert is_word_level_folder(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.get_vocab() == tok.get_vocab()
    assert (again.eos_token_id, again.pad_token_id) == (tok.eos_token_id, tok.pad_token_id)
    assert again.chat_template == tok.chat_template
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_vocabulary_is_deterministic_and_specials_first() -> None:
    texts = ['Zoe said, "Liam is a knave."', compact_trace(kk_puzzles.generate(2, 1, seed=1)[0])]
    a, b = vocabulary(texts), vocabulary(list(reversed(texts)))
    assert a == b
    assert a[:3] == [UNK_TOKEN, EOS_TOKEN, PAD_TOKEN]
    assert " Zoe" in a and "Zoe" in a


def test_chat_template_renders_messages(tok) -> None:
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}]
    out = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert out == "S\nUser: Q?\nAssistant:"
