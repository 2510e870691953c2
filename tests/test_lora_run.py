"""LoRA (``model.peft``) for real: a micro curriculum, interrupted and resumed, trains only
adapter weights, saves adapters, hands them over between stages and across the resume, and
kk-eval evaluates the merged model."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from pathlib import Path

import peft  # in the dev extra: never skipped
import pytest
import torch
from kill_harness import resume, train_cmd
from safetensors.torch import load_file

from analysis import eval_cli
from curriculum import run_records as rr
from curriculum.config import load_config
from stages.model_io import load_model_and_tokenizer
from stages.stage_inputs import resolve_base_model
from stages.tiny.tokenizer import save_tokenizer

pytestmark = pytest.mark.slow

TARGETS = ("q_proj", "v_proj")
LORA = [
    "model.peft={r: 2, lora_alpha: 4, target_modules: [q_proj, v_proj], lora_dropout: 0.0}",
    # micro's two rewards give every completion -3: zero-std groups, no gradient. A tag count
    # and a soft length penalty spread the groups in warmup; after that the KL term (beta >
    # 0) pulls on the adapters in every stage. The high LR makes the policy move enough for
    # the KL to be visibly non-zero in float32.
    "rewards=[{name: logic_rl_format}, {name: logic_rl_answer}, {name: tag_count}, "
    "{name: overlong, max_length: 40, buffer: 32}]",
    "train.max_completion_length=40",
    "train.learning_rate=0.01",
    "eval.max_new_tokens=8",
]
TOTAL = 6  # micro: 3 stages x 2 steps


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def test_lora_micro_run_trains_hands_over_resumes_and_evaluates_adapters(
    tmp_path, bin_dir, repo_root
):
    config = load_config(repo_root / "configs" / "micro.yaml", LORA)
    base = Path(resolve_base_model(config)).resolve()
    base_digest = _digest(base)
    out = tmp_path / "run"

    # Ctrl-C once explore has logged a step, then --resume from the interrupt checkpoint.
    proc = subprocess.Popen(
        train_cmd(bin_dir, repo_root, out, overrides=LORA),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=repo_root,
    )
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if (out / rr.METRICS_FILE).exists() and any(
            m.stage == "explore" for m in rr.read_metrics(out)
        ):
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    res, _ = resume(train_cmd(bin_dir, repo_root, out, "--resume", overrides=LORA), cwd=repo_root)
    assert res.returncode == 0, res.stderr[-3000:]

    metrics = rr.read_metrics(out)
    assert [m.global_step for m in metrics] == list(range(1, TOTAL + 1))
    resumed = [e for e in rr.read_events(out) if e.kind == "resume"]
    assert len(resumed) == 1 and resumed[0].global_step >= 3  # inside explore
    # A fresh adapter (B = 0) makes the policy the reference exactly: KL 0.0 at step 1. The
    # first step of each later stage and the first resumed step start from the previous
    # adapter, so their KL is > 0; a re-initialised adapter would give 0.0 again.
    kl = {m.global_step: m.kl for m in metrics}
    assert kl[1] == 0.0
    for step in (3, 5, resumed[0].global_step + 1):
        assert kl[step] is not None and kl[step] > 0.0, (step, kl)

    # Only adapters are saved, over the base model this run started from.
    info = rr.read_run_info(out)
    assert Path(info.extra["base_model"]) == base
    ckpts = sorted(p for p in (out / rr.CHECKPOINTS_DIR).iterdir() if not p.name.startswith("."))
    assert {p.name for p in ckpts} >= {"stage-warmup", "stage-explore", "stage-anneal"}
    for ckpt in ckpts:
        assert not (ckpt / "model.safetensors").exists() and not (ckpt / "config.json").exists()
        adapter_cfg = json.loads((ckpt / "adapter_config.json").read_text())
        assert Path(adapter_cfg["base_model_name_or_path"]) == base
        keys = load_file(str(ckpt / "adapter_model.safetensors")).keys()
        assert keys and all(("lora_A" in k or "lora_B" in k) and k.split(".")[-3] in TARGETS
                            for k in keys), sorted(keys)  # fmt: skip
    final = out / rr.CHECKPOINTS_DIR / "stage-anneal"
    adapter = load_file(str(final / "adapter_model.safetensors"))
    # The optimizer holds state for the adapter weights alone, stepped once per step of
    # the whole run (handed over between stages and across the resume).
    opt = torch.load(final / "optimizer.pt", weights_only=True)["state"]
    assert sum(s["exp_avg"].numel() for s in opt.values()) == sum(
        t.numel() for t in adapter.values()
    )
    assert {int(s["step"]) for s in opt.values()} == {TOTAL}

    # The base folder is untouched; merged, the run changed the target projections only.
    assert _digest(base) == base_digest
    merged, tok = load_model_and_tokenizer(final)
    plain, _ = load_model_and_tokenizer(base)
    assert not isinstance(merged, peft.PeftModel)
    base_params = dict(plain.named_parameters())
    changed = set()
    for name, param in merged.named_parameters():
        if torch.equal(param, base_params[name]):
            continue
        changed.add(name)
    assert changed and all(n.split(".")[-2] in TARGETS for n in changed), sorted(changed)

    # kk-eval on the run directory evaluates each stage's adapter merged into the base:
    # the same figures as kk-eval on a folder holding that merged model.
    held = out / "eval" / "heldout.jsonl"
    folder = tmp_path / "merged"
    merged.save_pretrained(folder)
    save_tokenizer(tok, folder)
    args = ["--data", str(held), "--max-new-tokens", "8", "--people", "2", "--n", "4"]
    proc = subprocess.run(
        [str(bin_dir / "kk-eval"), "--model", str(out), *args, "--out", str(tmp_path / "e1")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert eval_cli.main(["--model", str(folder), *args, "--out", str(tmp_path / "e2")]) == 0
    run_doc = json.loads((tmp_path / "e1" / "eval.json").read_text())
    ref_doc = json.loads((tmp_path / "e2" / "eval.json").read_text())
    name = info.run_name
    assert list(run_doc["models"]) == [f"{name}/base"] + [
        f"{name}/stage-{s}" for s in ("warmup", "explore", "anneal")
    ]
    assert (
        run_doc["models"][f"{name}/stage-anneal"]["groups"] == ref_doc["models"]["merged"]["groups"]
    )
