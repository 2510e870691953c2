"""Pre-training of the embedded tiny base model on generated puzzles.

Each document is ``prompt_for(record, tokenizer, prefill_think)`` followed by a completion:
the compact trace (``kk_puzzles.compact_trace``) and the answer, then EOS. Only a share
(``exact_format_fraction``) of completions use the exact Logic-RL layout
``<think>...</think><answer>...</answer>``; the others use near misses (a newline between
``</think>`` and ``<answer>``, no answer tags, other tag spellings, text after
``</answer>``, an unclosed answer), so the base model samples the exact format only a
minority of the time and GRPO stage 1 has something to teach. Loss is on completion
tokens only. Fresh puzzles every batch (one person count per batch, drawn by weight).

Command line (reproduces a pre-training; writes a loadable model folder)::

    python -m stages.pretrain --out DIR [--steps S | --minutes M] [--set key=value ...]
        [--checkpoint-every N] [--eval-n N]

>>> completion_for({"names": ["Zoey", "Bob"], "solution": [True, False],
...                 "statements": "(('lying', 1), ('lying', 0))",
...                 "knight_knave": {"knight": "knight", "knave": "knave", "a_knight": "a knight",
...                                  "a_knave": "a knave"}}, "exact", prefilled=True)[-69:]
'ok\\n</think><answer>\\n(1) Zoey is a knight\\n(2) Bob is a knave\\n</answer>'
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kk_puzzles.compact_trace import compact_trace

# Completion layouts and their share of the non-exact documents. After "</think>" the
# next token is "\n" in most documents, so greedy decoding of the base model picks a
# near-miss layout while sampling at temperature 1 hits the exact one a minority of times.
NEAR_MISS_LAYOUTS: dict[str, float] = {
    "newline": 0.40,  # "</think>\n<answer>": passes the instruct check, fails the strict one
    "no_tags": 0.20,  # "</think>\nAnswer:\n(1) ..."
    "trailing": 0.15,  # exact, then text after </answer>
    "other_tags": 0.15,  # "<ans> ... </ans>"
    "unclosed": 0.10,  # "<answer>" never closed
}
LAYOUTS = ("exact", *NEAR_MISS_LAYOUTS)


def _answer_lines(record: Mapping[str, Any]) -> str:
    text = record.get("solution_text_format")
    if text:
        return str(text)
    kk = record["knight_knave"]
    return "\n".join(
        f"({i}) {n} is {kk['a_knight'] if k else kk['a_knave']}"
        for i, (n, k) in enumerate(zip(record["names"], record["solution"], strict=True), 1)
    )


def completion_for(record: Mapping[str, Any], layout: str, prefilled: bool) -> str:
    """The completion text of ``record`` in ``layout`` (EOS not included)."""
    head = "\n" if prefilled else "<think>\n"
    body = head + compact_trace(record) + "\n</think>"
    answer = _answer_lines(record)
    if layout == "exact":
        return f"{body}<answer>\n{answer}\n</answer>"
    if layout == "newline":
        return f"{body}\n<answer>\n{answer}\n</answer>"
    if layout == "no_tags":
        return f"{body}\nAnswer:\n{answer}"
    if layout == "trailing":
        return f"{body}<answer>\n{answer}\n</answer>\nSo the answer is: {answer}"
    if layout == "other_tags":
        return f"{body}<ans>\n{answer}\n</ans>"
    if layout == "unclosed":
        return f"{body}<answer>\n{answer}"
    raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")


def pick_layout(rng: random.Random, exact_fraction: float) -> str:
    if rng.random() < exact_fraction:
        return "exact"
    names = list(NEAR_MISS_LAYOUTS)
    return rng.choices(names, weights=[NEAR_MISS_LAYOUTS[n] for n in names])[0]


def lr_at(step: int, total: int, peak: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up from peak/warmup (never 0), then cosine down to peak*min_ratio.

    >>> lr_at(0, 100, 1.0, 10, 0.1), lr_at(9, 100, 1.0, 10, 0.1), lr_at(99, 100, 1.0, 10, 0.1)
    (0.1, 1.0, 0.1)
    >>> round(lr_at(60, 111, 1.0, 10, 0.1), 4)  # half-way through the cosine
    0.55
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, total - 1 - warmup)
    frac = min(1.0, (step - warmup) / span) if total > warmup + 1 else 1.0
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def heldout_records(
    people: int, n: int, *, seed: int = 20_261_121, cfg: Mapping[str, Any] | None = None
) -> list[dict]:
    """Held-out puzzles for measuring a base model (seed family disjoint from training).

    Two-person puzzles with depth 2 and width 2 have only about 184 distinct statement
    sets, so for them ``n`` records may repeat statements (with other names).
    """
    depth = int((cfg or {}).get("depth", 2))
    width = int((cfg or {}).get("width", 2))
    out: list[dict] = []
    k = 0
    while len(out) < n:
        try:
            out += generate(
                people, n - len(out), seed=seed + 1000 * k + people, depth=depth, width=width
            )
        except ValueError:
            out += generate(
                people,
                min(100, n - len(out)),
                seed=seed + 1000 * k + people,
                depth=depth,
                width=width,
            )
        k += 1
    return out[:n]


def generate(*args: Any, **kwargs: Any) -> list[dict]:
    """``kk_puzzles.generate`` (looked up at call time)."""
    import kk_puzzles

    fn = getattr(kk_puzzles, "generate", None)
    if fn is None:
        from kk_puzzles.generator import generate as fn
    return fn(*args, **kwargs)


class DocumentStream:
    """Fresh tokenised batches of documents, deterministic in (cfg seed, step)."""

    def __init__(
        self, cfg: Mapping[str, Any], tokenizer: Any, exclude_ids: Sequence[str] = ()
    ) -> None:
        self.cfg = cfg
        self.tok = tokenizer
        self.exclude = set(exclude_ids)
        self.counts = list(cfg["people"])
        self.weights = [cfg["people"][c] for c in self.counts]
        self._group: list = []
        self._group_index = -1

    GROUP = 4

    def records(self, step: int) -> list[dict]:
        n = int(self.cfg["batch_size"])
        rng = random.Random(f"{self.cfg['seed']}:batch:{step}")
        people = rng.choices(self.counts, weights=self.weights)[0]
        seed = int(self.cfg["seed"]) * 1_000_003 + step
        try:
            return generate(
                people, n, seed=seed, depth=self.cfg["depth"], width=self.cfg["width"],
                role_words=self.cfg["role_words"], exclude_ids=self.exclude,
            )  # fmt: skip
        except ValueError:  # small puzzle spaces (2 people): allow repeats across calls
            out: list[dict] = []
            k = 0
            while len(out) < n:
                out += generate(
                    people, min(64, n - len(out)), seed=seed * 7 + k, depth=self.cfg["depth"],
                    width=self.cfg["width"], role_words=self.cfg["role_words"],
                )  # fmt: skip
                k += 1
            return out[:n]

    def texts(self, step: int) -> list[tuple[str, str]]:
        from stages.tiny_model import prompt_for

        rng = random.Random(f"{self.cfg['seed']}:layout:{step}")
        docs = []
        for rec in self.records(step):
            prefilled = rng.random() < float(self.cfg["prefill_fraction"])
            layout = pick_layout(rng, float(self.cfg["exact_format_fraction"]))
            docs.append(
                (prompt_for(rec, self.tok, prefilled), completion_for(rec, layout, prefilled))
            )
        return docs

    def batch(self, step: int) -> dict[str, Any]:
        """Batch ``step``: documents of ``GROUP`` consecutive steps are made together and
        sorted by length, so each batch holds documents of similar length (less padding)."""
        import torch

        group, pos = divmod(step, self.GROUP)
        if self._group_index != group:
            docs = [d for k in range(self.GROUP) for d in self.texts(group * self.GROUP + k)]
            tok = self.tok
            prompts = tok([p for p, _ in docs], add_special_tokens=False)["input_ids"]
            comps = tok([c for _, c in docs], add_special_tokens=False)["input_ids"]
            pairs = sorted(zip(prompts, comps, strict=True), key=lambda pc: len(pc[0]) + len(pc[1]))
            n = len(pairs) // self.GROUP
            chunks = [pairs[i * n : (i + 1) * n] for i in range(self.GROUP)]
            random.Random(f"{self.cfg['seed']}:order:{group}").shuffle(chunks)
            self._group, self._group_index = chunks, group
        pairs = self._group[pos]
        tok = self.tok
        seqs, labels = [], []
        for p, c in pairs:
            c = [*c, tok.eos_token_id]
            seqs.append(p + c)
            labels.append([-100] * len(p) + c)
        width = max(len(s) for s in seqs)
        pad = tok.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        lab = torch.full((len(seqs), width), -100, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (s, y) in enumerate(zip(seqs, labels, strict=True)):
            ids[i, : len(s)] = torch.tensor(s)
            lab[i, : len(y)] = torch.tensor(y)
            mask[i, : len(s)] = 1
        return {"input_ids": ids, "labels": lab, "attention_mask": mask}


def save_model_folder(
    model: Any, tokenizer: Any, out: Path, extra: Mapping[str, Any] | None = None
) -> None:
    """Write model + tokenizer into ``out`` atomically (temp sibling, then rename)."""
    import shutil
    import tempfile

    from stages.tokenizer import save_tokenizer

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(str(tmp))
        save_tokenizer(tokenizer, tmp)
        if extra:
            (tmp / "pretrain_info.json").write_text(
                json.dumps(extra, indent=2, sort_keys=True, default=str) + "\n"
            )
        if out.exists():
            old = out.with_name(out.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def pretrain(
    cfg: Mapping[str, Any],
    out_dir: Path | str,
    *,
    progress: Any = None,
    checkpoint_every: int | None = None,
    log_file: Path | str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Pre-train a tiny model for ``cfg`` and save it (model + tokenizer) into ``out_dir``.

    ``progress(step, total, message)`` is called after every step (total 0 when the run
    is bounded by minutes). ``checkpoint_every`` saves the folder every N steps as well,
    so a long run leaves a usable model at any time. Returns a summary dict.
    """
    import torch

    from stages.tiny_model import build_model, count_parameters, resolve_cfg
    from stages.tokenizer import build_tokenizer

    cfg = resolve_cfg(cfg)
    threads = cfg["threads"] or os.cpu_count() or 1
    torch.set_num_threads(int(threads))
    tok = build_tokenizer()
    model = build_model(cfg, tok)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg["lr"], betas=(0.9, 0.95),
    )  # fmt: skip
    stream = DocumentStream(cfg, tok)
    minutes = cfg["minutes"]
    total = int(cfg["steps"]) if minutes is None else 0
    budget = None if minutes is None else float(minutes) * 60.0
    start = time.time()
    tokens = 0
    step = 0
    loss_ema = None
    log = open(log_file, "a") if log_file else None
    out_dir = Path(out_dir)

    def info() -> dict[str, Any]:
        return {
            "config": cfg, "steps": step, "tokens": tokens, "seconds": round(time.time() - start, 1),
            "loss_ema": loss_ema, "parameters": count_parameters(model), "vocab_size": len(tok),
        }  # fmt: skip

    try:
        while True:
            elapsed = time.time() - start
            if budget is None and step >= total:
                break
            if budget is not None and elapsed >= budget:
                break
            if budget is None:
                lr = lr_at(step, total, cfg["lr"], cfg["warmup_steps"], cfg["min_lr_ratio"])
            elif step < cfg["warmup_steps"]:
                lr = cfg["lr"] * (step + 1) / cfg["warmup_steps"]
            else:  # time-based schedule: the same cosine over the wall-clock budget
                frac = min(1.0, elapsed / budget)
                lr = cfg["lr"] * (
                    cfg["min_lr_ratio"]
                    + (1 - cfg["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * frac))
                )
            for group in opt.param_groups:
                group["lr"] = lr
            batch = stream.batch(step)
            out = model(**batch)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            tokens += int(batch["attention_mask"].sum())
            value = float(out.loss.detach())
            loss_ema = value if loss_ema is None else 0.95 * loss_ema + 0.05 * value
            msg = f"loss {value:.4f} (ema {loss_ema:.4f}) lr {lr:.2e} {tokens / max(1e-9, time.time() - start):.0f} tok/s"
            if progress is not None:
                progress(step, total, msg)
            if log is not None:
                log.write(json.dumps({"step": step, "loss": value, "lr": lr, "tokens": tokens,
                                      "seconds": round(time.time() - start, 2)}) + "\n")  # fmt: skip
                log.flush()
            if checkpoint_every and step % checkpoint_every == 0:
                model.eval()
                save_model_folder(model, tok, out_dir, info())
                model.train()
    finally:
        if log is not None:
            log.close()
    model.eval()
    summary = info()
    save_model_folder(model, tok, out_dir, summary)
    return summary


# ---------------------------------------------------------------- measuring a base model


def sample_completions(
    model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]], *, prefill_think: bool,
    temperature: float, max_new_tokens: int, batch_size: int = 32, seed: int = 0,
) -> list[str]:  # fmt: skip
    """Generate one completion per record (greedy when temperature == 0)."""
    import torch

    from stages.tiny_model import prompt_for

    torch.manual_seed(seed)
    out: list[str] = []
    tokenizer.padding_side = "left"
    for i in range(0, len(records), batch_size):
        chunk = records[i : i + batch_size]
        prompts = [prompt_for(r, tokenizer, prefill_think) for r in chunk]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id,
                                  "eos_token_id": tokenizer.eos_token_id}  # fmt: skip
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False)
        with torch.no_grad():
            gen = model.generate(**enc, **kwargs)
        new = gen[:, enc["input_ids"].shape[1] :]
        out += tokenizer.batch_decode(new, skip_special_tokens=True)
    return out


