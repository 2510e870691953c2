"""Pre-training documents of the tiny model: prompt + compact trace + answer, in layouts.

Each document is ``prompt_for(record, tokenizer, prefill_think)`` followed by a completion:
the compact trace (``kk_puzzles.compact_trace``) and the answer, then EOS. Only a share
(``exact_format_fraction``) of completions use the exact Logic-RL layout
``<think>...</think><answer>...</answer>``; the others use near misses (a newline between
``</think>`` and ``<answer>``, no answer tags, other tag spellings, text after
``</answer>``, an unclosed answer), so the base model samples the exact format only a
minority of the time and GRPO stage 1 has something to teach. Fresh puzzles every batch
(one person count per batch, drawn by weight).

>>> completion_for({"names": ["Zoey", "Bob"], "solution": [True, False],
...                 "statements": "(('lying', 1), ('lying', 0))",
...                 "knight_knave": {"knight": "knight", "knave": "knave", "a_knight": "a knight",
...                                  "a_knave": "a knave"}}, "exact", prefilled=True)[-69:]
'ok\\n</think><answer>\\n(1) Zoey is a knight\\n(2) Bob is a knave\\n</answer>'
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import kk_puzzles
from kk_puzzles.compact_trace import compact_trace
from stages.model_io import prompt_for

# Completion layouts and their share of the non-exact documents. After "</think>" the
# next token is "\n" in most documents, so greedy decoding of the base model picks a
# near-miss layout while sampling at temperature 1 hits the exact one a minority of times.
NEAR_MISS_LAYOUTS: dict[str, float] = {
    "newline": 0.40,  # "</think>\n<answer>": passes the instruct check, fails the strict one
    "no_tags": 0.20,  # "</think>\nAnswer:\n(1) ..."
    "trailing": 0.15,  # exact, then text after </answer>
    "other_tags": 0.15,  # "<ans> ... </ans>"
    "unclosed": 0.10,  # "<answer>" never closed
}
LAYOUTS = ("exact", *NEAR_MISS_LAYOUTS)


def _answer_lines(record: Mapping[str, Any]) -> str:
    text = record.get("solution_text_format")
    if text:
        return str(text)
    kk = record["knight_knave"]
    return "\n".join(
        f"({i}) {n} is {kk['a_knight'] if k else kk['a_knave']}"
        for i, (n, k) in enumerate(zip(record["names"], record["solution"], strict=True), 1)
    )


def completion_for(record: Mapping[str, Any], layout: str, prefilled: bool) -> str:
    """The completion text of ``record`` in ``layout`` (EOS not included)."""
    head = "\n" if prefilled else "<think>\n"
    body = head + compact_trace(record) + "\n</think>"
    answer = _answer_lines(record)
    if layout == "exact":
        return f"{body}<answer>\n{answer}\n</answer>"
    if layout == "newline":
        return f"{body}\n<answer>\n{answer}\n</answer>"
    if layout == "no_tags":
        return f"{body}\nAnswer:\n{answer}"
    if layout == "trailing":
        return f"{body}<answer>\n{answer}\n</answer>\nSo the answer is: {answer}"
    if layout == "other_tags":
        return f"{body}<ans>\n{answer}\n</ans>"
    if layout == "unclosed":
        return f"{body}<answer>\n{answer}"
    raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")


def pick_layout(rng: random.Random, exact_fraction: float) -> str:
    if rng.random() < exact_fraction:
        return "exact"
    names = list(NEAR_MISS_LAYOUTS)
    return rng.choices(names, weights=[NEAR_MISS_LAYOUTS[n] for n in names])[0]


class DocumentStream:
    """Fresh tokenised batches of documents, deterministic in (cfg seed, step).

    Every puzzle lies outside the reserved evaluation slice (``kk_puzzles.reserved``), so
    no held-out set ever contains a structure the model was pre-trained on."""

    def __init__(
        self, cfg: Mapping[str, Any], tokenizer: Any, exclude_ids: Sequence[str] = ()
    ) -> None:
        self.cfg = cfg
        self.tok = tokenizer
        self.exclude = set(exclude_ids)
        self.counts = list(cfg["people"])
        self.weights = [cfg["people"][c] for c in self.counts]
        self._group: list = []
        self._group_index = -1

    GROUP = 4

    def records(self, step: int) -> list[dict]:
        n = int(self.cfg["batch_size"])
        rng = random.Random(f"{self.cfg['seed']}:batch:{step}")
        people = rng.choices(self.counts, weights=self.weights)[0]
        seed = int(self.cfg["seed"]) * 1_000_003 + step
        try:
            return kk_puzzles.generate(
                people, n, seed=seed, depth=self.cfg["depth"], width=self.cfg["width"],
                role_words=self.cfg["role_words"], exclude_ids=self.exclude,
                reserved="exclude", cast=self.cfg["cast"],
            )  # fmt: skip
        except ValueError:  # small puzzle spaces (2 people): allow repeats across calls
            out: list[dict] = []
            k = 0
            while len(out) < n:
                out += kk_puzzles.generate(
                    people, min(64, n - len(out)), seed=seed * 7 + k, depth=self.cfg["depth"],
                    width=self.cfg["width"], role_words=self.cfg["role_words"],
                    reserved="exclude", cast=self.cfg["cast"],
                )  # fmt: skip
                k += 1
            return out[:n]

    def texts(self, step: int) -> list[tuple[str, str]]:
        rng = random.Random(f"{self.cfg['seed']}:layout:{step}")
        docs = []
        for rec in self.records(step):
            prefilled = rng.random() < float(self.cfg["prefill_fraction"])
            layout = pick_layout(rng, float(self.cfg["exact_format_fraction"]))
            docs.append(
                (prompt_for(rec, self.tok, prefilled), completion_for(rec, layout, prefilled))
            )
        return docs

    def batch(self, step: int) -> dict[str, Any]:
        """Batch ``step``: documents of ``GROUP`` consecutive steps are made together and
        sorted by length, so each batch holds documents of similar length (less padding)."""
        import torch

        group, pos = divmod(step, self.GROUP)
        if self._group_index != group:
            docs = [d for k in range(self.GROUP) for d in self.texts(group * self.GROUP + k)]
            tok = self.tok
            prompts = tok([p for p, _ in docs], add_special_tokens=False)["input_ids"]
            comps = tok([c for _, c in docs], add_special_tokens=False)["input_ids"]
            pairs = sorted(zip(prompts, comps, strict=True), key=lambda pc: len(pc[0]) + len(pc[1]))
            n = len(pairs) // self.GROUP
            chunks = [pairs[i * n : (i + 1) * n] for i in range(self.GROUP)]
            random.Random(f"{self.cfg['seed']}:order:{group}").shuffle(chunks)
            self._group, self._group_index = chunks, group
        pairs = self._group[pos]
        tok = self.tok
        seqs, labels = [], []
        for p, c in pairs:
            c = [*c, tok.eos_token_id]
            seqs.append(p + c)
            labels.append([-100] * len(p) + c)
        width = max(len(s) for s in seqs)
        pad = tok.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        lab = torch.full((len(seqs), width), -100, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (s, y) in enumerate(zip(seqs, labels, strict=True)):
            ids[i, : len(s)] = torch.tensor(s)
            lab[i, : len(y)] = torch.tensor(y)
            mask[i, : len(s)] = 1
        return {"input_ids": ids, "labels": lab, "attention_mask": mask}
