"""Launch helpers: who am I in a multi-process run, and which process may write files.

Under ``accelerate launch`` (or ``torchrun``) every process runs the whole ``kk-train``
program. Only the main process may create the run directory, append to ``metrics.jsonl``
and ``events.jsonl``, write ``state.json`` and the report, and drive the dashboard; the other
processes compute and stay silent. These helpers read the launcher's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), so they answer correctly *before* accelerate or
``torch.distributed`` are initialised, and never initialise anything themselves (creating an
accelerate ``PartialState`` here would fix its CPU/GPU choice before ``GRPOConfig`` does).

>>> env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
>>> launch_info(env)
LaunchInfo(rank=1, world_size=2, local_rank=1, local_world_size=1, launcher='torchrun')
>>> is_main_process(env), world_size(env)
(False, 2)
>>> is_main_process({})  # plain `kk-train`: one process, the main one
True

Also here: the GPU count (without importing torch when CUDA is hidden), a barrier, a
broadcast and a gather that are no-ops in a single process, the LoRA config builder for ``model.peft``,
and the exact commands of vLLM server mode
(``python -m stages.scaleout.launch server-mode``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "LaunchInfo",
    "ServerModePlan",
    "Silent",
    "broadcast_from_main",
    "gather_from_all",
    "gpu_count",
    "import_peft",
    "is_local_main_process",
    "is_main_process",
    "launch_info",
    "main",
    "main_only",
    "main_process_first",
    "on_main_process",
    "peft_config_from",
    "process_index",
    "server_mode_plan",
    "wait_for_everyone",
    "world_size",
]

T = TypeVar("T")

# Launchers export these; MPI launchers (accelerate's --mpirun_hostfile) use their own names.
_RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_LOCAL_RANK_VARS = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK")
_LOCAL_SIZE_VARS = ("LOCAL_WORLD_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")


@dataclass(frozen=True)
class LaunchInfo:
    """This process's place in the run."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    launcher: str  # "single" | "torchrun" (accelerate launch, torchrun, deepspeed) | "mpi"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _first_int(env: Mapping[str, str], names: Sequence[str], default: int) -> int:
    for name in names:
        value = env.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                raise ValueError(
                    f"environment variable {name}={value!r} is not an integer"
                ) from None
    return default


def launch_info(env: Mapping[str, str] | None = None) -> LaunchInfo:
    """Rank and world size from the launcher's environment (``os.environ`` by default)."""
    env = os.environ if env is None else env
    rank = _first_int(env, _RANK_VARS, 0)
    size = _first_int(env, _SIZE_VARS, 1)
    local_rank = _first_int(env, _LOCAL_RANK_VARS, rank)
    local_size = _first_int(env, _LOCAL_SIZE_VARS, 1)
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"inconsistent launch environment: rank {rank}, world size {size}")
    if "RANK" in env or "LOCAL_RANK" in env:
        launcher = "torchrun"
    elif any(n in env for n in _RANK_VARS[1:]):
        launcher = "mpi"
    else:
        launcher = "single"
    return LaunchInfo(rank, size, local_rank, local_size, launcher)


def world_size(env: Mapping[str, str] | None = None) -> int:
    """Number of training processes (accelerate's ``num_processes``)."""
    return launch_info(env).world_size


def process_index(env: Mapping[str, str] | None = None) -> int:
    """Global rank of this process (0 = main)."""
    return launch_info(env).rank


def is_main_process(env: Mapping[str, str] | None = None) -> bool:
    """True on the one process that writes the run directory and drives the dashboard."""
    return launch_info(env).rank == 0


def is_local_main_process(env: Mapping[str, str] | None = None) -> bool:
    """True on the first process of each node (e.g. for per-node caches such as the tiny model)."""
    return launch_info(env).local_rank == 0


def on_main_process(fn: Callable[..., T]) -> Callable[..., T | None]:
    """Decorator: run ``fn`` on the main process only; other processes get None.

    >>> @on_main_process
    ... def write():
    ...     return "written"
    >>> write()
    'written'
    """

    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        return fn(*args, **kwargs) if is_main_process() else None

    wrapper.__name__ = getattr(fn, "__name__", "wrapper")
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