def measure(
    model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]], *, prefill_think: bool = True,
    temperature: float = 0.0, max_new_tokens: int = 640, batch_size: int = 32, seed: int = 0,
) -> dict[str, float]:  # fmt: skip
    """Lenient accuracy, strict accuracy and exact-format rate of one completion per record."""
    import rewards

    comps = sample_completions(
        model, tokenizer, records, prefill_think=prefill_think, temperature=temperature,
        max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
    )  # fmt: skip
    n = len(records)
    lenient = strict = fmt = 0
    for comp, rec in zip(comps, records, strict=True):
        truth = tuple(bool(x) for x in rec["solution"])
        if rewards.parse_answer(comp, rec, lenient=True) == truth:
            lenient += 1
        sc = rewards.score(comp, rec, prefilled_think=prefill_think)
        fmt += sc.format > 0
        strict += sc.kind == "correct"
    return {"n": n, "lenient_acc": lenient / n, "strict_acc": strict / n, "exact_format": fmt / n}


def trivial_baselines(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Exact accuracies of 'everyone a knight', 'everyone a knave' and a uniform guess."""
    n = len(records)
    knights = sum(all(r["solution"]) for r in records) / n
    knaves = sum(not any(r["solution"]) for r in records) / n
    guess = sum(0.5 ** len(r["solution"]) for r in records) / n
    return {"all_knight": knights, "all_knave": knaves, "random_guess": guess}


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = json.loads(value) if value[:1] in "[{0123456789-tfn" else value
    return out


def measure_base(
    model_dir: Path | str,
    *,
    n: int,
    people: Sequence[int] = (2, 3),
    progress: Any = None,
    batch_size: int = 100,
) -> dict[str, Any]:
    """Held-out measurements of a model folder, per person count: greedy (lenient and
    strict accuracy, exact-format rate), one temperature-1 sample each (the same), and the
    trivial baselines on the same puzzles."""
    from stages.tiny_model import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(model_dir)
    out: dict[str, Any] = {}
    for count in people:
        recs = heldout_records(int(count), n)
        budget = 160 + 160 * 2 ** (int(count) - 2)  # covers the longest exact completions
        row = {
            "n": n,
            "max_new_tokens": budget,
            "greedy": measure(
                model, tok, recs, temperature=0.0, max_new_tokens=budget, batch_size=batch_size
            ),
            "sampled_t1": measure(
                model, tok, recs, temperature=1.0, max_new_tokens=budget, batch_size=batch_size
            ),
            "baselines": trivial_baselines(recs),
        }
        out[str(count)] = row
        if progress is not None:
            progress(count, row)
    return out


def file_sha256(path: Path | str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ship(
    src: Path | str, dest: Path | str, *, command: str, measurements: Mapping[str, Any] | None
) -> dict:
    """Copy a pre-trained folder to ``dest`` (weights in bf16, a few MB) with manifest.json.

    The manifest holds the command, the resolved config, steps, tokens, measurements and
    the sha256 of the weights; ``ensure_base_model`` uses the folder when the config matches.
    """
    import shutil
    import tempfile

    import torch

    from stages.tiny_model import CODE_VERSION, MANIFEST_FILE, load_model_and_tokenizer
    from stages.tokenizer import save_tokenizer

    src, dest = Path(src), Path(dest)
    info = json.loads((src / "pretrain_info.json").read_text())
    model, tok = load_model_and_tokenizer(src)
    model = model.to(torch.bfloat16)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        model.save_pretrained(str(tmp))
        save_tokenizer(tok, tmp)
        manifest = {
            "code_version": CODE_VERSION,
            "command": command,
            "config": info["config"],
            "steps": info["steps"],
            "tokens": info["tokens"],
            "seconds": info["seconds"],
            "parameters": info["parameters"],
            "vocab_size": info["vocab_size"],
            "loss_ema": info["loss_ema"],
            "weights_dtype": "bfloat16 (loaded as float32)",
            "sha256": {"model.safetensors": file_sha256(tmp / "model.safetensors")},
            "measurements": dict(measurements or {}),
        }
        (tmp / MANIFEST_FILE).write_text(
            json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
        )
        tmp.chmod(0o755)  # mkdtemp makes 0700; the asset is read by everyone
        for f in tmp.iterdir():
            f.chmod(0o644)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.pretrain", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", required=True, help="model folder to write (or to measure)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, help="optimizer steps (reproducible)")
    group.add_argument("--minutes", type=float, help="wall-clock budget instead of steps")
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
        "--eval-people", default="2,3", help="person counts to measure (comma list)"
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
    this_command = "python -m stages.pretrain " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    from stages.tiny_model import TinyConfigError, resolve_cfg

    try:
        cfg = _parse_sets(args.set)
        if args.steps is not None:
            cfg["steps"], cfg["minutes"] = args.steps, None
        if args.minutes is not None:
            cfg["minutes"] = args.minutes
        cfg = resolve_cfg(cfg)
        people = [int(x) for x in args.eval_people.split(",")]
        if args.measure_only and not (Path(args.out) / "config.json").is_file():
            raise ValueError(f"--measure-only: no model folder at {args.out}")
    except (ValueError, TinyConfigError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def show(step: int, total: int, msg: str) -> None:
        if step % 10 == 0 or step == total:
            print(f"step {step}/{total or '?'} {msg}", flush=True)

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
        results = measure_base(args.out, n=args.eval_n, people=people,
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
