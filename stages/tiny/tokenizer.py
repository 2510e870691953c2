"""Word-level fast tokenizer for the puzzle language of the embedded tiny model.

Each word, digit or punctuation mark is one token, and a single leading space is part of
the token (``" Zoey"`` and ``"Zoey"`` are different entries), so decoding is plain
concatenation and restores the text exactly: ``"(1) Zoey is a knight"`` never comes back
as ``"( 1 ) Zoey"``. The four tags are ordinary vocabulary entries, not special tokens,
so ``skip_special_tokens=True`` (what TRL decodes with) keeps them. Only ``<unk>``,
``<|endoftext|>`` (EOS) and ``<|pad|>`` are special.

The vocabulary is derived deterministically: a fixed word list (the puzzle language, the
compact trace, the alternative answer layouts used in pre-training) plus every word found
in puzzles that ``kk_puzzles`` renders with a fixed seed for each role-word pair.

>>> tok = build_tokenizer(["Zoey said that Bob is a knave."])
>>> ids = tok("(1) Zoey is a knight\\n(2) Bob is a knave")["input_ids"]
>>> tok.convert_ids_to_tokens(ids)[:6]
['(', '1', ')', ' Zoey', ' is', ' a']
>>> tok.decode(ids)
'(1) Zoey is a knight\\n(2) Bob is a knave'
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

UNK_TOKEN = "<unk>"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = (UNK_TOKEN, EOS_TOKEN, PAD_TOKEN)
TAGS = ("<think>", "</think>", "<answer>", "</answer>")

# Marker written into tokenizer_config.json so load_model_and_tokenizer knows to load the
# fast tokenizer class directly (AutoTokenizer on a Qwen2 folder would rebuild a
# Qwen2Tokenizer with different ids).
TOKENIZER_MARKER = "kk_word_level"
TOKENIZER_FILE = "tokenizer.json"

# One piece per tag / operator / word / digit / punctuation mark, with an optional single
# leading space; any other whitespace character is a piece on its own.
PIECE_PATTERN = r" ?</?(?:think|answer)>| ?(?:<=>|->)| ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]|\s"

# Fixed part of the vocabulary. The puzzle sentences (mem-kk-logic style templates), the
# R1-style instructions, the compact trace and the pre-training answer layouts.
BASE_WORDS = """
a an the A An The is are was were be not no yes and or if If then Then only iff
very special island inhabited by knights knaves knight knave Knights Knaves Knight Knave
always tell truth lie lies tells You you meet inhabitants inhabitant So so who what
said that told stated According to In in words remarked declared was heard saying
expressed As put it asserted mentioned commented statement noted claimed claims says
of s say It it true false ok bad row rows try solution Solution answer Answer answers
identity identities each person people character characters reasoning process here
assistant Assistant user User system System helpful first thinks about mind then
provides with The enclosed within tags respectively i e Now asks solve logical problem
After thinking when finally reach conclusion clearly state think reason step by
let Let s check Check done Done end End final Final result Result therefore Therefore
thus Thus hence Hence because Because ans sol output Output note Note ok OK fine
unknown guess maybe must can cannot be one two three four five six seven eight nine ten
both neither either all none every everyone nobody somebody someone this these those
does do did has have had for from on at as we We I my our your their his her its
consider Consider assume Assume suppose Suppose contradiction leads feasible
pioneer pioneers laggard laggards saint saints sinner sinners hero heros villain villains
angel angels devil devils altruist altruists egoist egoists sage sages fool fools
""".split()

PUNCTUATION = list(".,:;!?'\"()[]{}-=<>/|*+_#&%$@~`^\\")
OPERATORS = ["<=>", "->"]


def words_in(text: str) -> list[str]:
    """Split text into tokenizer pieces (the pre-tokenizer's regex, in Python).

    >>> words_in('(1) Zoey said, "Bob is a knave".')
    ['(', '1', ')', ' Zoey', ' said', ',', ' "', 'Bob', ' is', ' a', ' knave', '"', '.']
    """
    return re.findall(PIECE_PATTERN, text)


def vocabulary(texts: Iterable[str] = ()) -> list[str]:
    """Sorted, deterministic token list: special tokens first, then every piece.

    Every word comes with and without its leading space (and capitalised), digits and
    punctuation likewise, plus every piece found in ``texts``.
    """
    pieces: set[str] = set()
    for word in [*BASE_WORDS, *TAGS, *OPERATORS, *PUNCTUATION, *"0123456789"]:
        for form in {word, word[:1].upper() + word[1:]}:
            pieces.add(form)
            pieces.add(" " + form)
    pieces.update(["\n", " ", "\t"])
    for text in texts:
        for piece in words_in(text):
            word = piece.lstrip(" ")
            pieces.add(word)
            pieces.add(" " + word)
    return [*SPECIAL_TOKENS, *sorted(pieces - set(SPECIAL_TOKENS))]


@functools.lru_cache(maxsize=4)
def puzzle_language_texts(seed: int = 0, per_setting: int = 8) -> tuple[str, ...]:
    """Texts the renderer emits, from puzzles generated with a fixed seed.

    Covers every role-word pair and every name ``kk_puzzles`` exposes, the prompts, the
    solution texts and the compact trace. Used to derive the default vocabulary.
    """
    from kk_puzzles import generate, prompts, render
    from kk_puzzles.compact_trace import compact_trace

    texts: list[str] = [getattr(prompts, "SYSTEM_PROMPT", "")]
    for module in (render, prompts):  # names pool, role-word pairs, templates
        for name in sorted(dir(module)):
            if name.isupper():
                texts.extend(_strings_in(getattr(module, name)))
    role_options = _role_word_options()
    for role_words in role_options:
        for people in range(2, 9):
            records = generate(people, per_setting, seed=seed, role_words=role_words)
            for rec in records:
                texts += [rec["quiz"], rec["solution_text"], rec["solution_text_format"]]
                texts.append(prompts.base_prompt(rec, prefill_think=True))
                texts.append(compact_trace(rec))
                texts.extend(" ".join(map(str, rec["knight_knave"].values())).split())
    return tuple(texts)


def _strings_in(value: Any, depth: int = 0) -> list[str]:
    if isinstance(value, str):
        return [value]
    if depth < 3 and isinstance(value, (list, tuple, set, frozenset)):
        return [s for v in value for s in _strings_in(v, depth + 1)]
    if depth < 3 and isinstance(value, dict):
        return [
            s
            for k, v in value.items()
            for s in (*_strings_in(k, depth + 1), *_strings_in(v, depth + 1))
        ]
    return []


def _role_word_options() -> list[str]:
    """Role-word settings of ``kk_puzzles.generate`` (``"knight/knave"`` at least)."""
    options = ["knight/knave"]
    from kk_puzzles import render

    for pair in render.ROLE_PAIRS:
        if isinstance(pair, str):
            options.append(pair)
        elif isinstance(pair, (list, tuple)) and len(pair) == 2:
            options.append(f"{str(pair[0]).split()[-1]}/{str(pair[1]).split()[-1]}")
    return sorted(set(options))


CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant: {{ m['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def build_tokenizer(texts: Iterable[str] | None = None):  # -> PreTrainedTokenizerFast
    """A PreTrainedTokenizerFast over ``vocabulary(texts)``.

    ``texts=None`` derives the vocabulary from ``puzzle_language_texts()``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    if texts is None:
        texts = puzzle_language_texts()
    vocab = {tok: i for i, tok in enumerate(vocabulary(texts))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated")
    core.decoder = decoders.Fuse()
    return _wrap(core)


def _wrap(core: Any):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token=UNK_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
        padding_side="left",
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.init_kwargs[TOKENIZER_MARKER] = True
    return tok


def is_word_level_folder(path: str | Path) -> bool:
    """True when ``path`` holds a tokenizer written by ``save_tokenizer``."""
    cfg = Path(path) / "tokenizer_config.json"
    if not cfg.is_file():
        return False
    try:
        return bool(json.loads(cfg.read_text()).get(TOKENIZER_MARKER))
    except (OSError, json.JSONDecodeError):
        return False


def save_tokenizer(tok: Any, path: str | Path) -> None:
    """Save the tokenizer files into ``path`` with the word-level marker."""
    tok.init_kwargs[TOKENIZER_MARKER] = True
    tok.save_pretrained(str(path))
    cfg_file = Path(path) / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg[TOKENIZER_MARKER] = True
    # Any loader that honours tokenizer_class gets the fast class, not Qwen2Tokenizer.
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_file.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def load_tokenizer(path: str | Path):  # -> PreTrainedTokenizerFast
    """Load a word-level tokenizer folder with its own class (ids identical to when saved)."""
    from tokenizers import Tokenizer

    core = Tokenizer.from_file(str(Path(path) / TOKENIZER_FILE))
    tok = _wrap(core)
    jinja = Path(path) / "chat_template.jinja"
    cfg_file = Path(path) / "tokenizer_config.json"
    if jinja.is_file():
        tok.chat_template = jinja.read_text()
    elif cfg_file.is_file():
        template = json.loads(cfg_file.read_text()).get("chat_template")
        if template:
            tok.chat_template = template
    return tok


def vocab_digest(tok: Any) -> str:
    """Short hash of the vocabulary (part of the base-model cache key)."""
    items = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]
