"""Cost of the training dashboard per step, against the step time of a tiny-model run.

    .venv/bin/python benchmarks/bench_dashboard.py [--run-dir RUN] [--steps 200] [--repeat 5]

Measures, on a synthetic 3-stage run (the dashboard only reads records, so the numbers do
not depend on where they came from):

* update: ``StageDashboard.step`` bookkeeping + alert checks, live mode with redraws off;
* render: one full redraw of the live dashboard to a 120x40 and an 80x24 terminal;
* plain: one step in plain mode (format + print the log line);
* live, throttled: the real ``stage_start``/``step``/``stage_end`` calls of a live dashboard
  while steps arrive every T seconds (the calls are timed; the sleeps in between stand for
  training), for T = 0.4 s over the default curriculum's 60/60/40 steps, and T = the median
  step time of a real run (``--run-dir``, else the newest under runs/) over 20/20/20 steps;
* peer: a tqdm progress bar with a postfix of the same numbers (what a HF/TRL trainer
  shows), alone and in the same sleep loop (a step's Python code runs with cold caches
  after the sleep, which costs both far more than in a tight loop).

Prints a markdown table; figures are medians over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the synthetic run writer lives with the tests

from dashboard_synthetic import synthetic_info, synthetic_step  # noqa: E402

from curriculum import run_records as rr  # noqa: E402
from stages.dashboard import StageDashboard  # noqa: E402

SAMPLE = rr.CompletionSample(
    stage="format",
    global_step=1,
    puzzle_id="p1",
    people=3,
    completion="<think>\n" + "\n".join(f"check {i}" for i in range(60)) + "\n</think>\n"
    "<answer>\n(1) A is a knight\n(2) B is a knave\n(3) C is a knave\n</answer>",
    format=1.0,
    answer=2.0,
    total=3.0,
    kind="correct",
    reason="ok",
    solution_text_format="(1) A is a knight\n(2) B is a knave\n(3) C is a knave",
)


def _terminal(width: int, height: int) -> Console:
    return Console(
        file=io.StringIO(),
        force_terminal=True,
        width=width,
        height=height,
        color_system="truecolor",
    )


def _steps(n: int, info: rr.RunInfo) -> list[rr.StepMetrics]:
    rng = random.Random(0)
    out = []
    plans = info.stages
    for step in range(1, n + 1):
        plan = next(p for p in plans if p.start_step <= step <= p.end_step)
        out.append(synthetic_step(plan, step, time.time(), rng))
    return out


def _info(n: int) -> rr.RunInfo:
    third = max(1, n // 3)
    return synthetic_info((third, third, n - 2 * third))


def bench_update(n: int) -> float:
    """Median seconds of one step() with redraws disabled (bookkeeping + alerts)."""
    info = _info(n)
    dash = StageDashboard("bench", live=True, console=_terminal(120, 40))
    dash.min_refresh_interval = 1e9
    dash.start(info)
    times = []
    for m in _steps(n, info):
        t0 = time.perf_counter()
        dash.step(m, SAMPLE)
        times.append(time.perf_counter() - t0)
    dash.close()
    return statistics.median(times[5:])  # skip the forced redraws at stage starts


def bench_render(n: int, width: int, height: int) -> tuple[float, float]:
    """Median wall and CPU seconds of one live redraw after ``n`` steps."""
    info = _info(n)
    dash = StageDashboard("bench", live=True, console=_terminal(width, height))
    dash.min_refresh_interval = 1e9
    dash.start(info)
    for m in _steps(n, info):
        dash.step(m, SAMPLE)
    wall, cpu = [], []
    for _ in range(20):
        t0, c0 = time.perf_counter(), time.thread_time()
        dash._live.refresh()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    dash.close()
    return statistics.median(wall), statistics.median(cpu)


def bench_plain(n: int) -> float:
    info = _info(n)
    dash = StageDashboard("bench", live=False, console=Console(file=io.StringIO(), width=120))
    dash.start(info)
    times = []
    for m in _steps(n, info):
        t0 = time.perf_counter()
        dash.step(m, SAMPLE)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[5:])


def bench_live_throttled(step_time: float, sizes: tuple[int, ...]) -> tuple[float, float, int]:
    """Per step: wall and CPU seconds spent in step() while steps arrive every ``step_time``
    s (stage starts/ends included), and the number of redraws."""
    info = synthetic_info(sizes)
    n = sum(sizes)
    dash = StageDashboard("bench", live=True, console=_terminal(120, 40))
    dash.start(info)
    wall = cpu = 0.0
    current = None
    for m in _steps(n, info):
        time.sleep(step_time)  # training
        t0, c0 = time.perf_counter(), time.thread_time()
        if m.stage != current:
            if current is not None:
                dash.stage_end(current)
            dash.stage_start(m.stage)
            current = m.stage
        dash.step(m, SAMPLE)
        wall += time.perf_counter() - t0
        cpu += time.thread_time() - c0
    renders = dash.renders
    dash.close()
    return wall / n, cpu / n, renders


def bench_tqdm_live(step_time: float, n: int) -> float:
    """The peer in the same conditions: CPU seconds per step of a tqdm bar update."""
    from tqdm import tqdm

    info = _info(n)
    bar = tqdm(total=n, file=io.StringIO(), mininterval=0.1)
    cpu = 0.0
    for m in _steps(n, info):
        time.sleep(step_time)
        c0 = time.thread_time()
        bar.set_postfix(
            reward=m.reward_mean,
            acc=m.all_correct_ratio,
            fmt=m.format_error_ratio,
            len=m.completion_length_mean,
            kl=m.kl,
            lr=m.learning_rate,
            refresh=False,
        )
        bar.update(1)
        cpu += time.thread_time() - c0
    bar.close()
    return cpu / n


def bench_tqdm(n: int) -> float:
    from tqdm import tqdm

    info = _info(n)
    bar = tqdm(total=n, file=io.StringIO(), mininterval=0.1)
    times = []
    for m in _steps(n, info):
        t0 = time.perf_counter()
        bar.set_postfix(
            reward=m.reward_mean,
            acc=m.all_correct_ratio,
            fmt=m.format_error_ratio,
            len=m.completion_length_mean,
            kl=m.kl,
            lr=m.learning_rate,
            refresh=False,
        )
        bar.update(1)
        times.append(time.perf_counter() - t0)
    bar.close()
    return statistics.median(times)


def real_step_time(run_dir: Path | None) -> tuple[float, str] | None:
    candidates = (
        [run_dir]
        if run_dir
        else sorted(
            (p.parent for p in (REPO / "runs").glob("*/metrics.jsonl")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
    )
    for run in candidates:
        ms = rr.read_metrics(run)
        if ms:
            info = rr.read_run_info(run)
            name = info.run_name if info else run.name
            return statistics.median(m.step_seconds for m in ms), f"{name} ({len(ms)} steps)"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=200, help="synthetic steps per measure")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--live-repeat", type=int, default=1, help="repeats of the slow live runs")
    args = parser.parse_args()

    def med(fn, *a):
        return statistics.median(fn(*a) for _ in range(args.repeat))

    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")

    real = real_step_time(args.run_dir)
    step_times = [(real[0], f"real run {real[1]}")] if real else []
    step_times.append((0.4, "0.4 s (fastest tiny-model step)"))

    update = med(bench_update, args.steps)
    plain = med(bench_plain, args.steps)
    r120 = [bench_render(args.steps, 120, 40) for _ in range(args.repeat)]
    r80 = [bench_render(args.steps, 80, 24) for _ in range(args.repeat)]
    peer = med(bench_tqdm, args.steps)
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print("| measure | ms (wall) |")
    print("|---|---|")
    print(f"| update per step (bookkeeping + alert checks) | {update * 1e3:.3f} |")
    print(f"| plain mode per step (line formatted + printed) | {plain * 1e3:.3f} |")
    for label, runs in (("120x40", r120), ("80x24", r80)):
        wall = statistics.median(r[0] for r in runs) * 1e3
        cpu = statistics.median(r[1] for r in runs) * 1e3
        print(f"| one live redraw, {label} | {wall:.2f} (CPU {cpu:.2f}) |")
    print(f"| peer: tqdm update + postfix per step | {peer * 1e3:.3f} |")
    print()
    print(
        "| step time | stages (steps) | redraws | dashboard per step: wall ms | CPU ms "
        "| CPU share of step | peer tqdm per step: CPU ms | CPU share |"
    )
    print("|---|---|---|---|---|---|---|---|")
    cases = [(t, label, (60, 60, 40)) for t, label in step_times if t <= 1.0]
    cases += [(t, label, (20, 20, 20)) for t, label in step_times if t > 1.0]
    for step_time, label, sizes in cases:
        runs = [bench_live_throttled(step_time, sizes) for _ in range(args.live_repeat)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        renders = statistics.median(r[2] for r in runs)
        peer_cpu = bench_tqdm_live(step_time, min(40, sum(sizes)))
        print(
            f"| {label}: {step_time:.2f} s | {'/'.join(map(str, sizes))} | {renders:.0f} | "
            f"{wall * 1e3:.2f} | {cpu * 1e3:.2f} | {cpu / step_time:.2%} | "
            f"{peer_cpu * 1e3:.2f} | {peer_cpu / step_time:.2%} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
