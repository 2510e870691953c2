"""Benchmark ``kk-gen`` as whole processes, beside the public mem-kk-logic generator.

    MEM_KK_LOGIC=/work/peers/mem-kk-logic-data_prep .venv/bin/python benchmarks/bench_gen.py
    .venv/bin/python benchmarks/bench_gen.py --mem-kk DIR --full  # + every setting, traces

By default it prints the generator rows of BENCHMARKS.md, markdown-ready: 2000 five-person
puzzles (text + trace), ours and mem-kk-logic alternating in one loop (median of
--repeats each, so both see the same load) with the wall-time ratio; 2000 eight-person
puzzles; the peak resident memory of every kk-gen run; the load average beside each.

For each setting: wall time of the whole process (median of --repeats runs) and its peak
resident memory (``os.wait4`` rusage of that child). mem-kk-logic is never vendored: point
--mem-kk (or the MEM_KK_LOGIC environment variable) at a folder holding its ``lib_kk.py``
(its ``data_prep`` folder, e.g. ``git archive`` of AlphaPav/mem-kk-logic exported outside
this repository; it needs numpy, which the project's venv has). Its driver below calls its public functions the way its
``data_gen_kk.py`` pipeline does: sample unique puzzles, format text, build the CoT (both
variants), optionally statement + leaf perturbations that are formatted too, write JSONL.
Also prints the ``cot`` trace length per person count (characters, lines, words).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KK_GEN = Path(sys.executable).parent / "kk-gen"

MEM_KK_DRIVER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import lib_kk

n_people, n, perturb, out = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
sampler = lib_kk.KKProblemSampler(1234, n_people=n_people)
problems = sampler.sample_valid_problems(n)
sets = [problems]
if perturb:
    for kind in ("statement", "leaf"):
        got = sampler.perturb_problems(problems, perturb_type=kind, num_perturb=1)
        sets.append([p for group in got for p in group])
with open(out, "w") as fh:
    for problems in sets:
        for i, problem in enumerate(problems):
            if problem is None:
                continue
            formatter = lib_kk.KKProblemFormatter(1234 + i, problem)
            item = formatter.format_problem(random_names=True, random_saying_template=True)
            tape = lib_kk.generate_chain_of_thoughts(problem["statements"])
            head, steps, foot = lib_kk.format_chain_of_thoughts(
                problem, item, tape, repeat_claim_for_assumption=False,
                repeat_claim_for_contradiction=False)
            _, rsteps, _ = lib_kk.format_chain_of_thoughts(
                problem, item, tape, repeat_claim_for_assumption=True,
                repeat_claim_for_contradiction=True)
            parts = [c.strip() for c in item["solution_text"].replace(" and ", "").replace(".", "").split(",")]
            item["solution_text_format"] = "\n".join(f"({k + 1}) {c}" for k, c in enumerate(parts))
            item["cot_head"], item["cot_repeat_steps"], item["cot_foot"] = head, rsteps, foot
            item["statements"] = str(problem["statements"])
            item["index"] = i
            fh.write(json.dumps(item) + "\n")
"""


# Children run as an installed package would: byte-code cached (in a /tmp prefix, so nothing
# is written into the repository) even where the shell sets PYTHONDONTWRITEBYTECODE.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CHILD_ENV["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "bench_gen_pycache")


CPU: list[float] = []  # user+sys seconds of every run, in order (for the CPU columns)


