"""``kk-gen``: generate, show and import Knights-and-Knaves puzzle files.

    kk-gen --people 5 --n 2000                 # data/kk_5ppl_n2000_seed0.jsonl
    kk-gen --people 3-7 --n 5000 --split 0.1   # mixed sizes, disjoint train/test files
    kk-gen --people 5 --n 2000 --perturb statement,leaf --format parquet
    kk-gen show data/kk_5ppl_n2000_seed0.jsonl --index 3
    kk-gen import ../shared/data/logic-rl-kk/5ppl/test.parquet

Bad arguments give one ``kk-gen: error: ...`` line and exit status 2, with nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .cli_errors import CliError, OneLineParser, run_cli
from .generator import (
    CASTS,
    MIN_PEOPLE,
    GenerationError,
    check_knobs,
    collector_paused,
    generate,
    split,
)
from .render import ROLE_PAIRS, role_words
from .solver import MAX_PEOPLE

TYPE_CHECKING = False  # typing's, without importing typing (2 ms of every kk-gen run)
if TYPE_CHECKING:
    from typing import Any

FORMATS = ("jsonl", "parquet", "verl")
PERTURB_GROUPS = {
    "all": ("statement", "leaf", "names", "roles", "order"),
    "logical": ("statement", "leaf"),
    "language": ("names", "roles", "order"),
}
PROG = "kk-gen"


class UsageError(CliError):
    """Bad command-line input: printed as one line, exit status 2."""


def parse_people(spec: str) -> int | list[int] | dict[int, float]:
    """'5' -> 5, '3-7' -> [3..7], '3,5' -> [3, 5], '3:2,5:1' -> {3: 2.0, 5: 1.0}.

    >>> parse_people("3-5"), parse_people("3:2,6:1")
    ([3, 4, 5], {3: 2.0, 6: 1.0})
    """
    text = spec.strip()
    try:
        if ":" in text:
            out: dict[int, float] = {}
            for part in text.split(","):
                k, w = part.split(":")
                out[int(k)] = float(w)
                if out[int(k)] < 0:
                    raise UsageError(f"--people weight must be >= 0 in {spec!r}")
            counts: list[int] = list(out)
            result: Any = out
        elif "-" in text[1:]:
            lo, hi = text.split("-")
            counts = list(range(int(lo), int(hi) + 1))
            if not counts:
                raise UsageError(f"--people range {spec!r} is empty")
            result = counts
        elif "," in text:
            counts = [int(x) for x in text.split(",")]
            result = counts
        else:
            result = int(text)
            counts = [result]
    except ValueError:
        raise UsageError(f"--people must look like 5, 3-7, 3,5 or 3:2,5:1; got {spec!r}") from None
    for c in counts:
        if not MIN_PEOPLE <= c <= MAX_PEOPLE:
            raise UsageError(f"--people must be between {MIN_PEOPLE} and {MAX_PEOPLE}, got {c}")
    if isinstance(result, list) and len(set(result)) != len(result):
        raise UsageError(f"--people lists a count twice: {spec!r}")
    return result


def _people_tag(spec: str) -> str:
    return spec.strip().replace(",", "+").replace(":", "w")


def _parse_perturb(spec: str | None) -> list[str]:
    if not spec:
        return []
    kinds: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        group = PERTURB_GROUPS.get(part, (part,))
        for k in group:
            if k not in PERTURB_GROUPS["all"]:
                raise UsageError(
                    f"unknown --perturb kind {part!r}; use {', '.join(PERTURB_GROUPS['all'])}, "
                    "logical, language or all"
                )
            if k not in kinds:
                kinds.append(k)
    return kinds


def _split_size(spec: str | None, n: int) -> int:
    if spec is None:
        return 0
    try:
        value = float(spec)
    except ValueError:
        raise UsageError(
            f"--split must be a test fraction (0.1) or count (200), got {spec!r}"
        ) from None
    if 0 < value < 1:
        size = max(1, round(n * value))
    elif value >= 1 and value == int(value):
        size = int(value)
    else:
        raise UsageError(f"--split must be a fraction in (0, 1) or a count >= 1, got {spec!r}")
    if size >= n:
        raise UsageError(f"--split leaves no training puzzles: test {size} of --n {n}")
    return size


def _suffix(fmt: str) -> str:
    return {"jsonl": ".jsonl", "parquet": ".parquet", "verl": "_verl.parquet"}[fmt]


def _derived(path: Path, label: str, fmt: str) -> Path:
    """data/x.jsonl + 'test' -> data/x.test.jsonl (keeps the _verl.parquet ending)."""
    name = path.name
    end = _suffix(fmt) if name.endswith(_suffix(fmt)) else path.suffix
    stem = name[: len(name) - len(end)] if end else name
    return path.with_name(f"{stem}.{label}{end}")


def _check_writable(paths: Sequence[Path], force: bool) -> None:
    for p in paths:
        if p.exists() and p.is_dir():
            raise UsageError(f"output path {p} is a directory")
        if p.exists() and not force:
            raise UsageError(f"{p} exists; pass --force to overwrite")
        parent = p.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"cannot write {p}: {parent} is not a writable directory")
        if p.exists() and not os.access(p, os.W_OK):
            raise UsageError(f"cannot write {p}: permission denied")


def _writer(fmt: str, label: str) -> Callable[[list[dict[str, Any]], str], None]:
    from . import io

    if fmt == "jsonl":
        return io.write_jsonl
    if fmt == "parquet":
        return io.write_parquet
    split_name = "test" if label.startswith("test") else "train"
    return lambda recs, path: io.write_verl_parquet(recs, path, split=split_name)


def _write_all(outputs: list[tuple[Path, list[dict[str, Any]], str]], fmt: str) -> None:
    """Write every file to a temporary name first, then rename them all (all or nothing)."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, recs, label in outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temps.append((tmp, path))
            _writer(fmt, label)(recs, str(tmp))
        for tmp, path in temps:
            os.replace(tmp, path)
    except OSError as exc:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        where = temps[-1][1] if temps else "output"
        raise UsageError(f"cannot write {where}: {exc.strerror or exc}") from None
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise


