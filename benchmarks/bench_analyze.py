"""Benchmark: ``kk-analyze`` wall time on a synthetic run with 100k sampled completions.

    .venv/bin/python benchmarks/bench_analyze.py [--completions 100000] [--repeats 3]

Writes a synthetic run (analysis.synthetic: 3 stages with the SPEC §7.3 phases) once, then
times the real CLI in a subprocess (plots included) ``--repeats`` times and reports the
median. Reference figures on the same file: reading it with ``json.loads`` per line only
(the floor for any JSONL reader) and with ``pandas.read_json(lines=True)``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--completions", type=int, default=100_000)
    p.add_argument("--per-step", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keep", default=None, help="write the run here and keep it")
    args = p.parse_args()
    from analysis.synthetic import write_synthetic_run
    from curriculum import run_records as rr

    steps = max(3, args.completions // args.per_step)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-analyze-"))
    run = root / "synthetic-run"
    t0 = time.perf_counter()
    write_synthetic_run(run, steps=steps, completions_per_step=args.per_step)
    made = time.perf_counter() - t0
    size = (run / rr.COMPLETIONS_FILE).stat().st_size
    n = sum(1 for _ in open(run / rr.COMPLETIONS_FILE, encoding="utf-8"))
    print(
        f"synthetic run: {steps} steps, {n} completions, {size / 1e6:.1f} MB ({made:.1f} s to write)"
    )

    exe = Path(sys.executable).parent / "kk-analyze"
    walls, cpus = [], []
    for i in range(args.repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([str(exe), str(run), "--quiet"], capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        print(f"  run {i + 1}: {walls[-1]:.2f} s wall, {cpus[-1]:.2f} s CPU")
    no_plots = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [str(exe), str(run), "--quiet", "--no-plots"], check=True, capture_output=True
        )
        no_plots.append(time.perf_counter() - t0)

    # In-process breakdown of the parts (one pass each).
    from analysis.runs import analyse_run

    t0 = time.perf_counter()
    analyse_run(run)
    in_process = time.perf_counter() - t0
    t0 = time.perf_counter()
    with open(run / rr.COMPLETIONS_FILE, encoding="utf-8") as fh:
        for line in fh:
            json.loads(line)
    floor = time.perf_counter() - t0
    try:
        import pandas as pd

        t0 = time.perf_counter()
        pd.read_json(run / rr.COMPLETIONS_FILE, lines=True)
        pandas_s: float | None = time.perf_counter() - t0
    except ImportError:
        pandas_s = None

    result = {
        "completions": n,
        "steps": steps,
        "file_mb": round(size / 1e6, 1),
        "kk_analyze_median_s": round(statistics.median(walls), 2),
        "kk_analyze_runs_s": [round(w, 2) for w in walls],
        "kk_analyze_cpu_median_s": round(statistics.median(cpus), 2),
        "kk_analyze_no_plots_median_s": round(statistics.median(no_plots), 2),
        "analyse_run_in_process_s": round(in_process, 2),
        "json_loads_only_s": round(floor, 2),
        "pandas_read_json_s": None if pandas_s is None else round(pandas_s, 2),
        "cpu_count": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
