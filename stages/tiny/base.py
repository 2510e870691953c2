"""The tiny base model a run starts from: shipped, cached, or pre-trained now; and shipping.

``ensure_base_model(cfg, cache_dir)`` returns a folder holding the tiny model and its
word-level tokenizer, in order:

1. the model shipped in ``stages/tiny/assets/tiny_base/`` when its manifest's config equals
   the requested one (so the default run needs no long pre-training);
2. a cached folder ``<cache_dir>/tiny-<key>`` where the key hashes the config and
   ``CODE_VERSION``;
3. otherwise it pre-trains one (``stages.tiny.pretrain``), writing to a temporary folder
   that is renamed into place only when complete. The build holds an exclusive
   ``fcntl.flock`` on ``<cache_dir>/tiny-<key>.lock``, so a second process building the same
   model (two ranks of ``accelerate launch``, two test workers) waits for the first and
   then uses its folder. Where there is no ``fcntl`` (Windows) there is no lock: both
   processes pre-train, the first to finish renames its folder in, and the other drops its
   own copy (same config, same model) and uses the first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows: builds are not locked there (see above)
    fcntl = None

from stages.model_io import load_model_and_tokenizer
from stages.tiny.model import CODE_VERSION, Progress, cfg_key, resolve_cfg
from stages.tiny.pretrain import pretrain
from stages.tiny.tokenizer import save_tokenizer

ASSET_DIR = Path(__file__).resolve().parent / "assets" / "tiny_base"
MANIFEST_FILE = "manifest.json"
DONE_FILE = "kk_tiny_done.json"


def _comparable(cfg: Mapping[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(resolve_cfg(cfg), sort_keys=True, default=str))
    out.pop("threads", None)
    return out


def shipped_model(cfg: Mapping[str, Any]) -> Path | None:
    """The shipped asset folder when its manifest matches ``cfg`` and CODE_VERSION."""
    manifest_path = ASSET_DIR / MANIFEST_FILE
    if not manifest_path.is_file() or not (ASSET_DIR / "model.safetensors").is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("code_version") != CODE_VERSION:
        return None
    if _comparable(manifest.get("config", {})) != _comparable(cfg):
        return None
    return ASSET_DIR


def ensure_base_model(
    cfg: Mapping[str, Any] | None, cache_dir: Path | str, progress: Progress | None = None
) -> Path:
    """Folder of a pre-trained tiny model for ``cfg``: shipped, cached, or built now.

    Building writes into a temporary folder under ``cache_dir`` and renames it into place,
    so an interrupted build leaves nothing that looks finished.
    """
    resolved = resolve_cfg(cfg)
    shipped = shipped_model(resolved)
    if shipped is not None:
        return shipped
    cache_dir = Path(cache_dir)
    final = cache_dir / f"tiny-{cfg_key(resolved)}"
    if (final / DONE_FILE).is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    with build_lock(cache_dir / f"{final.name}.lock"):
        if (final / DONE_FILE).is_file():  # built by the process we waited for
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache_dir))
        try:
            summary = pretrain(resolved, tmp, progress=progress)
            (tmp / DONE_FILE).write_text(
                json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n"
            )
            if final.exists():  # a half-written leftover, or an unlocked concurrent build
                if (final / DONE_FILE).is_file():
                    shutil.rmtree(tmp, ignore_errors=True)
                    return final
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


@contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created, and left for the next build);
    another process asking for it waits. No lock where there is no ``fcntl``."""
    if fcntl is None:
        yield
        return
    with open(path, "a", encoding="utf-8") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def file_sha256(path: Path | str) -> str:

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
    import torch

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
            "tokens_per_second": info.get("tokens_per_second"),
            "threads": info.get("threads"),
            "load_average": info.get("load_average"),
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
