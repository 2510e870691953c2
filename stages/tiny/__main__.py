"""``python -m stages.tiny``: pre-train, measure and ship the tiny base model.

python -m stages.tiny --out DIR --steps S [--set key=value ...]
    [--checkpoint-every N] [--eval-n N] [--ship-to DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stages.tiny.base import ship
from stages.tiny.measure import measure_base
from stages.tiny.model import TinyConfigError, resolve_cfg
from stages.tiny.pretrain import pretrain


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = json.loads(value) if value[:1] in "[{0123456789-tfn" else value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.tiny", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", required=True, help="model folder to write (or to measure)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: model.tiny.steps)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help='other model.tiny keys, e.g. --set lr=0.003 --set people=\'{"2": 0.4, "3": 0.6}\'')  # fmt: skip
    parser.add_argument(
        "--checkpoint-every", type=int, default=None, help="also save every N steps"
    )
    parser.add_argument(
        "--eval-n",
        type=int,
        default=0,
        help="held-out puzzles per person count to measure at the end",
    )
    parser.add_argument(
        "--eval-people", default="2,3,4", help="person counts to measure (comma list)"
    )
    parser.add_argument(
        "--measure-only", action="store_true", help="measure the folder --out, train nothing"
    )
    parser.add_argument(
        "--ship-to", default=None, help="then copy the model (bf16) with a manifest here"
    )
    parser.add_argument("--log", default=None, help="append per-step JSON lines here")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for measuring (1 is fastest on a busy machine)",
    )
    parser.add_argument(
        "--command", default=None, help="training command for the manifest (default: recorded one)"
    )
    args = parser.parse_args(argv)
    this_command = "python -m stages.tiny " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    try:
        cfg = _parse_sets(args.set)
        if args.steps is not None:
            cfg["steps"] = args.steps
        cfg = resolve_cfg(cfg)
        people = [int(x) for x in args.eval_people.split(",")]
        if args.measure_only and not (Path(args.out) / "config.json").is_file():
            raise ValueError(f"--measure-only: no model folder at {args.out}")
    except (ValueError, TinyConfigError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def show(step: int, total: int, msg: str) -> None:
        if step % 10 == 0 or step == total:
            print(f"step {step}/{total} {msg}", flush=True)

    if not args.measure_only:
        summary = pretrain(cfg, Path(args.out), progress=show,
                           checkpoint_every=args.checkpoint_every, log_file=args.log,
                           command=this_command)  # fmt: skip
        print(json.dumps({k: v for k, v in summary.items() if k != "config"}), flush=True)
    results = None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.eval_n:
        results = measure_base(args.out, n=args.eval_n, people=people, cast=cfg["cast"],
                               progress=lambda c, row: print(json.dumps({"people": c, **row}), flush=True))  # fmt: skip
    manifest_file = Path(args.out) / "manifest.json"
    if results is not None and args.measure_only and manifest_file.is_file():
        # measuring a shipped folder: record what was measured on exactly these weights
        manifest = json.loads(manifest_file.read_text())
        manifest["measurements"] = results
        tmp = manifest_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, manifest_file)
    if args.ship_to:
        recorded = json.loads((Path(args.out) / "pretrain_info.json").read_text()).get("command")
        command = args.command or recorded or this_command
        manifest = ship(args.out, args.ship_to, command=command, measurements=results)
        print(json.dumps({"shipped": args.ship_to, "sha256": manifest["sha256"]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
