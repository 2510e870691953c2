"""Where the tiny model's compact traces first go wrong, on the run's held-out puzzles.

    .venv/bin/kk-eval --model stages/tiny/assets/tiny_base --people 3 --n 200 \\
        --save-completions --out /tmp/base-eval
    .venv/bin/python benchmarks/trace_errors.py /tmp/base-eval/completions-tiny_base.jsonl

Each completion's reasoning is compared line by line with the puzzle's reference trace
(``kk_puzzles.compact_trace``, what the base was pre-trained on); the first line that
differs is put in one class, by the first field of the line that differs:

    <row restated> : <speaker> <role> : <claim, postfix, with each leaf's lookup> ; <verdict>

- *row*: the candidate assignment restated wrong; *speaker*: wrong speaker or role;
- *claim translated*: the claim's names, claimed roles or operators differ (the quiz's
  sentence read wrong), whatever the truth values;
- *lookup*: same claim, but a leaf's role looked up in the row wrong;
- *truth value*: same claim and lookups, a leaf or operator truth value wrong;
- *verdict*: the claim's value, role or ok/bad at the end of the line wrong.
Also *stopped early* (every line right, too few of them) and *trace right* (all lines).
The held-out set is the one ``--config`` (default configs/default.yaml) defines.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from curriculum.config import default_config_path, load_config  # noqa: E402
from curriculum.data import heldout_records  # noqa: E402
from kk_puzzles.compact_trace import compact_trace, matching_lines, trace_lines  # noqa: E402
from rewards.parsing import think_block  # noqa: E402

TRUTH = ("true", "false")


def _claim_skeleton(words: list[str]) -> list[str]:
    """The claim's words without truth values and without each leaf's looked-up role."""
    out, skip = [], False
    for w in words:
        if skip:  # the looked-up role right after "="
            skip = False
            continue
        if w == "=":
            skip = True
            continue
        if w not in TRUTH:
            out.append(w)
    return out


def _lookups(words: list[str]) -> list[str]:
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == "="]


def first_error(got: str, want: str) -> str:
    """The class of the first differing field of two trace lines (see the module doc)."""
    g, w = got.split(" : "), want.split(" : ")
    if len(g) != 3 or " ; " not in g[2]:
        return "malformed line"
    if g[0] != w[0]:
        return "row restated"
    if g[1] != w[1]:
        return "speaker"
    (g_claim, g_verdict), (w_claim, w_verdict) = g[2].split(" ; ", 1), w[2].split(" ; ", 1)
    gw, ww = g_claim.split(), w_claim.split()
    if _claim_skeleton(gw) != _claim_skeleton(ww):
        return "claim translated"
    if _lookups(gw) != _lookups(ww):
        return "lookup"
    if gw != ww:
        return "truth value"
    return "verdict" if g_verdict != w_verdict else "malformed line"


def classify(completion: str, record: dict) -> str:
    ref = compact_trace(record).splitlines()
    got = trace_lines(think_block(completion, prefilled_think=True))  # kk-eval prefills <think>
    k = matching_lines(got, ref)
    if k < min(len(got), len(ref)):
        return first_error(got[k], ref[k])
    return "trace right" if len(got) >= len(ref) else "stopped early"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("completions", type=Path, help="kk-eval --save-completions JSONL")
    ap.add_argument("--config", type=Path, default=default_config_path())
    args = ap.parse_args()
    records = {r["id"]: r for r in heldout_records(load_config(args.config))}
    counts: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    with args.completions.open() as fh:
        for line in fh:
            row = json.loads(line)
            rec = records.get(row["record_id"])
            if rec is None:
                raise SystemExit(f"trace_errors: {row['record_id']} is not in the held-out set")
            counts[rec["people"]][classify(row["completion"], rec)] += 1
    for people, c in sorted(counts.items()):
        n = sum(c.values())
        parts = ", ".join(f"{k} {v} ({v / n:.0%})" for k, v in c.most_common())
        print(f"{people} people, {n} completions: {parts}")


if __name__ == "__main__":
    main()