class Silent:
    """What non-main processes get instead of a writer or a dashboard: every call does nothing.

    >>> s = Silent()
    >>> s.step(1, sample=None) is None and s.anything_else() is None
    True
    >>> with Silent() as quiet:
    ...     quiet.event("stage_start")
    """

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("__"):
            raise AttributeError(name)
        return _noop

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def main_only(factory: Callable[[], T], env: Mapping[str, str] | None = None) -> T | Silent:
    """``factory()`` on the main process (a dashboard, a run-record writer); ``Silent()`` elsewhere.

    The factory is not even called on other processes, so nothing there opens a file or a
    terminal.

    >>> main_only(lambda: "dashboard", {"RANK": "0", "WORLD_SIZE": "2"})
    'dashboard'
    >>> type(main_only(lambda: "dashboard", {"RANK": "1", "WORLD_SIZE": "2"})).__name__
    'Silent'
    """
    return factory() if is_main_process(env) else Silent()


def _dist_ready() -> bool:
    if world_size() <= 1 or "torch" not in sys.modules:
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def wait_for_everyone() -> None:
    """Barrier across processes once ``torch.distributed`` is up; a no-op otherwise."""
    if _dist_ready():
        import torch.distributed as dist

        dist.barrier()


def broadcast_from_main(obj: T) -> T:
    """The main process's ``obj`` on every process (e.g. a run name holding a timestamp).

    A no-op in a single process or before ``torch.distributed`` is initialised.

    >>> broadcast_from_main({"run": "kk-default"})
    {'run': 'kk-default'}
    """
    if not _dist_ready():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_from_all(obj: T) -> list[T]:
    """Every process's ``obj``, in rank order, on every process (``[obj]`` in one process).

    Every process must call it: it is a collective, like the barrier.

    >>> gather_from_all({"records": 3})
    [{'records': 3}]
    """
    if not _dist_ready():
        return [obj]
    import torch.distributed as dist

    box: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(box, obj)
    return box


@contextmanager
def main_process_first() -> Iterator[None]:
    """Let the main process do a job first (build a cache), then the others reuse it."""
    main = is_main_process()
    if not main:
        wait_for_everyone()
    try:
        yield
    finally:
        if main:
            wait_for_everyone()