def run_once(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one whole child process; its CPU time goes to CPU."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=CHILD_ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    CPU.append(usage.ru_utime + usage.ru_stime)
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def measure(cmd: list[str], repeats: int) -> tuple[float, float, list[float], float]:
    """(median wall, max peak RSS, all walls, median CPU seconds)."""
    run_once(cmd)  # warm-up: byte-code cache and file cache
    walls, peaks, cpus = [], [], []
    for _ in range(repeats):
        w, m = run_once(cmd)
        walls.append(w)
        peaks.append(m)
        cpus.append(CPU[-1])
    return statistics.median(walls), max(peaks), walls, statistics.median(cpus)


def measure_pair(
    a: list[str], b: list[str], repeats: int
) -> tuple[list[float], list[float], float, list[float], list[float]]:
    """Alternate runs of a and b (same load for both): walls of a, walls of b, peak RSS of
    b, CPU seconds of a, CPU seconds of b."""
    run_once(a)
    run_once(b)
    wa, wb, ca, cb, peak = [], [], [], [], 0.0
    for _ in range(repeats):
        wa.append(run_once(a)[0])
        ca.append(CPU[-1])
        w, m = run_once(b)
        wb.append(w)
        cb.append(CPU[-1])
        peak = max(peak, m)
    return wa, wb, peak, ca, cb


def trace_lengths(
    people_list: list[int], n: int
) -> list[tuple[int, float, int, float, int, float]]:
    sys.path.insert(0, str(REPO))
    from kk_puzzles import generate

    rows = []
    for p in people_list:
        # two people at depth 2 have only 184 distinct unique-solution puzzles
        cots = [r["cot"] for r in generate(p, min(n, 150) if p == 2 else n, seed=0)]
        chars = [len(c) for c in cots]
        lines = [c.count("\n") + 1 for c in cots]
        words = [len(c.split()) for c in cots]
        rows.append(
            (p, statistics.mean(chars), max(chars), statistics.mean(lines), max(lines),
             statistics.mean(words))
        )  # fmt: skip
    return rows


def _load() -> str:
    return "load " + " / ".join(f"{x:.1f}" for x in os.getloadavg())


def _peer_dir(arg: str | None) -> Path | None:
    """mem-kk-logic's data_prep folder from --mem-kk or MEM_KK_LOGIC; None (said) if unset."""
    where = arg or os.environ.get("MEM_KK_LOGIC")
    if not where:
        print(
            "mem-kk-logic: not given, so no peer row (pass --mem-kk DIR or set MEM_KK_LOGIC "
            "to a folder holding its lib_kk.py, e.g. AlphaPav/mem-kk-logic's data_prep "
            "exported outside this repository)"
        )
        return None
    lib = Path(where)
    if not (lib / "lib_kk.py").exists():
        raise SystemExit(f"mem-kk-logic: no lib_kk.py in {lib} (--mem-kk / MEM_KK_LOGIC)")
    return lib


def _ours(p: int, n: int, out: Path) -> list[str]:
    return [str(KK_GEN), "--people", str(p), "--n", str(n), "--quiet", "--force",
            "--out", str(out)]  # fmt: skip


def _peer(driver: Path, lib: Path, p: int, n: int, perturb: bool, out: Path) -> list[str]:
    return [sys.executable, str(driver), str(lib), str(p), str(n), "1" if perturb else "0",
            str(out)]  # fmt: skip


def targets(lib: Path | None, repeats: int, tmp: Path) -> None:
    """The generator rows of BENCHMARKS.md (what, target, measured, peer, status)."""
    print("\n| what (bench_gen.py) | target | measured (median) | peer in the same loop | status |")
    print("|---|---|---|---|---|")
    peaks: list[float] = []
    ours5 = _ours(5, 2000, tmp / "ours5.jsonl")
    if lib is not None:
        driver = tmp / "mem_kk_driver.py"
        driver.write_text(MEM_KK_DRIVER)
        peer = _peer(driver, lib, 5, 2000, False, tmp / "peer.jsonl")
        start = _load()
        run_once(ours5)  # warm-up: byte-code and file caches
        run_once(peer)
        wo, wp, co, cp = [], [], [], []
        for _ in range(repeats):
            w, m = run_once(ours5)
            wo.append(w)
            co.append(CPU[-1])
            peaks.append(m)
            w, _ = run_once(peer)
            wp.append(w)
            cp.append(CPU[-1])
        mo, mp = statistics.median(wo), statistics.median(wp)
        ratio = mp / mo
        print(
            f"| `kk-gen --people 5 --n 2000`, text + trace, whole process | >= 20x faster than "
            f"mem-kk-logic | {mo:.3f} s wall / {statistics.median(co):.3f} s CPU ({repeats} runs; "
            f"{start}) | mem-kk-logic {mp:.2f} s wall / {statistics.median(cp):.2f} s CPU: "
            f"**{ratio:.1f}x** | {'met' if ratio >= 20 else 'not met'} |",
            flush=True,
        )
    else:
        med, peak, _, cpu = measure(ours5, repeats)
        peaks.append(peak)
        print(
            f"| `kk-gen --people 5 --n 2000`, text + trace, whole process | >= 20x faster than "
            f"mem-kk-logic | {med:.3f} s wall / {cpu:.3f} s CPU ({repeats} runs; {_load()}) "
            "| peer not run | - |",
            flush=True,
        )
    start = _load()
    med, peak, _, cpu = measure(_ours(8, 2000, tmp / "ours8.jsonl"), repeats)
    peaks.append(peak)
    print(
        f"| `kk-gen` 8 people, n 2000 | <= 1 s | {med:.3f} s wall / {cpu:.3f} s CPU "
        f"({repeats} runs; {start}) | - | {'met' if med <= 1 else 'not met'} |"
    )
    print(
        f"| `kk-gen` peak memory (the runs above) | <= 150 MB | {max(peaks):.0f} MB | - "
        f"| {'met' if max(peaks) <= 150 else 'not met'} |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs per setting (median)")
    ap.add_argument(
        "--full", action="store_true", help="also every setting's table and the trace lengths"
    )
    ap.add_argument("--peer-repeats", type=int, default=3, help="runs per mem-kk-logic setting")
    ap.add_argument(
        "--people", default="3,5,8,12,16", help="person counts for kk-gen ('' = skip that table)"
    )
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument(
        "--mem-kk", help="folder holding mem-kk-logic's lib_kk.py (default: $MEM_KK_LOGIC)"
    )
    ap.add_argument(
        "--trace-n", type=int, default=500, help="puzzles per N for trace lengths (0 = skip)"
    )
    args = ap.parse_args()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"load average at start: {os.getloadavg()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_gen_"))
    lib = _peer_dir(args.mem_kk)
    targets(lib, args.repeats, tmp)
    if not args.full:
        print(f"load average at end: {os.getloadavg()}")
        return 0
    people = [int(x) for x in args.people.split(",") if x.strip()]
    if people:
        print("\n| kk-gen setting | median wall (s) | runs (s) | median CPU (s) | peak RSS (MB) |")
        print("|---|---|---|---|---|")
    for p in people:
        for perturb in (False, True):
            cmd = _ours(p, args.n, tmp / f"ours_{p}.jsonl")
            if perturb:
                cmd += ["--perturb", "statement,leaf"]
            med, peak, walls, cpu = measure(cmd, args.repeats)
            label = f"{p} people, n={args.n}" + (
                ", + statement & leaf perturbations" if perturb else ""
            )
            runs = ", ".join(f"{w:.2f}" for w in walls)
            print(f"| {label} | {med:.3f} | {runs} | {cpu:.3f} | {peak:.0f} |", flush=True)

    if lib is not None:
        driver = tmp / "mem_kk_driver.py"
        driver.write_text(MEM_KK_DRIVER)
        print(
            "\n| mem-kk-logic setting (runs alternate with kk-gen's) | median wall (s) | runs (s) "
            "| peak RSS (MB) | kk-gen median wall (s) | wall ratio | CPU s peer / ours | CPU ratio |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for p, n, perturb in [(5, 2000, False), (5, 2000, True), (8, 200, False)]:
            cmd = _peer(driver, lib, p, n, perturb, tmp / "peer.jsonl")
            ours_cmd = _ours(p, n, tmp / "ours_cmp.jsonl")
            if perturb:
                ours_cmd += ["--perturb", "statement,leaf"]
            our_walls, walls, peak, our_cpu, cpu = measure_pair(ours_cmd, cmd, args.peer_repeats)
            med, our_med = statistics.median(walls), statistics.median(our_walls)
            c_peer, c_ours = statistics.median(cpu), statistics.median(our_cpu)
            label = f"{p} people, n={n}" + (", + statement & leaf perturbations" if perturb else "")
            runs = ", ".join(f"{w:.2f}" for w in walls)
            print(
                f"| {label} | {med:.2f} | {runs} | {peak:.0f} | {our_med:.3f} | "
                f"{med / our_med:.1f}x | {c_peer:.2f} / {c_ours:.3f} | {c_peer / c_ours:.1f}x |",
                flush=True,
            )

    print(f"load average at end: {os.getloadavg()}")
    if args.trace_n <= 0:
        return 0
    print("\n| N | mean chars | max chars | mean lines | max lines | mean words |")
    print("|---|---|---|---|---|---|")
    for row in trace_lengths([2, 3, 4, 5, 6, 7, 8, 10, 12, 16], args.trace_n):
        print(f"| {row[0]} | {row[1]:.0f} | {row[2]} | {row[3]:.1f} | {row[4]} | {row[5]:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
