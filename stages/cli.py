"""``kk-train``: run the curriculum (or some stages of it), or watch a run directory.

    kk-train --stage all|1|2|3|<name>[,<name>] [--config FILE] [--output-dir DIR] [--resume]
             [--max-steps N] [--dry-run] [--no-dashboard] [key=value overrides ...]
    kk-train watch RUN_DIR [--once] ...

User errors (unknown config keys, bad values, a missing model path, a run directory that
already holds a run) print one line and exit 2. Ctrl-C finishes the current step, saves a
checkpoint and exits 130; ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kk_puzzles.cli_errors import EXIT_INTERRUPTED, fail, run_cli
from stages.scaleout.launch import is_main_process

PROG = "kk-train"

USAGE_EXAMPLES = """examples:
  kk-train --stage all
  kk-train --stage all stages.explore.temperature.start=1.1 train.learning_rate=4e-7
  kk-train --stage 2 --output-dir runs/kk-default --no-dashboard
  kk-train --resume --output-dir runs/kk-default
  kk-train --dry-run --config configs/micro.yaml
  kk-train watch runs/kk-default
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kk-train",
        description="Curriculum GRPO on Knights-and-Knaves puzzles (TRL GRPOTrainer).",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--stage",
        default="all",
        help="stages to run: all, a 1-based number, a stage name, or a comma list (default all)",
    )
    p.add_argument("--config", default=None, help="YAML config (default configs/default.yaml)")
    p.add_argument("--output-dir", default=None, help="run directory (default runs/<run.name>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the output directory from its last checkpoint",
    )
    p.add_argument(
        "--max-steps", type=int, default=None, help="cap every stage at N steps (smoke runs)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved stages and schedules, train nothing",
    )
    p.add_argument(
        "--no-dashboard", action="store_true", help="plain log lines instead of the live dashboard"
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides (OmegaConf dotlist), e.g. train.learning_rate=4e-7",
    )
    return p


def _default_run_dir(config: Any) -> Path:
    if config.run.output_dir:
        return Path(config.run.output_dir)
    return Path("runs") / str(config.run.name)


def resolve_config(args: argparse.Namespace) -> tuple[Any, Path, list[str]]:
    """(validated config, run directory, selected stage names) for the parsed arguments."""
    from curriculum.config import ConfigError, from_yaml_text, load_config
    from curriculum.validate import select_stages, validate

    for item in args.overrides:
        if "=" not in item:
            raise ConfigError(
                f"unexpected argument '{item}': overrides are key=value "
                "(e.g. train.learning_rate=4e-7); see kk-train --help"
            )
    config = load_config(args.config, args.overrides, validate_config=False)
    run_dir = Path(args.output_dir) if args.output_dir else _default_run_dir(config)
    saved = run_dir / "config.yaml"
    if args.resume and args.config is None and saved.is_file():
        # Resume with the run's own resolved config; command-line overrides still apply.
        from curriculum.config import apply_overrides

        config = apply_overrides(from_yaml_text(saved.read_text(encoding="utf-8")), args.overrides)
    if args.max_steps is not None:
        if args.max_steps < 1:
            raise ConfigError(f"--max-steps must be at least 1, got {args.max_steps}")
        for stage in config.stages.values():
            stage.steps = min(int(stage.steps), int(args.max_steps))
    validate(config, world_size=_world_size(), check_paths=not args.dry_run)
    stages = select_stages(config, args.stage)
    return config, run_dir, stages


def check_run_dir(run_dir: Path, *, resume: bool, stages: Sequence[str], config: Any) -> str | None:
    """A one-line problem with the run directory for these flags, or None (no heavy imports)."""
    import json

    state_file = run_dir / "state.json"
    if resume:
        if not state_file.is_file():
            return f"--resume: {run_dir} holds no run (no state.json); drop --resume to start one"
        return None
    if not state_file.is_file() or not (run_dir / "metrics.jsonl").exists():
        return None
    try:
        done = set(json.loads(state_file.read_text(encoding="utf-8")).get("completed_stages", []))
    except (OSError, ValueError):
        done = set()
    names = list(config.stages)
    before = set(names[: names.index(stages[0])])
    if list(stages) == names or not before <= done:
        return (
            f"{run_dir} already holds a run; add --resume to continue it, or pass "
            "--output-dir for a new run"
        )
    return None


