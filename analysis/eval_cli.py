"""``kk-eval``: held-out accuracy per person count for one or more models, side by side.

    kk-eval --model runs/default --people 3-5 --n 100
    kk-eval --model runs/a --model runs/b --samples 8 --temperature 0.7
    kk-eval --model /models/Qwen2.5-7B-Instruct --data ../shared/data/logic-rl-kk/5ppl/test.parquet

A run directory as ``--model`` stands for its base model (``run.json`` extra.base_model) and
every stage-end checkpoint (``checkpoints/stage-<name>/``). Without ``--data`` the puzzles
are the held-out set of the run's configuration (``curriculum.data.heldout_set``: the
reserved evaluation slice of puzzle space, which no training data contains; default people
and n from the config's eval section). With ``--data`` it says how many of the file's
puzzles lie outside that slice (possibly seen in training). Writes ``eval.json`` and ``eval.csv``
(atomically) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis import write_atomic
from curriculum import run_records as rr
from kk_puzzles.cli_errors import CliError, OneLineParser, run_cli

PROG = "kk-eval"


class EvalCliError(CliError):
    """A user error: printed as one line, exit code 2."""


@dataclass
class ModelSpec:
    label: str
    path: str  # model folder or hub id


# ---------------------------------------------------------------- argument helpers


def parse_people(text: str) -> list[int]:
    """'2-8' / '3,5,7' / '2-4,6' -> sorted person counts.

    >>> parse_people("2-4,7")
    [2, 3, 4, 7]
    """
    out: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                out.update(range(lo, hi + 1))
            else:
                out.add(int(part))
    except ValueError:
        raise EvalCliError(f"--people {text!r}: expected counts like 2-8 or 3,5,7") from None
    if not out or min(out) < 2:
        raise EvalCliError(f"--people {text!r}: person counts start at 2")
    return sorted(out)


def _stage_order(run_dir: Path) -> list[str]:
    info = rr.read_run_info(run_dir)
    return [s.name for s in info.stages] if info is not None else []


def resolve_models(spec: str) -> list[ModelSpec]:
    """A model folder, a hub id, or a run directory (base model + stage-end checkpoints)."""
    path = Path(spec)
    if (path / rr.RUN_INFO_FILE).is_file():
        info = rr.read_run_info(path)
        name = info.run_name if info is not None and info.run_name else path.name
        models: list[ModelSpec] = []
        base = (info.extra or {}).get("base_model") if info is not None else None
        if base and Path(base).exists():
            models.append(ModelSpec(f"{name}/base", str(base)))
        ckpt_root = path / rr.CHECKPOINTS_DIR
        stage_dirs = sorted(ckpt_root.glob("stage-*")) if ckpt_root.is_dir() else []
        order = {n: i for i, n in enumerate(_stage_order(path))}
        stage_dirs.sort(key=lambda d: (order.get(d.name[len("stage-") :], len(order)), d.name))
        for d in stage_dirs:
            if d.is_dir() and _is_model_folder(d):
                models.append(ModelSpec(f"{name}/{d.name}", str(d)))
        if not models:
            raise EvalCliError(
                f"run directory {spec} has no base model (run.json extra.base_model) "
                "and no checkpoints/stage-*/ model folders"
            )
        return models
    if path.is_dir():
        if not _is_model_folder(path):
            raise EvalCliError(
                f"--model {spec}: not a model folder (no config.json) nor a run directory (no run.json)"
            )
        return [ModelSpec(path.name or spec, str(path))]
    if path.exists():
        raise EvalCliError(f"--model {spec}: a file, expected a model folder or run directory")
    parts = spec.split("/")
    if len(parts) == 2 and all(parts) and not spec.startswith("."):
        return [ModelSpec(spec, spec)]  # hub id; loading it needs a local cache when offline
    raise EvalCliError(f"--model {spec}: no such model folder or run directory")


def _is_model_folder(path: Path) -> bool:
    """A full model folder, or a LoRA adapter folder (evaluated merged into its base)."""
    from stages.model_io import is_adapter_folder

    return (path / "config.json").is_file() or is_adapter_folder(path)


# ---------------------------------------------------------------- puzzles


def load_data_files(paths: Sequence[str]) -> list[dict[str, Any]]:
    """K&K / Logic-RL JSONL or parquet files, re-solved by ``kk_puzzles.io.import_records``."""
    from kk_puzzles import io as kkio

    records: list[dict[str, Any]] = []
    for p in paths:
        if not Path(p).is_file():
            raise EvalCliError(f"--data {p}: no such file")
        try:
            result = kkio.import_records(p)
        except (ValueError, OSError, KeyError) as exc:
            raise EvalCliError(
                f"--data {p}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
        accepted = list(_accepted(result))
        rejected = list(getattr(result, "rejected", []) or [])
        if rejected:
            print(f"{PROG}: {p}: {len(rejected)} record(s) rejected on import", file=sys.stderr)
        if not accepted:
            raise EvalCliError(f"--data {p}: no usable puzzle records")
        records.extend(accepted)
    return records


def _accepted(result: Any) -> list[dict[str, Any]]:
    for attr in ("records", "accepted"):
        if hasattr(result, attr):
            return list(getattr(result, attr))
    return list(result)


def _load_config(config_path: str | None) -> Any:
    import curriculum

    try:
        return curriculum.load_config(config_path, [])
    except curriculum.ConfigError as exc:
        raise EvalCliError(f"config {config_path or 'default'}: {exc}") from None


def heldout_set(
    people: list[int], n: int, seed: int, config: Any, cast: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    """The config's held-out set (``curriculum.data.heldout_set``) for these person counts,
    ``n`` each and ``seed``, with a line saying exactly what it is disjoint from."""
    import curriculum
    from curriculum import data as cdata

    try:
        records = cdata.heldout_set(config, people, n, seed, cast)
    except curriculum.ConfigError as exc:
        raise EvalCliError(f"{exc} (--n, --people)") from None
    source = "held-out set: " + cdata.heldout_description(config, n, seed, cast)
    return records, source


def _default_cast(config: Any, model_specs: Sequence[Any]) -> str:
    """The config's cast when every model is a word-level tiny model, else random names."""
    from curriculum.data import puzzle_cast
    from stages.tiny.tokenizer import is_word_level_folder

    if all(is_word_level_folder(m.path) for m in model_specs):
        return puzzle_cast(config)
    return "random"


