"""Driver overhead: seconds per step of kk-rl's driver against a bare TRL GRPOTrainer.

Both trainers get the same GRPOConfig (``build_grpo_config`` of one stage, with a constant
LR so that both update identically), the same model, dataset, rewards and seed, in one
process, alternating bare / driver rounds so that machine load drifts hit both alike.
"Driver" = ``KKGRPOTrainer`` (LambdaLR over the global step, no-shuffle sampler) with the
recording reward wrappers and ``KKRunCallback`` writing StepMetrics / CompletionSample /
alerts to a run directory every step (plain mode, no dashboard). Reported: median
seconds per step (first step of each round excluded), the overhead, completion tokens per
second, and the process's peak RSS. Wall and CPU seconds are both reported: on a shared
machine the CPU seconds of the process are the steadier measure.

    .venv/bin/python benchmarks/bench_driver.py --config configs/default.yaml --stage warmup
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    ap.add_argument("--stage", default="warmup")
    ap.add_argument("--steps", type=int, default=6, help="steps per round")
    ap.add_argument("--rounds", type=int, default=3, help="bare/driver round pairs")
    ap.add_argument("--model", default=None, help="model folder (default: the config's base)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    import torch
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from curriculum import run_records as rr
    from curriculum.config import load_config
    from curriculum.data import stage_dataset_records
    from curriculum.schedules import run_learning_rate
    from stages.callbacks import BatchRecorder, KKRunCallback, RecordingReward
    from stages.driver import quiet_libraries
    from stages.grpo_config import build_grpo_config
    from stages.run_context import RunContext
    from stages.stage_inputs import (
        build_dataset,
        build_reward_funcs,
        load_policy,
        resolve_base_model,
    )
    from stages.trainer import KKGRPOTrainer

    quiet_libraries()
    overrides = [
        *args.overrides,
        "train.lr_schedule=constant",
        "train.warmup_steps=0",
        "run.checkpoint_every=0",  # checkpoints are not per-step overhead; bare saves none
        "train.shuffle_dataset=false",  # same prompt order in both trainers
        f"stages.{args.stage}.steps={args.steps}",
        f"stages.{args.stage}.promotion.format_error_below=null",
        f"stages.{args.stage}.promotion.accuracy_at_least=null",
    ]
    config = load_config(args.config, overrides)
    base = Path(args.model) if args.model else resolve_base_model(config)
    stage = config.stages[args.stage]
    work = Path(tempfile.mkdtemp(prefix="bench_driver."))

    class Timer(TrainerCallback):
        """Same on both trainers: wall time of each optimizer step."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self.cpu: list[float] = []
            self.tokens: list[float] = []
            self._t = self._c = 0.0

        # A step's time runs from its on_step_begin to the next one (or the end of training),
        # so the driver's per-step work after on_step_end (records, alerts) is counted.
        def _close(self) -> None:
            if self._t:
                self.times.append(time.perf_counter() - self._t)
                self.cpu.append(time.process_time() - self._c)

        def on_step_begin(self, a, s, c, **k):
            self._close()
            self._t, self._c = time.perf_counter(), time.process_time()

        def on_train_end(self, a, s, c, **k):
            self._close()
            self._t = 0.0

        def on_log(self, a, s, c, logs=None, **k):
            if logs and "completions/mean_length" in logs:
                n = stage.prompts_per_step * stage.num_generations
                self.tokens.append(logs["completions/mean_length"] * n)

    def one_round(kind: str, index: int) -> Timer:
        model, tok = load_policy(base, config)
        out = work / f"{kind}-{index}"
        grpo_args = build_grpo_config(config, args.stage, output_dir=out / "trainer")
        records = stage_dataset_records(config, args.stage, exclude_ids=set())
        dataset, _ = build_dataset(
            records, tok, prefill_think=True, max_prompt_length=None, shuffle_seed=None
        )
        funcs, weights = build_reward_funcs(config.rewards, True)
        timer = Timer()
        torch.manual_seed(0)
        if kind == "bare":
            trainer = GRPOTrainer(
                model=model,
                args=grpo_args,
                reward_funcs=funcs,
                train_dataset=dataset,
                processing_class=tok,
                callbacks=[timer],
            )
        else:
            out.mkdir(parents=True, exist_ok=True)
            ctx = RunContext(out, config)
            ctx.printer = lambda line: None
            recorder = BatchRecorder(prefilled_think=True, weights=weights)
            wrapped = [RecordingReward(f, recorder, first=i == 0) for i, f in enumerate(funcs)]
            cb = KKRunCallback(
                ctx,
                stage_name=args.stage,
                stage_cfg=stage,
                first_step=1,
                last_step=args.steps,
                recorder=recorder,
                prefilled_think=True,
            )
            trainer = KKGRPOTrainer(
                model=model,
                args=grpo_args,
                reward_funcs=wrapped,
                train_dataset=dataset,
                processing_class=tok,
                callbacks=[timer, cb],
                lr_at=lambda step: run_learning_rate(config, step, [(args.stage, 1, args.steps)]),
                ref_model_path=str(base) if grpo_args.beta else None,
            )
            cb.trainer = trainer
        # Both trainers' own log printers are removed alike.
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        trainer.train()
        if kind == "driver":
            assert len(rr.read_metrics(out)) == args.steps
        return timer

    results: dict[str, list[float]] = {"bare": [], "driver": []}
    cpu: dict[str, list[float]] = {"bare": [], "driver": []}
    tokens: dict[str, list[float]] = {"bare": [], "driver": []}
    peak: dict[str, float] = {}
    for r in range(args.rounds):
        for kind in ("bare", "driver") if r % 2 == 0 else ("driver", "bare"):
            t = one_round(kind, r)
            results[kind] += t.times[1:]
            cpu[kind] += t.cpu[1:]
            tokens[kind] += [tok / sec for tok, sec in zip(t.tokens[1:], t.times[1:], strict=False)]
            peak[kind] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"round {r} {kind}: median {statistics.median(t.times[1:]):.3f} s/step", flush=True
            )
    bare = statistics.median(results["bare"])
    ours = statistics.median(results["driver"])
    summary = {
        "stage": args.stage,
        "model": str(base),
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "completions_per_step": stage.prompts_per_step * stage.num_generations,
        "max_completion_length": (
            stage.max_completion_length or config.train.max_completion_length
        ),
        "bare_s_per_step": bare,
        "driver_s_per_step": ours,
        "overhead_pct": 100.0 * (ours - bare) / bare,
        # CPU seconds of this process per step: less sensitive to other jobs on the machine.
        "bare_cpu_s_per_step": statistics.median(cpu["bare"]),
        "driver_cpu_s_per_step": statistics.median(cpu["driver"]),
        "cpu_overhead_pct": 100.0
        * (statistics.median(cpu["driver"]) - statistics.median(cpu["bare"]))
        / statistics.median(cpu["bare"]),
        "bare_tokens_per_s": statistics.median(tokens["bare"]) if tokens["bare"] else None,
        "driver_tokens_per_s": statistics.median(tokens["driver"]) if tokens["driver"] else None,
        "peak_rss_mb": max(peak.values()),
        "torch_threads": torch.get_num_threads(),
        "steps_measured": {k: len(v) for k, v in results.items()},
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
