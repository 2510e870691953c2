"""Pre-training of the embedded tiny base model on generated puzzles (``corpus``).

Loss on completion tokens only; AdamW with linear warm-up and cosine decay by steps.
The command line is ``python -m stages.tiny`` (``stages/tiny/__main__.py``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stages.tiny.corpus import DocumentStream
from stages.tiny.model import build_model, count_parameters, resolve_cfg
from stages.tiny.tokenizer import build_tokenizer, save_tokenizer


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


def save_model_folder(
    model: Any, tokenizer: Any, out: Path, extra: Mapping[str, Any] | None = None
) -> None:
    """Write model + tokenizer into ``out`` atomically (temp sibling, then rename)."""
    import shutil
    import tempfile

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


def load_average() -> str:
    """The 1/5/15-minute load average (recorded beside every throughput figure)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def pretrain(
    cfg: Mapping[str, Any],
    out_dir: Path | str,
    *,
    progress: Any = None,
    checkpoint_every: int | None = None,
    log_file: Path | str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Pre-train a tiny model for ``cfg["steps"]`` steps and save it into ``out_dir``.

    Deterministic in the config (seed, steps, batch) on a given machine and thread count:
    the machine's load changes the wall time, never the model. ``progress(step, total,
    message)`` is called after every step; ``checkpoint_every`` also saves the folder every
    N steps, so a long run leaves a usable model at any time. Returns a summary dict.
    """
    import torch

    cfg = resolve_cfg(cfg)
    threads = int(cfg["threads"] or os.cpu_count() or 1)
    torch.set_num_threads(threads)
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
    total = int(cfg["steps"])
    start = time.time()
    load_at_start = load_average()
    tokens = 0
    step = 0
    loss_ema = None
    log = open(log_file, "a") if log_file else None
    out_dir = Path(out_dir)

    def info() -> dict[str, Any]:
        seconds = time.time() - start
        return {
            "config": cfg, "steps": step, "tokens": tokens, "seconds": round(seconds, 1),
            "tokens_per_second": round(tokens / max(seconds, 1e-9)), "threads": threads,
            "load_average": {"start": load_at_start, "end": load_average()},
            "loss_ema": loss_ema, "parameters": count_parameters(model), "vocab_size": len(tok),
            "command": command,
        }  # fmt: skip

    try:
        while step < total:
            lr = lr_at(step, total, cfg["lr"], cfg["warmup_steps"], cfg["min_lr_ratio"])
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