def outside_slice_note(records: Sequence[Mapping[str, Any]]) -> str:
    """For a foreign file: how many of its puzzles lie outside the reserved slice (their
    structures may have been trained on)."""
    from kk_puzzles import parse_statements
    from kk_puzzles.reserved import is_reserved

    outside = sum(not is_reserved(parse_statements(str(r["statements"]))) for r in records)
    return (
        f"{outside} of {len(records)} puzzles lie outside the reserved evaluation slice "
        "(possibly seen in training)"
    )


def select(
    records: list[dict[str, Any]], people: list[int] | None, n: int | None
) -> list[dict[str, Any]]:
    """Keep the asked person counts, at most n puzzles each (file order)."""
    from stages.evaluation.heldout import people_of

    kept: list[dict[str, Any]] = []
    seen: dict[int, int] = {}
    for rec in records:
        p = people_of(rec)
        if people is not None and p not in people:
            continue
        if n is not None and seen.get(p, 0) >= n:
            continue
        seen[p] = seen.get(p, 0) + 1
        kept.append(rec)
    return kept


# ---------------------------------------------------------------- generation backends


def vllm_status(backend: str = "auto") -> tuple[bool, str]:
    """(usable, why) for ``--backend``: vLLM needs the package (the check of vllm_support);
    ``auto`` picks it only on a CUDA GPU, so a CPU run keeps transformers unless asked."""
    import torch

    from stages.scaleout.vllm_support import vllm_unavailable_reason

    if backend == "transformers":
        return False, "transformers asked for"
    reason = vllm_unavailable_reason()
    if reason is not None:
        return False, reason
    if torch.cuda.is_available():
        return True, f"on {torch.cuda.get_device_name(0)}"
    if backend == "auto":
        return False, "no CUDA GPU (--backend vllm runs vLLM's CPU build)"
    return True, "the CPU build, in-process, float32, eager"