def _world_size() -> int:
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def dry_run_table(config: Any, stages: Sequence[str]) -> str:
    """The resolved stages and schedules as a text table (curriculum.describe; no torch)."""
    from curriculum.describe import describe

    return describe(config, world_size=_world_size(), selected=list(stages))


def torch_threads(cpu_count: int | None = None, env: dict[str, str] | None = None) -> int:
    """Intra-op threads: ``OMP_NUM_THREADS`` when set, else half the cores (at least 1).

    Measured here on the 2-core machine with other jobs running: greedy generation with
    the tiny model took 9-19 s on 1 thread and 76-79 s on 2 (threads preempted at every
    barrier). Its matrices are too small for a second thread to pay off, so 2 cores get 1.

    >>> torch_threads(2, {}), torch_threads(16, {}), torch_threads(16, {"OMP_NUM_THREADS": "3"})
    (1, 8, 3)
    """
    env = dict(os.environ) if env is None else env
    cpus = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    try:
        if env.get("OMP_NUM_THREADS"):
            return max(1, int(env["OMP_NUM_THREADS"]))
    except ValueError:
        pass
    return max(1, cpus // 2)


def _setup_threads() -> None:
    import torch

    torch.set_num_threads(torch_threads())


def _setup_wandb(config: Any) -> None:
    report = str(config.run.report_to or "")
    if "wandb" not in report:
        return
    try:
        import wandb  # noqa: F401
    except ImportError:
        from curriculum.config import ConfigError

        raise ConfigError(
            "run.report_to: wandb needs the wandb package (pip install 'kk-rl[wandb]')"
        ) from None
    if not os.environ.get("WANDB_API_KEY") and "WANDB_MODE" not in os.environ:
        os.environ["WANDB_MODE"] = "offline"  # no key: log locally, sync later
    os.environ.setdefault("WANDB_PROJECT", "kk-rl")


def _make_dashboard(run_dir: Path, config: Any, no_dashboard: bool) -> Any:
    if not is_main_process():
        return None  # one dashboard per run: the main process's
    from stages.dashboard import StageDashboard
    from stages.dashboard.alerts import AlertThresholds

    try:
        thresholds = AlertThresholds.from_config(config)
    except ValueError:
        thresholds = None
    live = False if no_dashboard else None
    return StageDashboard(run_dir, live=live, thresholds=thresholds)


def train_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    from curriculum.config import ConfigError

    try:
        config, run_dir, stages = resolve_config(args)
    except ConfigError as err:
        return fail(PROG, str(err))
    if args.dry_run:
        print(dry_run_table(config, stages))
        return 0
    problem = check_run_dir(run_dir, resume=args.resume, stages=stages, config=config)
    if problem:
        return fail(PROG, problem)
    try:
        _setup_wandb(config)
        from stages.scaleout.vllm_support import preflight_vllm

        preflight_vllm(config, world_size=_world_size())
    except ConfigError as err:
        return fail(PROG, str(err))

    from stages.driver import RunInterrupted, RunSetupError, quiet_libraries, run_training

    quiet_libraries()
    _setup_threads()
    dashboard = _make_dashboard(run_dir, config, args.no_dashboard)
    try:
        run_training(
            config,
            run_dir,
            stages=stages,
            resume=args.resume,
            dashboard=dashboard,
            world_size=_world_size(),
        )
    except (ConfigError, RunSetupError) as err:
        return fail(PROG, str(err))
    except FileNotFoundError as err:
        return fail(PROG, f"file not found: {err}")
    except (RunInterrupted, KeyboardInterrupt) as err:
        msg = str(err) or "interrupted"
        print(
            f"kk-train: {msg}; continue with: kk-train --resume --output-dir {run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        if dashboard is not None:
            try:
                dashboard.close()
            except Exception:  # closing the screen must not hide the real outcome
                pass
    if is_main_process():
        print(f"run finished: {run_dir} (report: {run_dir / 'report.md'})")
    return 0


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "watch":
        from stages.dashboard import watch_main

        return int(watch_main(argv[1:]) or 0)
    return train_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, _dispatch, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
