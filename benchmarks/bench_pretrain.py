"""Pre-training speed of the embedded tiny model: tokens/s, seconds per 100 steps, peak memory.

Runs ``stages.tiny.pretrain.pretrain`` for a few steps with the default architecture and batch,
in a fresh subprocess per repeat (so peak RSS is per run), and prints the median.

    .venv/bin/python benchmarks/bench_pretrain.py [--steps 10] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, tempfile, time
from stages.tiny.pretrain import pretrain
from stages.tiny.tokenizer import build_tokenizer
build_tokenizer()  # vocabulary derivation is not part of the training speed
cfg = json.loads(sys.argv[1])
times = []
def progress(step, total, msg):
    times.append(time.perf_counter())
with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    summary = pretrain(cfg, out, progress=progress)
# the first step includes one-off set-up (oneDNN kernels); time the rest
steps = len(times) - 1
print(json.dumps({
    "steps": summary["steps"], "tokens": summary["tokens"], "seconds": summary["seconds"],
    "steady_seconds": times[-1] - times[0], "steady_steps": steps,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "parameters": summary["parameters"],
}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    cfg = {"steps": args.steps, "threads": args.threads, "batch_size": args.batch_size}
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory():
            done = subprocess.run(
                [sys.executable, "-c", CHILD, json.dumps(cfg)],
                capture_output=True,
                text=True,
                check=True,
            )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    tok_s = [r["tokens"] / r["seconds"] for r in runs]
    per100 = [100 * r["steady_seconds"] / max(1, r["steady_steps"]) for r in runs]
    result = {
        "config": cfg,
        "parameters": runs[0]["parameters"],
        "tokens_per_s_median": round(statistics.median(tok_s)),
        "tokens_per_s_all": [round(x) for x in tok_s],
        "seconds_per_100_steps_median": round(statistics.median(per100), 1),
        "peak_rss_mb_median": round(statistics.median(r["peak_rss_mb"] for r in runs)),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
