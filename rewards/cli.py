"""`kk-score FILE.jsonl`: score offline completions and print a summary table.

Each line is a JSON object holding puzzle fields (a kk-gen record, or a mem-kk-logic /
Logic-RL one) plus the completion (`completion` by default: a string or a conversational
message list). `--out` writes one JSON line of scores per record (atomically).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from kk_puzzles.cli_errors import CliError, run_cli
from rewards.parsing import completion_text
from rewards.puzzle import answer_key
from rewards.scoring import SCHEMES, Score, score, summarize

__all__ = ["main"]


class InputError(CliError):
    """A one-line problem with the input file."""


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def score_file(
    path: Path,
    *,
    scheme: str,
    prefilled_think: bool,
    field: str,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict], list[Score]]:
    """Score every record of a JSONL file; raise InputError naming the first bad line."""
    rows: list[dict] = []
    scores: list[Score] = []
    try:
        handle = path.open("rb")  # decoded per line, so a bad byte names its line
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            if progress is not None and lineno % 4096 == 0:
                progress(handle.tell())
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{path}:{lineno}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}:{lineno}: invalid JSON ({exc})") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object per line")
            if field not in record:
                raise InputError(f"{path}:{lineno}: no {field!r} field (use --completion-field)")
            completion = record[field]
            if not isinstance(completion, (str, list)):
                raise InputError(f"{path}:{lineno}: {field!r} must be a string or a message list")
            try:
                key = answer_key(record)
                result = score(
                    completion_text(completion),
                    key,
                    scheme=scheme,
                    prefilled_think=prefilled_think,
                )
            except ValueError as exc:
                raise InputError(f"{path}:{lineno}: {exc}") from None
            rows.append(
                {
                    "line": lineno,
                    "id": record.get("id"),
                    "people": key.people,
                    "format": result.format,
                    "answer": result.answer,
                    "total": result.total,
                    "kind": result.kind,
                    "reason": result.reason,
                }
            )
            scores.append(result)
    if not scores:
        raise InputError(f"{path}: no records")
    return rows, scores


def _table(rows: list[dict], scores: list[Score], scheme: str) -> object:
    from rich.table import Table

    groups: dict[object, list[Score]] = defaultdict(list)
    for row, s in zip(rows, scores, strict=True):
        groups[row["people"]].append(s)
    table = Table(title=f"kk-score ({scheme})", pad_edge=False)
    for col in (
        "people",
        "n",
        "correct",
        "wrong",
        "unparsed",
        "fmt err",
        "format",
        "answer",
        "total",
    ):
        table.add_column(col, justify="right", no_wrap=True)

    def add(label: str, batch: list[Score], style: str | None = None) -> None:
        s = summarize(batch)
        table.add_row(
            label,
            str(len(batch)),
            f"{s['all_correct_ratio']:.1%}",
            f"{s['wrong_answer_ratio']:.1%}",
            f"{s['unparsed_ratio']:.1%}",
            f"{s['format_error_ratio']:.1%}",
            f"{s['format_mean']:+.3f}",
            f"{s['answer_mean']:+.3f}",
            f"{s['total_mean']:+.3f}",
            style=style,
        )

    for people in sorted(groups, key=str):
        add(str(people), groups[people])
    add("all", scores, style="bold")
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kk-score",
        description="Score offline K&K completions (JSONL: puzzle fields + a completion).",
    )
    parser.add_argument("file", type=Path, help="JSONL file, one record per line")
    parser.add_argument(
        "--scheme",
        default="logic_rl",
        choices=sorted(SCHEMES),
        help="reward scheme (default: logic_rl)",
    )
    parser.add_argument("--out", type=Path, help="write per-record scores here (JSONL)")
    parser.add_argument(
        "--prefilled-think",
        action="store_true",
        help="the prompt ended with <think>: read each completion as if it began with it",
    )
    parser.add_argument(
        "--completion-field",
        default="completion",
        help="record field holding the completion (default: completion)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        size = args.file.stat().st_size
    except OSError:
        size = 0
    with contextlib.ExitStack() as stack:
        progress = None
        if size > 16 * 2**20 and sys.stderr.isatty():
            # big files take a while (about 50k records/s): show how far we are
            from rich.console import Console
            from rich.progress import Progress

            bar = stack.enter_context(Progress(console=Console(stderr=True), transient=True))
            task = bar.add_task(f"scoring {args.file.name}", total=size)
            progress = lambda done: bar.update(task, completed=done)  # noqa: E731
        rows, scores = score_file(
            args.file,
            scheme=args.scheme,
            prefilled_think=args.prefilled_think,
            field=args.completion_field,
            progress=progress,
        )
    if args.out is not None:
        body = "".join(json.dumps(row) + "\n" for row in rows)
        try:
            _atomic_write(args.out, body)
        except OSError as exc:
            raise InputError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    if args.json:
        print(json.dumps({"records": len(scores), **summarize(scores)}, indent=2))
    else:
        from rich.console import Console

        Console().print(_table(rows, scores, args.scheme))
        if args.out is not None:
            print(f"per-record scores: {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("kk-score", _run, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