class _Progress:
    """A one-line progress bar on stderr: on a TTY after 0.5 s, else a line every 5 s."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.last = self.start
        self.shown = False

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.tty:
            if now - self.start < 0.5 or (now - self.last < 0.1 and done < self.total):
                return
            width = 30
            filled = int(width * done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            sys.stderr.write(f"\r{PROG}: [{bar}] {done}/{self.total} {now - self.start:5.1f}s")
            sys.stderr.flush()
            self.shown = True
        elif now - self.last >= 5.0:
            sys.stderr.write(f"{PROG}: {done}/{self.total} puzzles, {now - self.start:.0f}s\n")
            sys.stderr.flush()
        self.last = now

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _balance(records: Sequence[dict[str, Any]]) -> str:
    total = sum(len(r["solution"]) for r in records)
    knights = sum([sum(r["solution"]) for r in records])  # True counts 1
    if not total:
        return "no people"
    return f"{100 * knights / total:.1f}% knights / {100 * (total - knights) / total:.1f}% knaves"


def _gen_parser() -> OneLineParser:
    p = OneLineParser(
        prog=PROG,
        description="Generate Knights-and-Knaves puzzles with exactly one solution each. "
        "Sub-commands: 'kk-gen show FILE [--index i]', 'kk-gen import FILE', 'kk-gen slice'.",
    )
    p.add_argument("--people", default="5", help="5, a range 3-7, a list 3,5 or weights 3:2,5:1")
    p.add_argument("--n", type=int, default=2000, help="number of puzzles (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", help="output file (default: data/kk_<people>ppl_n<n>_seed<seed>...)")
    p.add_argument("--format", default="jsonl", help="jsonl (default), parquet or verl")
    p.add_argument("--depth", type=int, default=2, help="levels per claim, leaves count 1 (2)")
    p.add_argument("--width", type=int, default=2, help="most operands of and/or (2)")
    p.add_argument("--split", help="also split off a disjoint test set: fraction 0.1 or count")
    p.add_argument(
        "--perturb",
        help="write perturbed copies: statement,leaf,names,roles,order (or logical/language/all)",
    )
    p.add_argument(
        "--role-words",
        default="knight/knave",
        help=f"truthful/lying role words, e.g. {', '.join(ROLE_PAIRS)}, or 'random'",
    )
    p.add_argument(
        "--cast",
        default="random",
        help="names: random (drawn from the pool, default) or fixed (the pool's first N, in order)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _default_out(args: argparse.Namespace) -> Path:
    parts = [f"kk_{_people_tag(args.people)}ppl", f"n{args.n}", f"seed{args.seed}"]
    if args.depth != 2:
        parts.append(f"d{args.depth}")
    if args.width != 2:
        parts.append(f"w{args.width}")
    if args.role_words != "knight/knave":
        parts.append(args.role_words.replace("/", "-"))
    return Path("data") / ("_".join(parts) + _suffix(args.format))


@collector_paused  # writing makes no reference cycles either (records are the bulk)
def cmd_generate(argv: Sequence[str]) -> int:
    args = _gen_parser().parse_args(argv)
    people = parse_people(args.people)
    if args.n <= 0:
        raise UsageError(f"--n must be a positive number of puzzles, got {args.n}")
    if args.format not in FORMATS:
        raise UsageError(f"unknown --format {args.format!r}; use jsonl, parquet or verl")
    if args.role_words != "random":
        try:
            role_words(args.role_words)
        except ValueError as exc:
            raise UsageError(f"--role-words: {exc}") from None
    try:
        check_knobs(args.depth, args.width, None)
    except GenerationError as exc:
        raise UsageError(str(exc)) from None
    if args.cast not in CASTS:
        raise UsageError(f"--cast must be one of {', '.join(CASTS)}, got {args.cast!r}")
    test_size = _split_size(args.split, args.n)
    kinds = _parse_perturb(args.perturb)
    out = Path(args.out) if args.out else _default_out(args)

    labels = ["train", "test"] if test_size else [""]
    targets = []
    for label in labels:
        base = _derived(out, label, args.format) if label else out
        targets.append((label, base))
        targets += [(f"{label}:{k}", _derived(base, f"perturbed_{k}", args.format)) for k in kinds]
    _check_writable([t[1] for t in targets], args.force)

    start = time.perf_counter()
    bar = _Progress(args.n, not args.quiet)
    kw = dict(seed=args.seed, depth=args.depth, width=args.width, role_words=args.role_words,
              cast=args.cast)  # fmt: skip
    try:
        if test_size:
            train, test = split(people, args.n - test_size, test_size, progress=bar, **kw)
            sets = {"train": train, "test": test}
        else:
            sets = {"": generate(people, args.n, progress=bar, **kw)}
    except GenerationError as exc:
        raise UsageError(str(exc)) from None
    finally:
        bar.close()
    outputs: list[tuple[Path, list[dict[str, Any]], str]] = []
    perturbed_counts: dict[str, int] = {}
    if kinds:
        from .perturb import perturb_all

        for label, recs in list(sets.items()):
            got = perturb_all(recs, kinds, seed=args.seed)
            for k in kinds:
                perturbed_counts[f"{label}:{k}"] = len(got[k])
            sets.update({f"{label}:{k}": got[k] for k in kinds})
    for label, path in targets:
        outputs.append((path, sets[label], label or "train"))
    _write_all(outputs, args.format)
    seconds = time.perf_counter() - start

    main_sets = [(lab, p) for lab, p in targets if ":" not in lab]
    for lab, path in main_sets:
        recs = sets[lab]
        what = f"{lab} " if lab else ""
        sizes = sorted({r["people"] for r in recs})
        ppl = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
        print(
            f"{PROG}: wrote {len(recs)} {what}puzzles ({ppl} people, depth {args.depth}, "
            f"width {args.width}) to {path}; {_balance(recs)}"
        )
    for lab, path in targets:
        if ":" in lab:
            base, kind = lab.split(":")
            n_src = len(sets[base])
            print(f"{PROG}: wrote {len(sets[lab])} of {n_src} '{kind}' perturbations to {path}")
    print(f"{PROG}: done in {seconds:.2f} s")
    return 0


def _wrap(text: str, indent: str = "") -> str:
    import textwrap

    return "\n".join(
        textwrap.fill(line, width=100, initial_indent=indent, subsequent_indent=indent)
        if line
        else ""
        for line in text.split("\n")
    )


def cmd_show(argv: Sequence[str]) -> int:
    p = OneLineParser(prog=f"{PROG} show", description="Print one puzzle, its solution and trace.")
    p.add_argument("file")
    p.add_argument("--index", type=int, default=0, help="record number, from 0 (default 0)")
    p.add_argument("--no-trace", action="store_true", help="leave out the reasoning trace")
    args = p.parse_args(argv)
    from . import io
    from .grammar import parse_statements
    from .render import render_claim

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        recs = io.read_records(path)
    except io.DataError as exc:
        raise UsageError(str(exc)) from None
    if not recs:
        raise UsageError(f"{path} holds no records")
    if not -len(recs) <= args.index < len(recs):
        raise UsageError(f"--index {args.index} out of range: {path} has {len(recs)} records")
    raw = recs[args.index]
    try:
        rec = raw if "cot" in raw and "id" in raw else io.normalize_record(raw)
        stmts = parse_statements(rec["statements"])
    except (ValueError, KeyError) as exc:
        raise UsageError(f"record {args.index} of {path} is not a valid puzzle: {exc}") from None
    names, roles = rec["names"], rec["knight_knave"]
    print(f"Puzzle {args.index % len(recs)} of {len(recs)} in {path}")
    extra = f", perturbation {rec['perturbation']}" if rec.get("perturbation") else ""
    print(f"id {rec.get('id')}, {len(names)} people, depth {rec.get('depth')}{extra}")
    print()
    print(_wrap(rec["quiz"]))
    print()
    print("Claims:")
    for i, s in enumerate(stmts):
        print(_wrap(f"{names[i]}: {render_claim(s, names, roles)}", "  "))
    print()
    print("Solution:")
    print(_wrap(rec["solution_text_format"], "  "))
    if not args.no_trace:
        print()
        print("Trace:")
        print(_wrap(rec["cot"], "  "))
    return 0


def cmd_import(argv: Sequence[str]) -> int:
    p = OneLineParser(
        prog=f"{PROG} import",
        description="Read mem-kk-logic / Logic-RL JSONL or parquet, re-solve every record, "
        "and write the accepted ones in kk-rl's format.",
    )
    p.add_argument("file")
    p.add_argument("--out", help="output file (default data/<name>.imported.jsonl)")
    p.add_argument("--format", default="jsonl", help="jsonl (default), parquet or verl")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--strict", action="store_true", help="exit 1 when any record is rejected")
    args = p.parse_args(argv)
    from . import io

    src = Path(args.file)
    if not src.is_file():
        raise UsageError(f"no such file: {src}")
    if args.format not in FORMATS:
        raise UsageError(f"unknown --format {args.format!r}; use jsonl, parquet or verl")
    stem = src.name.split(".")[0]
    out = Path(args.out) if args.out else Path("data") / f"{stem}.imported{_suffix(args.format)}"
    _check_writable([out], args.force)
    try:
        res = io.import_records(src)
    except io.DataError as exc:
        raise UsageError(str(exc)) from None
    for row, reason in res.rejected[:20]:
        print(f"{PROG}: rejected record {row}: {reason}", file=sys.stderr)
    if len(res.rejected) > 20:
        print(f"{PROG}: ... and {len(res.rejected) - 20} more rejected", file=sys.stderr)
    if res.accepted:
        _write_all([(out, res.accepted, "train")], args.format)
        print(f"{PROG}: {res.summary()}; wrote {out}")
    else:
        print(f"{PROG}: {res.summary()}; nothing to write")
    if res.rejected and (args.strict or not res.accepted):
        return 1
    return 0


def cmd_slice(argv: Sequence[str]) -> int:
    """``kk-gen slice``: the size of the reserved evaluation slice per person count."""
    from .generator import slice_size
    from .reserved import RESERVED_PER_MILLE

    p = OneLineParser(prog=f"{PROG} slice", description="Size of the reserved evaluation slice.")
    p.add_argument("--people", default="2-6", help="person counts (default 2-6)")
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--width", type=int, default=2)
    p.add_argument("--samples", type=int, default=4000, help="puzzles drawn per count")
    args = p.parse_args(argv)
    counts = parse_people(args.people)
    counts = [counts] if isinstance(counts, int) else list(counts)  # a weight map: its keys
    try:
        check_knobs(args.depth, args.width, None)
    except GenerationError as exc:
        raise UsageError(str(exc)) from None
    if args.samples <= 0:
        raise UsageError(f"--samples must be positive, got {args.samples}")
    print(
        f"{PROG}: reserved evaluation slice = {RESERVED_PER_MILLE / 10:g}% of puzzle "
        f"structures (depth {args.depth}, width {args.width}); no training data contains them"
    )
    for c in counts:
        r = slice_size(int(c), args.samples, depth=args.depth, width=args.width)
        how = f"all {r['puzzles']} puzzles (exact)" if r["exact"] else f"{r['puzzles']} sampled"
        print(
            f"  {c} people: {r['reserved']} of {how} reserved ({100 * r['share']:.1f}%); "
            f"{r['structures']} distinct structures up to renaming and permutation"
        )
    return 0


def _dispatch(argv: list[str]) -> int:
    commands = {"show": cmd_show, "import": cmd_import, "slice": cmd_slice}
    if argv and argv[0] in commands:
        return commands[argv[0]](argv[1:])
    return cmd_generate(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(
        PROG, _dispatch, argv, interrupted="interrupted; nothing written", quiet_broken_pipe=True
    )


if __name__ == "__main__":
    sys.exit(main())
