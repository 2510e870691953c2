"""Reward scoring throughput: completions scored per second on one core.

Realistic mix (fixed seed): 2-8 people, 0.5-4 KB completions; 40% correct (line and
sentence answers), 25% wrong (one person flipped), 10% unparsable answers (hedges, a
person missing), 25% format errors (truncated, text after </answer>, two answer blocks,
junk). Puzzles come from kk_puzzles.generate.

Optionally scores the same inputs with Logic-RL's public scorer
(verl/utils/reward_score/kk.py of Unakar/Logic-RL) loaded from a local copy given with
--peer (never vendored here): once as published (its diagnostics print to a null sink)
and once with its print() calls turned into no-ops, the fairest comparison.

    python benchmarks/bench_rewards.py [--n 20000] [--repeats 5] [--peer /tmp/kk.py]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

from rewards import score
from rewards.registry import build_reward

FILLER = (
    "Assume {a} is a {t}. Then {a}'s claim holds, so {b} must be a {f}. "
    "Checking {b}'s statement: it is false, which is consistent. "
    "Now consider {c}: if {c} were a {f}, the claim about {a} would be true, a contradiction. "
)


def make_mix(n: int, seed: int = 0) -> list[tuple[str, dict, str]]:
    from kk_puzzles import generate

    rng = random.Random(seed)
    puzzles = generate({p: 1.0 for p in range(2, 9)}, max(64, n // 40), seed=seed)
    mix: list[tuple[str, dict, str]] = []
    for _ in range(n):
        rec = rng.choice(puzzles)
        kk = rec["knight_knave"]
        names = rec["names"]
        truth, lie = kk["knight"], kk["knave"]
        target = rng.randint(512, 4096)
        a, b, c = (rng.choice(names) for _ in range(3))
        unit = FILLER.format(a=a, b=b, c=c, t=truth, f=lie)
        roll = rng.random()
        lines = rec["solution_text_format"].split("\n")
        if roll < 0.40:
            kind = "correct"
            answer = rec["solution_text_format"] if rng.random() < 0.7 else rec["solution_text"]
        elif roll < 0.65:
            kind = "wrong"
            i = rng.randrange(len(names))
            role = lie if rec["solution"][i] else truth
            lines[i] = f"({i + 1}) {names[i]} is a {role}"
            answer = "\n".join(lines)
        elif roll < 0.75:
            kind = "unparsed"
            answer = (
                "\n".join(lines[:-1])
                if rng.random() < 0.5
                else f"(1) {names[0]} is a {truth} or {lie}\n" + "\n".join(lines[1:])
            )
        else:
            kind = "format_error"
            answer = rec["solution_text_format"]
        body = (unit * (target // len(unit) + 1))[: max(0, target - len(answer) - 40)]
        text = f"<think>{body}</think><answer>{answer}</answer>"
        if kind == "format_error":
            variant = rng.randrange(4)
            if variant == 0:
                text = f"<think>{body}"  # truncated at the length limit
            elif variant == 1:
                text += " I hope this helps."
            elif variant == 2:
                text += f"<answer>{answer}</answer>"
            else:
                text = body + answer
        mix.append((text, rec, kind))
    return mix


def adversarial_inputs(rec: dict) -> dict[str, str]:
    m = 1_000_000
    ok = rec["solution_text_format"]
    rnd = random.Random(1)
    junk = bytes(rnd.randrange(256) for _ in range(m)).decode("utf-8", "replace")
    return {
        "'<' x 1M": "<" * m,
        "'<think>' spam": "<think>" * (m // 7),
        "'</answer>' spam": "</answer>" * (m // 9),
        "', ' answer": "<think>x</think><answer>" + ", " * (m // 2) + "</answer>",
        "'and ' answer": "<think>x</think><answer>" + "and " * (m // 4) + "</answer>",
        "newline-padded answer": "<think>x</think><answer>" + ok + "\n" * m + "</answer>",
        "'<eos> ' tail + x": "<think>x</think><answer>"
        + ok
        + "</answer>"
        + "<eos> " * (m // 6)
        + "x",
        "'<|im_end|' tail": "<think>x</think><answer>" + ok + "</answer>" + "<|im_end|" * (m // 9),
        "binary junk": junk,
        "junk in tags": "<think>" + junk + "</think><answer>" + junk + "</answer>",
        "whitespace": " " * m,
    }


def load_peer(path: Path, quiet: bool):
    spec = importlib.util.spec_from_file_location("logic_rl_kk_peer", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    if quiet:
        module.print = lambda *args, **kwargs: None  # shadows the builtin in that module
    return module


def rate(fn, items, repeats: int) -> dict[str, float]:
    """Median items per wall second and per CPU second of this (single) thread.

    On a shared machine the wall figure drops with other load; the CPU-time figure is
    the steadier one (it still rises a little under contention: shared caches)."""
    wall, cpu = [], []
    for _ in range(repeats):
        gc.collect()
        w0, c0 = time.perf_counter(), time.thread_time()
        fn(items)
        wall.append(len(items) / (time.perf_counter() - w0))
        cpu.append(len(items) / max(time.thread_time() - c0, 1e-9))
    return {"wall": round(statistics.median(wall)), "cpu": round(statistics.median(cpu))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peer", type=Path, help="a local copy of Logic-RL's kk.py")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    mix = make_mix(args.n)
    kinds = {
        k: sum(1 for m in mix if m[2] == k)
        for k in ("correct", "wrong", "unparsed", "format_error")
    }
    mean_len = statistics.mean(len(m[0]) for m in mix)
    for text, rec, kind in mix:  # sanity: the scorer agrees with how the mix was built
        got = score(text, rec).kind
        if got != kind:
            raise SystemExit(f"mix item built as {kind} scored {got}: {text[-200:]!r}")

    def ours(items):
        for text, rec, _ in items:
            score(text, rec)

    # the TRL path: JSON-string columns as training datasets hold them, batches of 64
    fn = build_reward("logic_rl")
    cols = [
        {k: json.dumps(rec[k]) for k in ("names", "solution", "knight_knave")} for _, rec, _ in mix
    ]

    def trl(items):
        for start in range(0, len(items), 64):
            chunk = items[start : start + 64]
            batch = cols[start : start + 64]
            fn(
                [t for t, _, _ in chunk],
                names=[c["names"] for c in batch],
                solution=[c["solution"] for c in batch],
                knight_knave=[c["knight_knave"] for c in batch],
            )

    results: dict[str, object] = {
        "load average at start": round(os.getloadavg()[0], 2),
        "machine": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "n": len(mix),
        "mix": kinds,
        "mean_chars": round(mean_len),
    }
    results["rewards.score per s"] = rate(ours, mix, args.repeats)
    results["logic_rl TRL function per s"] = rate(trl, mix, args.repeats)

    big = (
        "<think>"
        + "step " * 200_000
        + "</think><answer>"
        + mix[0][1]["solution_text_format"]
        + "</answer>"
    )
    times = []
    for _ in range(max(5, args.repeats)):
        start = time.perf_counter()
        score(big, mix[0][1])
        times.append((time.perf_counter() - start) * 1000)
    results["1 MB completion ms (median)"] = round(statistics.median(times), 2)
    # worst cases: 1 MB adversarial inputs (tag spam, separator runs, markers, junk)
    worst = {}
    for name, text in adversarial_inputs(mix[0][1]).items():
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            score(text, mix[0][1])
            runs.append((time.perf_counter() - start) * 1000)
        worst[name] = round(statistics.median(runs), 1)
    results["1 MB adversarial ms (median of 3), slowest"] = dict(
        sorted(worst.items(), key=lambda kv: -kv[1])[:5]
    )

    if args.peer is not None:
        peer_items = [
            (
                "<|im_start|>assistant\n" + text,
                {
                    "solution_text_format": rec["solution_text_format"],
                    "statements": rec["statements"],
                },
            )
            for text, rec, _ in mix
        ]
        for label, quiet in (
            ("kk.py as published (prints to a null sink)", False),
            ("kk.py, print() disabled", True),
        ):
            peer = load_peer(args.peer, quiet)

            def theirs(items, peer=peer, quiet=quiet):
                with open(os.devnull, "w") as null:
                    sink = contextlib.nullcontext() if quiet else contextlib.redirect_stdout(null)
                    with sink:
                        for text, gt in items:
                            peer.compute_score(text, gt)

            results[f"{label} per s"] = rate(theirs, peer_items, max(1, args.repeats // 2))
        # where the two scorers disagree on the same inputs (totals)
        peer = load_peer(args.peer, True)
        disagree: dict[str, int] = {}
        for (text, rec, kind), (ptext, gt) in zip(mix, peer_items, strict=True):
            if score(text, rec).total != peer.compute_score(ptext, gt):
                disagree[kind] = disagree.get(kind, 0) + 1
        results["totals differing from kk.py, by kind"] = disagree

    for key, value in results.items():
        print(f"{key}: {value}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