def _load(path: str) -> tuple[Any, Any]:
    from stages.model_io import load_model_and_tokenizer

    try:
        return load_model_and_tokenizer(path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EvalCliError(f"cannot load model {path}: {first}") from None


class _GenCfgHolder:
    """The folder's generation_config.json (EOS ids of instruct models) without loading weights."""

    def __init__(self, path: str) -> None:
        try:
            from transformers import GenerationConfig

            self.generation_config = GenerationConfig.from_pretrained(path)
        except (OSError, ValueError):
            self.generation_config = None


def _load_tokenizer(path: str) -> Any:
    try:
        from stages.model_io import load_tokenizer_for

        return load_tokenizer_for(path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EvalCliError(f"cannot load the tokenizer of {path}: {first}") from None


def _evaluate_vllm(
    path: str, tokenizer: Any, records: list[dict[str, Any]], args: argparse.Namespace
) -> Any:
    """Generate with vLLM from token ids (our tokenizer, so the tiny model's ids stay ours)."""
    from stages.evaluation.heldout import _eos_ids, render_prompt, summarize_generations
    from stages.scaleout.vllm_support import cpu_engine_settings

    engine_settings = cpu_engine_settings()  # sets the env the engine reads when built
    from vllm import LLM, SamplingParams

    t0 = time.perf_counter()
    prompts = [render_prompt(r, tokenizer, not args.no_prefill_think) for r in records]
    ids = tokenizer(prompts)["input_ids"]
    eos = _eos_ids(_GenCfgHolder(path), tokenizer)
    llm = LLM(model=path, skip_tokenizer_init=True, seed=args.seed, **engine_settings)
    params = SamplingParams(
        n=args.samples,
        temperature=args.temperature,
        top_p=args.top_p if args.temperature > 0 else 1.0,
        max_tokens=args.max_new_tokens,
        stop_token_ids=eos,
        seed=args.seed,
        detokenize=False,
    )
    outs = llm.generate([{"prompt_token_ids": x} for x in ids], params, use_tqdm=False)
    texts, lengths, truncs = [], [], []
    for out in outs:
        texts.append(
            [
                tokenizer.decode([t for t in o.token_ids if t not in eos], skip_special_tokens=True)
                for o in out.outputs
            ]
        )
        lengths.append([len(o.token_ids) for o in out.outputs])
        truncs.append([o.finish_reason == "length" for o in out.outputs])
    settings = _settings(args, "vllm")
    return summarize_generations(
        records,
        texts,
        lengths,
        truncs,
        prefill_think=not args.no_prefill_think,
        settings=settings,
        seconds=time.perf_counter() - t0,
    )


def _settings(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    return {
        "backend": backend,
        "samples": args.samples,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "prefill_think": not args.no_prefill_think,
        "seed": args.seed,
    }


def evaluate_model(
    spec: ModelSpec, records: list[dict[str, Any]], args: argparse.Namespace, backend: str
) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from stages.evaluation.heldout import evaluate

    if backend == "vllm":  # vLLM loads the weights itself; only the tokenizer is needed here
        from stages.model_io import is_adapter_folder

        if not is_adapter_folder(spec.path):
            return _evaluate_vllm(spec.path, _load_tokenizer(spec.path), records, args)
        with tempfile.TemporaryDirectory(prefix="kk-eval-merged-") as merged:
            model, tokenizer = _load(spec.path)  # the adapter merged into its base
            model.save_pretrained(merged)
            tokenizer.save_pretrained(merged)
            del model
            return _evaluate_vllm(merged, tokenizer, records, args)
    model, tokenizer = _load(spec.path)
    from rich.console import Console

    console = Console(stderr=True)
    with Progress(
        TextColumn(f"[bold]{spec.label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("gen", total=len(records) * args.samples)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done)
            # Plain progress lines when not a terminal (CI logs), at most one per 10 s.
            if not console.is_terminal and time.monotonic() - last[0] > 10:
                last[0] = time.monotonic()
                print(
                    f"{PROG}: {spec.label}: {done}/{total} completions", file=sys.stderr, flush=True
                )

        result = evaluate(
            model,
            tokenizer,
            records,
            samples=args.samples,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            prefill_think=not args.no_prefill_think,
            seed=args.seed,
            top_p=args.top_p,
            progress=progress,
        )
    return result


# ---------------------------------------------------------------- output


CSV_FIELDS = [
    "model", "people", "puzzles", "samples",
    "strict", "strict_low", "strict_high", "lenient", "lenient_low", "lenient_high",
    "k", "pass_at_k", "pass_at_k_low", "pass_at_k_high",
    "format_error", "format_error_low", "format_error_high",
    "truncation", "mean_length",
    "baseline_all_knight", "baseline_all_knave", "baseline_random",
]  # fmt: skip


def csv_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    from stages.evaluation.heldout import BASELINES

    rows = []
    for label, res in results.items():
        groups = [*res.groups.values(), res.overall]
        pooled = _pooled_baselines(res.baselines)
        for g in groups:
            base = res.baselines.get(g.people) if g.people is not None else pooled
            k = max(g.pass_at)
            rows.append(
                {
                    "model": label,
                    "people": "all" if g.people is None else g.people,
                    "puzzles": g.puzzles,
                    "samples": g.samples,
                    "strict": g.strict.value,
                    "strict_low": g.strict.low,
                    "strict_high": g.strict.high,
                    "lenient": g.lenient.value,
                    "lenient_low": g.lenient.low,
                    "lenient_high": g.lenient.high,
                    "k": k,
                    "pass_at_k": g.pass_at[k].value,
                    "pass_at_k_low": g.pass_at[k].low,
                    "pass_at_k_high": g.pass_at[k].high,
                    "format_error": g.format_error.value,
                    "format_error_low": g.format_error.low,
                    "format_error_high": g.format_error.high,
                    "truncation": g.truncation.value,
                    "mean_length": g.mean_length,
                    **{f"baseline_{b}": base[b] for b in BASELINES},
                }
            )
    return rows


def _pooled_baselines(per: Mapping[int, Mapping[str, float]]) -> dict[str, float]:
    from stages.evaluation.heldout import BASELINES

    total = sum(v["n"] for v in per.values())
    return {
        b: (sum(v[b] * v["n"] for v in per.values()) / total if total else 0.0) for b in BASELINES
    }


def render_table(results: Mapping[str, Any], title: str) -> Any:
    from rich.table import Table

    first = next(iter(results.values()))
    k = max(first.overall.pass_at)
    table = Table(title=title, show_lines=False)
    for col, justify in [
        ("People", "right"), ("Model", "left"), ("Strict pass@1 [95% CI]", "right"),
        ("Lenient pass@1 [95% CI]", "right"), (f"pass@{k}", "right"), ("Format err", "right"),
        ("Mean len", "right"), ("Trunc", "right"), ("All knights", "right"),
        ("All knaves", "right"), ("Random", "right"),
    ]:  # fmt: skip
        table.add_column(col, justify=justify)
    people = sorted({p for r in results.values() for p in r.groups})
    keys: list[int | None] = [*people, None]
    labels = list(results)
    for p in keys:
        for i, label in enumerate(labels):
            res = results[label]
            g = res.overall if p is None else res.groups.get(p)
            if g is None:
                continue
            base = _pooled_baselines(res.baselines) if p is None else res.baselines[p]
            show_base = i == 0
            table.add_row(
                ("all" if p is None else str(p)) if i == 0 else "",
                label,
                g.strict.fmt(),
                g.lenient.fmt(),
                f"{100 * g.pass_at[max(g.pass_at)].value:.1f}%",
                f"{100 * g.format_error.value:.1f}%",
                f"{g.mean_length:.0f}",
                f"{100 * g.truncation.value:.1f}%",
                f"{100 * base['all_knight']:.1f}%" if show_base else "",
                f"{100 * base['all_knave']:.1f}%" if show_base else "",
                f"{100 * base['random']:.2f}%" if show_base else "",
                end_section=i == len(labels) - 1,
            )
    return table


def write_outputs(
    out_dir: Path, results: Mapping[str, Any], meta: dict[str, Any], save_completions: bool
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {**meta, "models": {label: res.to_dict() for label, res in results.items()}}
    written = [out_dir / "eval.json", out_dir / "eval.csv"]
    write_atomic(written[0], json.dumps(doc, indent=2, sort_keys=False) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(results))
    write_atomic(written[1], buf.getvalue())
    if save_completions:
        for label, res in results.items():
            path = out_dir / f"completions-{label.replace('/', '_')}.jsonl"
            lines = [json.dumps(s.__dict__, ensure_ascii=False) + "\n" for s in res.samples]
            write_atomic(path, "".join(lines))
            written.append(path)
    return written


# ---------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="PATH_OR_RUN_DIR",
        help="model folder, hub id, or run directory (base + stage checkpoints); repeatable",
    )
    p.add_argument(
        "--people",
        default=None,
        help="person counts, e.g. 2-8 or 3,5,7 (default: the config's eval.people; all in --data)",
    )
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="puzzles per person count (default: the config's eval.n; all in --data)",
    )
    p.add_argument(
        "--samples", type=int, default=1, help="completions per puzzle (pass@k uses k = samples)"
    )
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument(
        "--max-new-tokens", type=int, default=None, help="default: the config's eval.max_new_tokens"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="held-out set and sampling seed (default: the config's)",
    )
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="FILE",
        help="K&K / Logic-RL JSONL or parquet test file instead of the held-out set; repeatable",
    )
    p.add_argument(
        "--config",
        default=None,
        help="config whose held-out set to use (default: the run's, else default.yaml)",
    )
    p.add_argument(
        "--no-prefill-think", action="store_true", help="do not end prompts with <think>"
    )
    p.add_argument("--backend", choices=["auto", "transformers", "vllm"], default="auto")
    p.add_argument(
        "--cast",
        choices=["fixed", "random"],
        default=None,
        help="names of the generated puzzles (default: the config's for tiny models, else random)",
    )
    p.add_argument(
        "--out", default=None, help="output folder (default: RUN_DIR/kk-eval or ./kk-eval-out)"
    )
    p.add_argument(
        "--save-completions", action="store_true", help="also write every scored completion"
    )
    return p  # fmt: skip


def _check_args(args: argparse.Namespace) -> None:
    for name in ("samples", "batch_size"):
        if getattr(args, name) < 1:
            raise EvalCliError(
                f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}"
            )
    if args.n is not None and args.n < 1:
        raise EvalCliError(f"--n must be at least 1, got {args.n}")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise EvalCliError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.temperature < 0:
        raise EvalCliError(f"--temperature must be >= 0, got {args.temperature}")
    if args.samples > 1 and args.temperature == 0:
        print(
            f"{PROG}: note: --samples {args.samples} at temperature 0 repeats the greedy answer",
            file=sys.stderr,
        )


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    people = parse_people(args.people) if args.people is not None else None
    model_specs: list[ModelSpec] = []
    run_dirs = []
    for spec in args.model:
        model_specs.extend(resolve_models(spec))
        if (Path(spec) / rr.RUN_INFO_FILE).is_file():
            run_dirs.append(Path(spec))
    labels = [m.label for m in model_specs]
    if len(set(labels)) != len(labels):
        raise EvalCliError(f"two models share a label: {labels}; give distinct folders")
    config_path = args.config
    if config_path is None and run_dirs and (run_dirs[0] / rr.CONFIG_FILE).is_file():
        config_path = str(run_dirs[0] / rr.CONFIG_FILE)
    if config_path is not None and not Path(config_path).is_file():
        raise EvalCliError(f"--config {config_path}: no such file")

    usable, why = vllm_status(args.backend)
    if args.backend == "vllm" and not usable:
        raise EvalCliError(f"--backend vllm: {why}")
    backend = "vllm" if usable else "transformers"
    config = _load_config(config_path)
    args.max_new_tokens = args.max_new_tokens or config.eval.max_new_tokens
    args.seed = config.eval.seed if args.seed is None else args.seed
    if args.data:
        records = select(load_data_files(args.data), people, args.n)
        if not records:
            raise EvalCliError("no puzzles in --data match --people")
        source = "files: " + ", ".join(args.data) + "; " + outside_slice_note(records)
    else:
        cast = args.cast or _default_cast(config, model_specs)
        records, source = heldout_set(
            people or list(config.eval.people), args.n or config.eval.n, args.seed, config, cast
        )
    from analysis import make_console

    console = make_console()
    console.print(
        f"[bold]{PROG}[/]: {len(records)} puzzles ({source}); {len(model_specs)} model(s); "
        f"generation: {'vLLM' if usable else 'transformers'} ({why})"
    )
    results: dict[str, Any] = {}
    for spec in model_specs:
        results[spec.label] = evaluate_model(spec, records, args, backend)
        g = results[spec.label].overall
        console.print(f"  {spec.label}: strict {g.strict.fmt()}, lenient {g.lenient.fmt()} "
                      f"({results[spec.label].seconds:.1f} s)")  # fmt: skip

    out_dir = (
        Path(args.out)
        if args.out
        else (run_dirs[0] / "kk-eval" if run_dirs else Path("kk-eval-out"))
    )
    meta = {
        "created_at": time.time(),
        "data_source": source,
        "models_paths": {m.label: m.path for m in model_specs},
        "settings": _settings(args, backend),
        "puzzle_ids": [str(r.get("id", "")) for r in records],
    }
    written = write_outputs(out_dir, results, meta, args.save_completions)
    k = args.samples
    console.print(render_table(results, f"Held-out accuracy per person count (pass@{k} strict)"))
    console.print("wrote " + ", ".join(str(p) for p in written))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, run, argv)


if __name__ == "__main__":
    sys.exit(main())
