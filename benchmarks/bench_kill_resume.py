"""kill -9 at random points of a micro run, then ``--resume``: does every run end where an
uninterrupted one ends, with no completed stage lost?

One uninterrupted reference run, then ``--points`` independent runs, each SIGKILLed once at
a random point (a global step drawn from 0-8 that the process must have logged, 0 = once
state.json exists, then a random delay of 0-0.5 s) and resumed to the end. The run, the
points and the checks are tests/kill_harness.py's (the CI test, tests/test_kill_resume.py,
chains three kills in one run). Prints a markdown table.

    .venv/bin/python benchmarks/bench_kill_resume.py --points 10 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from kill_harness import (  # noqa: E402
    TOTAL,
    KillPoint,
    problems_after,
    resume,
    run_and_kill,
    train_cmd,
)

from curriculum import run_records as rr  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the rows here")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    bin_dir = Path(sys.executable).parent
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kk-kill-") as tmp:
        ref = Path(tmp) / "reference"
        t0 = time.monotonic()
        res, _ = resume(train_cmd(bin_dir, REPO, ref), cwd=REPO)
        ref_seconds = time.monotonic() - t0
        if res.returncode != 0:
            print(res.stderr[-2000:], file=sys.stderr)
            return 1
        ref_problems = problems_after(ref, [], resumes=0)
        print(f"reference run: {ref_seconds:.1f} s, problems: {ref_problems or 'none'}")
        for i in range(args.points):
            out = Path(tmp) / f"run-{i}"
            point = KillPoint(after_steps=rng.randint(0, TOTAL), delay=rng.uniform(0.0, 0.5))
            kill = run_and_kill(train_cmd(bin_dir, REPO, out), out, point, cwd=REPO)
            res, seconds = resume(train_cmd(bin_dir, REPO, out, resume=True), cwd=REPO)
            problems = [f"exit {res.returncode}"] if res.returncode != 0 else []
            problems += problems_after(out, [kill], resumes=1) if not problems else []
            ev = next((e for e in rr.read_events(out) if e.kind == "resume"), None)
            rows.append(
                {
                    "point": f"step {point.after_steps} + {point.delay:.2f} s",
                    "killed_at_s": round(kill.seconds, 1),
                    "killed": kill.killed,  # False: it finished before the point
                    "steps_logged": kill.steps_logged,
                    "last_checkpoint": kill.last_checkpoint,
                    "stages_done": sorted(kill.stage_ends, key=kill.stage_ends.get),
                    "resumed_from": ev.data.get("checkpoint") if ev else None,
                    "dropped_steps": ev.data.get("dropped_steps") if ev else None,
                    "resume_s": round(seconds, 1),
                    "final_step": (rr.read_state(out) or {}).get("global_step"),
                    "problems": problems,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print()
    print(
        "| # | kill point | killed after | steps logged | last checkpoint | stages done | "
        "resumed from | dropped | resume | final step | problems |"
    )
    print("|" + "---|" * 11)
    for i, r in enumerate(rows):
        print(
            f"| {i + 1} | {r['point']} | {r['killed_at_s']} s | {r['steps_logged']} | "
            f"{r['last_checkpoint'] or '-'} | {', '.join(r['stages_done']) or '-'} | "
            f"{r['resumed_from'] or '(start)'} | {r['dropped_steps']} | {r['resume_s']} s | "
            f"{r['final_step']} | {'; '.join(r['problems']) or 'none'} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"reference_s": ref_seconds, "rows": rows}))
    return 0 if all(not r["problems"] for r in rows) and not ref_problems else 1


if __name__ == "__main__":
    sys.exit(main())
