"""Benchmark: ``stages.evaluation.heldout.evaluate`` throughput on the tiny model.

Completions per second.

    .venv/bin/python benchmarks/bench_eval.py [--n 64] [--max-new-tokens 400] [--repeats 3]

Uses the shipped / cached pre-trained tiny base model when one is found (the model
``kk-train`` evaluates), else a randomly initialised model of the same shape (then every
completion runs to ``--max-new-tokens``, the worst case). Puzzles: the default config's
held-out 3-person set. Reference figure: the same generation one prompt at a time
(batch size 1), the naive loop batching replaces. Median of ``--repeats`` runs each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _model() -> tuple[object, object, str]:
    import torch

    from stages.model_io import load_model_and_tokenizer
    from stages.stage_inputs import default_cache_dir
    from stages.tiny import base
    from stages.tiny.model import build_model, cfg_key, resolve_cfg
    from stages.tiny.tokenizer import build_tokenizer

    cfg = resolve_cfg({})
    path = base.shipped_model(cfg)
    if path is None:
        cand = Path(default_cache_dir()) / f"tiny-{cfg_key(cfg)}"
        if (cand / base.DONE_FILE).is_file():
            path = cand
    if path is not None:
        model, tok = load_model_and_tokenizer(path)
        return model, tok, f"pre-trained tiny base model ({path})"
    tok = build_tokenizer(None)
    torch.manual_seed(0)
    model = build_model(cfg, tok)
    return model, tok, "random-init tiny model, default shape (no cached base model found)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=64, help="puzzles")
    p.add_argument("--max-new-tokens", type=int, default=400)
    p.add_argument("--batch-sizes", default="1,16,64")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import curriculum
    from curriculum import data as cdata
    from stages.evaluation.heldout import evaluate
    from stages.tiny.model import count_parameters

    cfg = curriculum.load_config(None, [f"eval.n={args.n}", "eval.people=[3]"])
    records = cdata.heldout_records(cfg)
    model, tok, what = _model()
    print(f"model: {what}, {count_parameters(model):,} parameters; {len(records)} puzzles; "
          f"max_new_tokens {args.max_new_tokens}; torch threads {torch.get_num_threads()}")  # fmt: skip
    results = {}
    for bs in (int(x) for x in args.batch_sizes.split(",")):
        recs = records if bs > 1 else records[: max(4, args.n // 8)]  # batch 1 is slow: subset
        walls, tokens = [], 0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = evaluate(model, tok, recs, max_new_tokens=args.max_new_tokens, batch_size=bs)
            walls.append(time.perf_counter() - t0)
            tokens = sum(s.length for s in res.samples)
        med = statistics.median(walls)
        results[bs] = {
            "completions": len(recs),
            "median_s": round(med, 2),
            "completions_per_s": round(len(recs) / med, 2),
            "tokens_per_s": round(tokens / med, 1),
            "mean_length": round(tokens / len(recs), 1),
            "truncation": res.overall.truncation.value,
            "strict": res.overall.strict.value,
            "runs_s": [round(w, 2) for w in walls],
        }
        print(f"batch {bs:>3}: {results[bs]}")
    print(json.dumps({"model": what, "load_avg_1min": round(os.getloadavg()[0], 2),
                      "results": results}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
