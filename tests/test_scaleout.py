"""Scale-out plumbing without a GPU: launch helpers, vLLM coherence checks, accelerate configs,
the server-mode commands, the paper estimate, and the temperature reaching the vLLM generator.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from curriculum import ConfigError, load_config
from stages.scaleout import launch
from stages.scaleout.vllm_support import (
    VLLM_PIN,
    VLLMUnavailable,
    check_vllm,
    installed_vllm,
    require_vllm,
    server_settings,
    validate_vllm,
    vllm_generator,
    vllm_unavailable_reason,
)

REPO = Path(__file__).resolve().parent.parent
R7B = REPO / "configs/recipes/qwen2.5-7b-instruct-1m/logic_rl_3stage.yaml"
VLLM_REASON = vllm_unavailable_reason(import_check=False)  # vllm stays out of this process


# ----------------------------------------------------------------------------- launch.py


def test_launch_info_reads_the_launcher_environment() -> None:
    info = launch.launch_info({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.launcher) == (3, 8, 1, "torchrun")
    assert not info.is_main and info.is_distributed
    mpi = launch.launch_info({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"})
    assert (mpi.rank, mpi.world_size, mpi.launcher, mpi.is_main) == (0, 2, "mpi", True)
    single = launch.launch_info({})
    assert (single.rank, single.world_size, single.launcher) == (0, 1, "single")
    assert launch.is_local_main_process({"RANK": "9", "WORLD_SIZE": "16", "LOCAL_RANK": "0"})
    with pytest.raises(ValueError, match="rank 2, world size 2"):
        launch.launch_info({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="RANK='x'"):
        launch.launch_info({"RANK": "x"})


def test_main_process_only_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    @launch.on_main_process
    def write(x: int) -> int:
        calls.append(x)
        return x

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert write(5) is None and calls == []
    assert not launch.is_main_process() and launch.world_size() == 2
    monkeypatch.setenv("RANK", "0")
    assert write(7) == 7 and calls == [7]
    # torch.distributed is not initialised: barrier and broadcast are no-ops, never a hang.
    launch.wait_for_everyone()
    assert launch.broadcast_from_main(["a"]) == ["a"]
    with launch.main_process_first():
        pass


def test_main_only_never_builds_the_object_elsewhere() -> None:
    built: list[str] = []

    def factory() -> str:
        built.append("x")
        return "dashboard"

    other = launch.main_only(factory, {"RANK": "1", "WORLD_SIZE": "2"})
    assert built == [] and isinstance(other, launch.Silent)
    assert other.step("metrics", None) is None
    with other as quiet:
        assert quiet.close() is None
    assert launch.main_only(factory, {"RANK": "0", "WORLD_SIZE": "2"}) == "dashboard"
    assert built == ["x"]


def test_gpu_count_respects_hidden_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert launch.gpu_count() == 0


# ----------------------------------------------------------------------------- vLLM checks


def _cfg(*overrides: str, world_size: int = 8) -> Any:
    return load_config(R7B, list(overrides), world_size=world_size, check_paths=False)


def test_vllm_unavailable_reason_is_specific() -> None:
    if importlib.util.find_spec("vllm") is None:
        assert VLLM_REASON is not None and "not installed" in VLLM_REASON
        assert "kk-rl[vllm]" in VLLM_REASON and "kk-rl[vllm-cpu]" in VLLM_REASON
        with pytest.raises(VLLMUnavailable, match=r"train\.use_vllm=false"):
            require_vllm()
    elif VLLM_REASON is not None:
        assert "no CUDA GPU" in VLLM_REASON or "is written for" in VLLM_REASON
    else:
        assert installed_vllm() in (("vllm", VLLM_PIN), ("vllm-cpu", VLLM_PIN))


@pytest.mark.parametrize(
    ("overrides", "world_size", "message"),
    [
        (["train.vllm_tensor_parallel_size=3"], 8, r"vllm_tensor_parallel_size \(3\) must divide"),
        (["train.vllm_max_model_length=null"], 8, r"vllm_max_model_length is null.*1,010,000"),
        (["train.max_prompt_length=null"], 8, r"max_prompt_length is null"),
        (["train.vllm_max_model_length=1000000"], 8, r"wastes the KV cache"),
        (["train.vllm_gpu_memory_utilization=0.95"], 8, r"0.95 in colocate mode"),
        (["train.extra.generation_kwargs={temperature: 0.5}"], 8, r"generation_kwargs.temperature"),
        (["train.extra.vllm_server_port=9000"], 8, r"vllm_server_port is set but vllm_mode is"),
    ],
)
def test_incoherent_vllm_settings_are_named(
    overrides: list[str], world_size: int, message: str
) -> None:
    cfg = _cfg(*overrides, world_size=world_size)
    problems = check_vllm(cfg, world_size=world_size, gpus=8)
    assert any(__import__("re").search(message, p) for p in problems), problems
    with pytest.raises(ConfigError):
        validate_vllm(cfg, world_size=world_size, gpus=8)


def test_curriculum_rejects_short_max_model_length_and_bad_utilisation() -> None:
    with pytest.raises(ConfigError, match=r"vllm_max_model_length \(4000\) < max_prompt_length"):
        _cfg("train.vllm_max_model_length=4000")
    for bad in ("0", "1.5"):
        with pytest.raises(ConfigError, match="vllm_gpu_memory_utilization"):
            _cfg(f"train.vllm_gpu_memory_utilization={bad}")


def test_colocate_needs_one_gpu_per_process() -> None:
    problems = check_vllm(_cfg(), world_size=8, gpus=4)
    assert any("8 processes need 8 GPUs, the node has 4" in p for p in problems)


def test_server_mode_settings() -> None:
    server = ["train.vllm_mode=server", "train.extra.vllm_enable_sleep_mode=false"]
    cfg = _cfg(*server, world_size=4)
    s = server_settings(cfg)
    assert (s.url, s.timeout, s.group_port) == ("http://0.0.0.0:8000", 240.0, 51216)
    assert check_vllm(cfg, world_size=4, gpus=8) == []
    # The trainer must leave GPUs for the server.
    assert any("leave none" in p for p in check_vllm(cfg, world_size=8, gpus=8))
    bad = _cfg(
        *server,
        "train.extra.vllm_server_port=51216",
        "train.extra.vllm_server_timeout=0",
        "train.extra.vllm_server_base_url=localhost:8000",
        world_size=4,
    )
    text = " | ".join(check_vllm(bad, world_size=4, gpus=8))
    assert "need different ports" in text
    assert "vllm_server_timeout is 0" in text
    assert "use a URL like http://" in text
    remote = _cfg(*server, "train.extra.vllm_server_base_url=http://10.0.0.5:8000", world_size=4)
    assert server_settings(remote).url == "http://10.0.0.5:8000"


def test_vllm_off_means_nothing_to_check() -> None:
    assert check_vllm(load_config(None, check_paths=False), world_size=1) == []


# ----------------------------------------------------------------------------- server mode


def test_server_mode_commands_for_the_7b_recipe() -> None:
    """The worked 8-GPU example of docs/gpu.md, printed by the real CLI."""
    cmd = [
        sys.executable,
        "-m",
        "stages.scaleout.launch",
        "server-mode",
        str(R7B.relative_to(REPO)),
        "--gpus",
        "8",
        "--server-gpus",
        "4",
        "train.gradient_accumulation_steps=16",
    ]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if not ln.startswith("#")]
    serve, train = lines[0], lines[1]
    assert serve.startswith("CUDA_VISIBLE_DEVICES=4,5,6,7 trl vllm-serve --model ")
    assert "--tensor_parallel_size 4" in serve and "--max_model_len 4608" in serve
    assert serve.endswith(" &")
    assert train.startswith("CUDA_VISIBLE_DEVICES=0,1,2,3 accelerate launch --config_file ")
    assert "--num_processes 4" in train and "train.vllm_mode=server" in train
    assert "train.gradient_accumulation_steps=16" in train
    # 6 trainer processes cannot split 8 prompts x 32 rollouts: a one-line error, exit 2.
    bad = subprocess.run([*cmd[:-2], "2"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "not divisible by world_size" in bad.stderr and bad.stderr.count("\n") == 1


# ----------------------------------------------------------------------------- accelerate


@pytest.mark.parametrize(
    ("name", "kind", "procs"),
    [
        ("ddp", "MULTI_GPU", 8),
        ("zero2", "DEEPSPEED", 8),
        ("zero3", "DEEPSPEED", 8),
        ("fsdp2", "FSDP", 8),
        ("single_gpu", "NO", 1),
        ("cpu_2proc", "MULTI_GPU", 2),
    ],
)
def test_accelerate_configs_parse_with_accelerate(name: str, kind: str, procs: int) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(REPO / "configs" / "accelerate" / f"{name}.yaml"))
    assert str(cfg.distributed_type).split(".")[-1] == kind
    assert cfg.num_processes == procs
    if kind == "DEEPSPEED":
        stage = int(name[-1])
        assert cfg.deepspeed_config["zero_stage"] == stage
        # Batch sizes and accumulation come from the recipe, never from this file.
        assert "gradient_accumulation_steps" not in cfg.deepspeed_config
    if kind == "FSDP":
        assert cfg.fsdp_config["fsdp_version"] == 2


def test_deepspeed_json_leaves_batch_settings_to_the_trainer() -> None:
    import json

    for name, stage in (("zero2", 2), ("zero3", 3)):
        ds = json.loads((REPO / "configs" / "deepspeed" / f"{name}.json").read_text())
        assert ds["zero_optimization"]["stage"] == stage
        for key in ("train_batch_size", "train_micro_batch_size_per_gpu"):
            assert ds[key] == "auto"
        assert ds["gradient_accumulation_steps"] == "auto"


# ----------------------------------------------------------------------------- estimate


def _estimate_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "estimate_gpu", REPO / "benchmarks/estimate_gpu.py"
    )
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["estimate_gpu"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_estimate_formulas_by_hand() -> None:
    est = _estimate_module()
    qwen7 = est.ARCHS["Qwen/Qwen2.5-7B-Instruct-1M"]
    assert qwen7.kv_bytes_per_token == 2 * 28 * 4 * 128 * 2 == 57344
    # q, k, v, o, gate, up, down: (in + out) * r per layer
    per_layer = (3584 * 2) + (3584 + 512) * 2 + (3584 * 2) + (3584 + 18944) * 2 + (18944 + 3584)
    assert qwen7.lora_params(32) == 32 * per_layer * 28 == 80_740_352
    r = est.estimate(R7B)
    explore = next(s for s in r["stages"] if s["stage"] == "explore")
    p = 7.62e9
    # ZeRO-2 policy 2P + 14P/8, bf16 reference 2P, vLLM 0.35 x 80 GiB (all GiB = 2**30 B).
    want = (2 * p + 14 * p / 8 + 2 * p) / 2**30 + 0.35 * 80
    assert explore["memory_generation_gib"] == pytest.approx(want)
    # Training: tokens x P x (6 + 2 recompute + 2 old log-probs + 2 reference) / (8 x 312e12 x 0.35)
    tokens = 512 * (300 + 1500)
    assert explore["training_s"] == pytest.approx(tokens * p * 12 / (8 * 312e12 * 0.35))
    # Generation by hand: KV budget 0.35 x 80 GiB - 2P - 2 GiB holds 47 sequences of 4608
    # tokens at 57344 B/token, so 64 rollouts per engine take 2 waves of 3000 decode steps
    # (2 x mean 1500); each step reads the weights + 47 x 1800 tokens of KV cache at
    # 2.039e12 x 0.6 B/s (memory-bound: the FLOP time, 2P x 47 / (312e12 x 0.35), is smaller).
    budget = 0.35 * 80 * 2**30 - 2 * p - 2 * 2**30
    assert int(budget // (57344 * 4608)) == 47
    step = (2 * p + 47 * 1800 * 57344) / (2.039e12 * 0.6)
    assert step > 2 * p * 47 / (312e12 * 0.35)
    assert explore["generation_s"] == pytest.approx(2 * 3000 * step)
    assert r["peak_memory_gib"] < 80


def test_estimate_table_prints_every_recipe() -> None:
    out = subprocess.run(
        [sys.executable, "benchmarks/estimate_gpu.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for path in sorted((REPO / "configs" / "recipes").glob("*/*.yaml")):
        assert str(path.relative_to(REPO)) in out.stdout
    assert "| NO |" not in out.stdout  # every recipe fits 80 GB on paper


# ----------------------------------------------------------------------------- temperature


@pytest.mark.skipif(
    VLLM_REASON is not None or not __import__("torch").cuda.is_available(),
    reason=f"a GPU vLLM engine in this process ({VLLM_REASON or 'no CUDA'}); on a CPU "
    "tests/test_vllm_train.py checks every step's SamplingParams in a kk-train subprocess",
)
def test_set_temperature_reaches_a_real_vllm_engine(tmp_path: Path) -> None:
    """On a GPU machine with vLLM: the SamplingParams of the next rollout carry the new value."""
    from tiny_trainer import make_tiny_trainer

    from stages.temperature import set_temperature

    trainer = make_tiny_trainer(
        tmp_path,
        extra_args={
            "use_vllm": True,
            "vllm_mode": "colocate",
            "vllm_gpu_memory_utilization": 0.2,
            "vllm_max_model_length": 512,
        },
    )
    gen = vllm_generator(trainer)
    assert gen is not None and hasattr(gen, "llm")
    seen: list[Any] = []
    real = gen.llm.generate

    def recording(prompts: Any, sampling_params: Any = None, **kw: Any) -> Any:
        seen.append(sampling_params)
        return real(prompts, sampling_params=sampling_params, **kw)

    gen.llm.generate = recording
    set_temperature(trainer, 0.7)
    gen.generate(prompts=[[1, 2, 3]], images=None, num_generations=1)
    assert seen and seen[-1].temperature == pytest.approx(0.7)


def test_set_temperature_reaches_trl_vllm_generation_standin(tmp_path: Path) -> None:
    """STAND-IN, stated plainly: server mode needs a running ``trl vllm-serve``, so TRL's real
    ``VLLMGeneration`` class is instantiated with its engine start (``_init_vllm``) replaced by a client that
    records the requests it would send to ``trl vllm-serve``. Everything else is real: the
    GRPOTrainer on the tiny model, ``set_temperature``, and TRL's own ``generate`` code that
    builds the sampling parameters. The real-engine twins: the test above (GPU) and
    tests/test_vllm_train.py (colocate on a CPU).
    """
    from tiny_trainer import make_tiny_trainer
    from trl.generation.vllm_generation import VLLMGeneration

    from stages.temperature import get_temperatures, set_temperature

    class RecordingClient:  # stands in for trl.generation.vllm_client.VLLMClient
        def __init__(self) -> None:
            self.requests: list[dict[str, Any]] = []

        def generate(self, prompts: list[list[int]], **params: Any) -> dict[str, Any]:
            self.requests.append(params)
            n = params["n"]
            return {
                "prompt_ids": prompts,
                "completion_ids": [[7, 8] for _ in range(len(prompts) * n)],
                "logprobs": [[[-0.1], [-0.2]] for _ in range(len(prompts) * n)],
            }

    class StandInGeneration(VLLMGeneration):
        def _init_vllm(self) -> None:  # no engine, no server: record requests instead
            self.vllm_client = RecordingClient()

    trainer = make_tiny_trainer(tmp_path)
    args = trainer.args
    trainer.vllm_generation = StandInGeneration(
        model=trainer.model,
        accelerator=trainer.accelerator,
        processing_class=trainer.processing_class,
        mode="server",
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        max_completion_length=args.max_completion_length,
    )
    trainer.use_vllm = True
    assert vllm_generator(trainer) is trainer.vllm_generation
    client = trainer.vllm_generation.vllm_client
    for value in (1.2, 0.9):
        set_temperature(trainer, value)
        assert get_temperatures(trainer)["vllm"] == value
        trainer.vllm_generation.generate(prompts=[[1, 2, 3]] * 2, images=None, num_generations=2)
        assert client.requests[-1]["temperature"] == pytest.approx(value)
        assert client.requests[-1]["n"] == 2


def test_no_vllm_generator_without_use_vllm(tmp_path: Path) -> None:
    class Plain:
        use_vllm = False
        vllm_generation = object()

    assert vllm_generator(Plain()) is None
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest: no hub in tests