def gpu_count() -> int:
    """CUDA devices this process can see (0 without torch CUDA support or with none visible)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


# ----------------------------------------------------------------------------- LoRA (peft)


def import_peft(error: type[Exception], why: str, fix: str = "") -> Any:
    """The peft module; ``error`` (one line: ``why``, what to install, ``fix``) without it."""
    try:
        import peft
    except ImportError:
        raise error(
            f"{why} but peft is not installed; pip install 'kk-rl[peft]' {fix}".rstrip()
        ) from None
    return peft


def peft_config_from(peft_cfg: Mapping[str, Any] | None) -> Any:
    """``model.peft`` (LoraConfig keyword arguments) as a ``peft.LoraConfig``; None = full FT.

    The driver passes the result to ``GRPOTrainer(peft_config=...)`` in every stage, over
    the base model; the trainer's resume from the stage's starting checkpoint (an adapter
    folder) loads the adapter weights into it, so adapters, optimizer state and step carry
    over between stages and across ``--resume``. Unknown keys are a ConfigError naming the
    key, not a TypeError from deep inside peft.

    >>> peft_config_from(None) is None
    True
    """
    if peft_cfg is None:
        return None
    from curriculum import ConfigError

    peft = import_peft(
        ConfigError, "model.peft is set", "or set model.peft: null (full fine-tuning)"
    )
    import dataclasses

    kwargs = dict(peft_cfg)
    known = {f.name for f in dataclasses.fields(peft.LoraConfig)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(
            f"model.peft.{unknown[0]} is not a peft.LoraConfig field (peft {peft.__version__}); "
            "remove it or fix the name"
        )
    kwargs.setdefault("task_type", "CAUSAL_LM")
    try:
        return peft.LoraConfig(**kwargs)
    except (TypeError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"model.peft: {first}") from None


# ----------------------------------------------------------------------------- server mode


@dataclass(frozen=True)
class ServerModePlan:
    """vLLM server mode on one node: the server on some GPUs, the trainer on the rest."""

    server_gpus: tuple[int, ...]
    trainer_gpus: tuple[int, ...]
    serve_command: str
    train_command: str

    def script(self) -> str:
        return (
            f"# 1) vLLM server on GPU(s) {','.join(map(str, self.server_gpus))}\n"
            f"{self.serve_command} &\n"
            f"# 2) trainer on GPU(s) {','.join(map(str, self.trainer_gpus))} "
            "(it waits up to vllm_server_timeout seconds for the server)\n"
            f"{self.train_command}\n"
        )


def server_mode_plan(
    config: Any,
    *,
    config_path: str,
    total_gpus: int = 8,
    server_gpus: int = 1,
    accelerate_config: str = "configs/accelerate/zero2.yaml",
    overrides: Sequence[str] = (),
) -> ServerModePlan:
    """The two commands of vLLM server mode for ``config`` on one node of ``total_gpus``.

    The server takes the last ``server_gpus`` GPUs (tensor parallel over all of them); the
    trainer takes the first ``total_gpus - server_gpus`` as its processes. Raises
    ``curriculum.ConfigError`` when the split or the batch does not work.
    """
    from curriculum import ConfigError, validate
    from stages.scaleout.vllm_support import server_settings

    if not 1 <= server_gpus < total_gpus:
        raise ConfigError(
            f"server mode needs 1 <= server GPUs < total GPUs; got {server_gpus} of {total_gpus}"
        )
    trainer = tuple(range(total_gpus - server_gpus))
    server = tuple(range(total_gpus - server_gpus, total_gpus))
    validate(config, world_size=len(trainer), check_paths=False)
    s = server_settings(config)
    max_len = config.train.vllm_max_model_length
    serve = [
        "trl",
        "vllm-serve",
        "--model",
        str(config.model.name_or_path),
        "--tensor_parallel_size",
        str(server_gpus),
        "--data_parallel_size",
        "1",
        "--gpu_memory_utilization",
        "0.9",
        "--host",
        "0.0.0.0",
        "--port",
        str(s.port),
        "--dtype",
        "bfloat16" if config.train.bf16 else "auto",
    ]
    if max_len is not None:
        serve += ["--max_model_len", str(max_len)]
    serve_cmd = f"CUDA_VISIBLE_DEVICES={','.join(map(str, server))} " + shlex.join(serve)
    train = [
        "accelerate",
        "launch",
        "--config_file",
        accelerate_config,
        "--num_processes",
        str(len(trainer)),
        "-m",
        "stages.cli",
        "--config",
        config_path,
        "--stage",
        "all",
        "train.use_vllm=true",
        "train.vllm_mode=server",
        *overrides,
    ]
    train_cmd = f"CUDA_VISIBLE_DEVICES={','.join(map(str, trainer))} " + shlex.join(train)
    return ServerModePlan(server, trainer, serve_cmd, train_cmd)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stages.scaleout.launch server-mode RECIPE [--gpus 8 --server-gpus 1]``: the plan.

    Also ``python -m stages.scaleout.launch info``: this process's rank, world size and GPU count.
    """
    parser = argparse.ArgumentParser(
        prog="python -m stages.scaleout.launch", description=main.__doc__
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="rank, world size and visible GPUs of this process")
    sm = sub.add_parser("server-mode", help="print the commands of vLLM server mode")
    sm.add_argument("config", help="recipe YAML, e.g. configs/recipes/.../logic_rl_3stage.yaml")
    sm.add_argument("--gpus", type=int, default=8, help="GPUs on the node (default 8)")
    sm.add_argument("--server-gpus", type=int, default=1, help="GPUs for vLLM (default 1)")
    sm.add_argument("--accelerate-config", default="configs/accelerate/zero2.yaml")
    sm.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. train.learning_rate=3e-7")
    # Overrides may follow the options (argparse stops positionals at the first option).
    args, rest = parser.parse_known_args(argv)
    bad = [r for r in rest if "=" not in r or r.startswith("-")]
    if bad or (rest and args.cmd != "server-mode"):
        parser.error(f"unrecognized arguments: {' '.join(bad or rest)}")
    if args.cmd == "server-mode":
        args.overrides = [*args.overrides, *rest]
    if args.cmd == "info":
        info = launch_info()
        print(
            f"rank {info.rank} of {info.world_size} (local {info.local_rank}), "
            f"launcher {info.launcher}, visible GPUs {gpu_count()}"
        )
        return 0
    from curriculum import ConfigError, load_config

    try:
        trainer_procs = args.gpus - args.server_gpus
        overrides = ["train.use_vllm=true", "train.vllm_mode=server", *args.overrides]
        cfg = load_config(
            args.config, overrides, world_size=max(trainer_procs, 1), check_paths=False
        )
        plan = server_mode_plan(
            cfg,
            config_path=args.config,
            total_gpus=args.gpus,
            server_gpus=args.server_gpus,
            accelerate_config=args.accelerate_config,
            overrides=args.overrides,
        )
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(plan.script(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
