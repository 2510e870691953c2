"""Colocated vLLM on a CPU, for real (vLLM's CPU build, installed by ``make venv``).

Greedy parity between vLLM and HF ``generate`` on the shipped tiny base, before and after a
weight sync from a trained step, through ``stages.scaleout.vllm_cpu``'s ``reload_weights``
sync. The engine runs in a subprocess (``vllm_colocate_check.py``): it initialises
torch.distributed in its process. ~1-2 minutes on the shared 2-core machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from check_script import run_check

from stages.scaleout.vllm_support import vllm_unavailable_reason

VLLM_REASON = vllm_unavailable_reason(import_check=False)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(VLLM_REASON is not None, reason=f"needs vLLM: {VLLM_REASON}"),
]


def test_cpu_weight_sync_keeps_greedy_parity_with_hf(tmp_path: Path) -> None:
    got = run_check(
        "vllm_colocate_check.py", str(tmp_path), out=tmp_path / "colocate.json", timeout=900
    )
    assert got["engine_dtype"] == "torch.float32"  # the policy's dtype, not the bf16 on disk
    # Before training: the engine holds the base weights, token for token HF's greedy output.
    assert got["vllm_before"] == got["hf_before"]
    assert all(len(seq) > 0 for seq in got["hf_before"])
    # One step at lr 0.05 moved the weights and HF's greedy output ...
    assert got["weight_change"] > 1e-3
    assert got["hf_after"] != got["hf_before"]
    # ... the engine kept the old weights until the sync (TRL syncs before a generation) ...
    assert got["vllm_stale"] == got["vllm_before"]
    # ... and after our reload_weights sync it generates what HF generates on the new weights.
    assert got["sync_is_ours"]
    assert got["vllm_after"] == got["hf_after"]
    assert got["released"] and got["engine_gone"]
