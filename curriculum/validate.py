"""Validation: every check raises ConfigError with one line naming the numbers and the fix.

>>> from curriculum.config import load_config
>>> cfg = load_config(None, ["stages.warmup.prompts_per_step=3"], validate_config=False)
>>> validate(cfg, world_size=5, check_paths=False)
Traceback (most recent call last):
...
curriculum.schema.ConfigError: stages.warmup: generation batch prompts_per_step * num_generations = 3 * 8 = 24 is not divisible by world_size * steps_per_generation = 5 * 1 = 5; make prompts_per_step * num_generations a multiple of 5
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from curriculum.schema import ConfigError, RunConfig, StageConfig, TrainConfig

__all__ = [
    "LOSS_TYPES",
    "BatchPlan",
    "batch_plan",
    "is_local_path",
    "select_stages",
    "validate",
]

SCHEDULES = ("constant", "linear", "cosine")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")  # trl 1.16
SCALE_REWARDS = ("group", "batch", "none")
IS_LEVELS = ("token", "sequence")
AGGREGATIONS = ("sum_then_normalize", "normalize_then_sum")
DTYPES = ("float32", "bfloat16", "float16", "auto")
PROMPT_STYLES = ("base", "chat")
VLLM_MODES = ("colocate", "server")
VLLM_IS_MODES = ("sequence_mask", "sequence_truncate", "token_mask", "token_truncate")  # trl 1.16
MIN_PEOPLE, MAX_PEOPLE = 2, 16

# GRPOConfig keys the YAML manages elsewhere: train.extra must not set them a second time.
_MANAGED = {f.name for f in fields(TrainConfig)} - {
    "extra",
    "lr_schedule",
    "lr_floor",
    "lr_decay_from",
    "max_prompt_length",
} | {
    "num_generations",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "generation_batch_size",
    "max_steps",
    "num_train_epochs",
    "output_dir",
    "lr_scheduler_type",
    "lr_scheduler_kwargs",
    "seed",
    "report_to",
    "reward_weights",
}


@dataclass(frozen=True)
class BatchPlan:
    """How one stage's generation batch maps onto TRL's batch settings."""

    generation_batch_size: int  # prompts_per_step * num_generations completions per generation
    per_device_train_batch_size: int
    steps_per_generation: int  # micro-batches per generation batch (TRL's steps_per_generation)
    gradient_accumulation_steps: int
    world_size: int


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _choice(value: str, allowed: tuple[str, ...], key: str, hint: str = "") -> None:
    _need(value in allowed, f"{key} is {value!r}; use one of {', '.join(allowed)}{hint}")


def is_local_path(name_or_path: str) -> bool:
    """A folder path rather than a Hugging Face id ("org/name") or "tiny".

    >>> [is_local_path(s) for s in ("tiny", "Qwen/Qwen2.5-7B-Instruct-1M", "./m", "/a/b", "a/b/c")]
    [False, False, True, True, True]
    """
    if name_or_path == "tiny":
        return False
    s = name_or_path
    return s.startswith(("/", ".", "~")) or "\\" in s or s.count("/") > 1 or os.path.isdir(s)


def batch_plan(config: RunConfig, stage_name: str, *, world_size: int = 1) -> BatchPlan:
    """Resolve (and check) the batch settings of one stage.

    The generation batch (prompts_per_step * num_generations completions) is split over
    world_size processes and steps_per_generation micro-batches; one optimizer step takes
    gradient_accumulation_steps micro-batches.
    """
    st, tr = config.stages[stage_name], config.train
    n, pps = st.num_generations, st.prompts_per_step
    gen = pps * n
    where = f"stages.{stage_name}"
    pd, spg = tr.per_device_train_batch_size, tr.steps_per_generation
    _need(world_size >= 1, f"world_size is {world_size}; it must be at least 1")
    if pd is None:
        spg = spg or tr.gradient_accumulation_steps
        _need(
            gen % (world_size * spg) == 0,
            f"{where}: generation batch prompts_per_step * num_generations = {pps} * {n} = {gen} "
            f"is not divisible by world_size * steps_per_generation = {world_size} * {spg} = "
            f"{world_size * spg}; make prompts_per_step * num_generations a multiple of "
            f"{world_size * spg}",
        )
        pd = gen // (world_size * spg)
    else:
        _need(
            gen % (pd * world_size) == 0,
            f"{where}: generation batch prompts_per_step * num_generations = {pps} * {n} = {gen} "
            f"is not divisible by per_device_train_batch_size * world_size = {pd} * {world_size} "
            f"= {pd * world_size}; make prompts_per_step * num_generations a multiple of "
            f"{pd * world_size}, or set train.per_device_train_batch_size: null (derived)",
        )
        implied = gen // (pd * world_size)
        _need(
            spg is None or spg == implied,
            f"{where}: steps_per_generation ({spg}) disagrees with generation batch {gen} / "
            f"(per_device_train_batch_size {pd} * world_size {world_size}) = {implied}; set "
            "train.steps_per_generation to null (derived) or per_device_train_batch_size to null",
        )
        spg = implied
    return BatchPlan(gen, pd, spg, tr.gradient_accumulation_steps, world_size)


def select_stages(config: RunConfig, selector: str) -> list[str]:
    """Stages named by ``--stage``: all | N (1-based) | name | comma-separated list of those.

    >>> from curriculum.config import load_config
    >>> cfg = load_config(None, check_paths=False)
    >>> select_stages(cfg, "all"), select_stages(cfg, "2"), select_stages(cfg, "explore,3")
    (['warmup', 'explore', 'anneal'], ['explore'], ['explore', 'anneal'])
    """
    names = list(config.stages)
    if selector.strip() == "all":
        return names
    chosen: list[str] = []
    for part in (p.strip() for p in selector.split(",")):
        if part.isdigit() and 1 <= int(part) <= len(names):
            name = names[int(part) - 1]
        elif part in config.stages:
            name = part
        else:
            raise ConfigError(
                f"unknown stage {part!r} for --stage; use all, 1-{len(names)} or one of: "
                f"{', '.join(names)}"
            )
        if name not in chosen:
            chosen.append(name)
    return sorted(chosen, key=names.index)  # stages always run in config order


def _check_people(people: Mapping[int, float], key: str) -> None:
    _need(len(people) > 0, f"{key} is empty; give person counts and weights, e.g. {{3: 1.0}}")
    for count, weight in people.items():
        _need(
            isinstance(count, int) and MIN_PEOPLE <= count <= MAX_PEOPLE,
            f"{key} has person count {count}; use {MIN_PEOPLE}..{MAX_PEOPLE}",
        )
        _need(
            isinstance(weight, int | float) and math.isfinite(weight) and weight > 0,
            f"{key}.{count} has weight {weight}; weights must be positive numbers",
        )


def _check_rewards(specs: list[dict[str, Any]], key: str, available: list[str]) -> None:
    _need(len(specs) > 0, f"{key} is empty; list at least one reward, e.g. - name: logic_rl")
    for i, spec in enumerate(specs):
        name = spec.get("name")
        _need(
            isinstance(name, str) and name != "",
            f"{key}[{i}] has no name; write e.g. - {{name: logic_rl_format}}",
        )
        weight = spec.get("weight", 1.0)
        _need(
            isinstance(weight, int | float) and not isinstance(weight, bool),
            f"{key}[{i}] ({name}) has weight {weight!r}; use a number",
        )
        _need(
            name in available,
            f"{key}[{i}] names unknown reward {name!r}; available: {', '.join(available)}",
        )


def _available_rewards() -> list[str]:
    # Imported here: `import curriculum` (run records for the dashboard) skips rewards (~50 ms).
    from rewards.registry import available

    return sorted(available())


def _check_stage(name: str, st: StageConfig, config: RunConfig, world_size: int) -> None:
    k = f"stages.{name}"
    _need(
        not name.isdigit() and name != "all" and "," not in name and name != "",
        f"stage name {name!r} is reserved or invalid (--stage uses all, numbers and commas); "
        "rename the stage",
    )
    _check_people(st.people, f"{k}.people")
    _need(st.steps > 0, f"{k}.steps is {st.steps}; it must be > 0")
    _need(
        st.num_generations >= 2,
        f"{k}.num_generations is {st.num_generations}; GRPO needs at least 2 per prompt",
    )
    _need(st.prompts_per_step >= 1, f"{k}.prompts_per_step is {st.prompts_per_step}; use >= 1")
    t = st.temperature
    _choice(t.schedule, SCHEDULES, f"{k}.temperature.schedule")
    _need(t.start > 0, f"{k}.temperature.start is {t.start}; it must be > 0 (greedy is not RL)")
    _need(t.end is None or t.end > 0, f"{k}.temperature.end is {t.end}; it must be > 0 (or null)")
    _need(
        t.schedule != "constant" or t.end is None or t.end == t.start,
        f"{k}.temperature goes {t.start} -> {t.end} but schedule is constant; "
        "set schedule linear or cosine, or end: null",
    )
    _need(0 < st.top_p <= 1, f"{k}.top_p is {st.top_p}; it must be in (0, 1] (1.0 = off)")
    _need(st.top_k >= 0, f"{k}.top_k is {st.top_k}; it must be >= 0 (0 = off)")
    _need(
        st.min_p is None or 0 <= st.min_p <= 1,
        f"{k}.min_p is {st.min_p}; it must be in [0, 1] or null",
    )
    _need(
        st.max_completion_length is None or st.max_completion_length > 0,
        f"{k}.max_completion_length is {st.max_completion_length}; it must be > 0 (or null)",
    )
    _need(st.beta is None or st.beta >= 0, f"{k}.beta is {st.beta}; it must be >= 0 (or null)")
    _need(
        st.learning_rate_scale > 0,
        f"{k}.learning_rate_scale is {st.learning_rate_scale}; it must be > 0",
    )
    _need(
        st.dataset_size is None or st.dataset_size >= st.prompts_per_step,
        f"{k}.dataset_size is {st.dataset_size}; it must hold at least prompts_per_step "
        f"({st.prompts_per_step}) puzzles, or be null (steps * prompts_per_step)",
    )
    _need(st.depth >= 1, f"{k}.depth is {st.depth}; it must be >= 1")
    _need(st.width >= 1, f"{k}.width is {st.width}; it must be >= 1")
    p = st.promotion
    for field_name in ("format_error_below", "accuracy_at_least"):
        v = getattr(p, field_name)
        _need(
            v is None or 0 <= v <= 1,
            f"{k}.promotion.{field_name} is {v}; it is a ratio in [0, 1] (or null = off)",
        )
    _need(p.window >= 1, f"{k}.promotion.window is {p.window}; it must be >= 1")
    _need(p.min_steps >= 0, f"{k}.promotion.min_steps is {p.min_steps}; it must be >= 0")
    ds = st.dynamic_sampling
    _need(
        ds.max_rounds >= 1,
        f"{k}.dynamic_sampling.max_rounds is {ds.max_rounds}; use >= 1 (generation rounds per "
        "step, the step's own included; 1 = drop zero-std groups without refilling)",
    )
    # The refill picks whole groups out of the batch; with several processes a group's
    # completions are spread over them (TRL gathers the rewards), so a pick would need a
    # cross-process reshuffle of every tensor.
    _need(
        not ds.enabled or world_size == 1,
        f"{k}.dynamic_sampling needs one training process, but world_size is {world_size}; "
        f"set {k}.dynamic_sampling.enabled=false or launch one process",
    )
    batch_plan(config, name, world_size=world_size)


def _check_train(config: RunConfig) -> None:
    tr, k = config.train, "train"
    total = sum(s.steps for s in config.stages.values())
    _need(tr.learning_rate > 0, f"{k}.learning_rate is {tr.learning_rate}; it must be > 0")
    _need(tr.lr_floor >= 0, f"{k}.lr_floor is {tr.lr_floor}; it must be >= 0")
    _need(
        tr.lr_floor <= tr.learning_rate,
        f"{k}.lr_floor ({tr.lr_floor}) is above train.learning_rate ({tr.learning_rate}); "
        "lower lr_floor or raise learning_rate",
    )
    _choice(tr.lr_schedule, SCHEDULES, f"{k}.lr_schedule")
    _need(
        tr.lr_schedule == "constant" or tr.lr_floor > 0,
        f"{k}.lr_floor is 0 with lr_schedule {tr.lr_schedule}: the last step would train at LR 0; "
        f"set lr_floor > 0 (e.g. {tr.learning_rate / 10:g})",
    )
    _need(tr.warmup_steps >= 0, f"{k}.warmup_steps is {tr.warmup_steps}; it must be >= 0")
    _need(
        tr.warmup_steps <= total,
        f"{k}.warmup_steps ({tr.warmup_steps}) exceeds the run's {total} steps; lower it",
    )
    _need(
        tr.lr_decay_from is None or tr.lr_decay_from in config.stages,
        f"{k}.lr_decay_from names unknown stage {tr.lr_decay_from!r}; use one of "
        f"{', '.join(config.stages)} or null",
    )
    _need(tr.beta >= 0, f"{k}.beta is {tr.beta}; it must be >= 0 (0 = no KL term)")
    _choice(tr.loss_type, LOSS_TYPES, f"{k}.loss_type")
    _choice(
        tr.scale_rewards, SCALE_REWARDS, f"{k}.scale_rewards", " (TRL's true = group, false = none)"
    )
    _choice(tr.importance_sampling_level, IS_LEVELS, f"{k}.importance_sampling_level")
    _choice(tr.multi_objective_aggregation, AGGREGATIONS, f"{k}.multi_objective_aggregation")
    _need(
        tr.loss_type != "luspo" or tr.importance_sampling_level == "sequence",
        f"{k}.loss_type luspo needs importance_sampling_level sequence (it is "
        f"{tr.importance_sampling_level})",
    )
    _need(tr.epsilon > 0, f"{k}.epsilon is {tr.epsilon}; it must be > 0")
    _need(
        tr.epsilon_high is None or tr.epsilon_high >= tr.epsilon,
        f"{k}.epsilon_high ({tr.epsilon_high}) is below epsilon ({tr.epsilon}); raise it or null",
    )
    _need(tr.num_iterations >= 1, f"{k}.num_iterations is {tr.num_iterations}; use >= 1")
    _need(
        tr.steps_per_generation is None or tr.steps_per_generation >= 1,
        f"{k}.steps_per_generation is {tr.steps_per_generation}; use >= 1 or null",
    )
    _need(
        0 < tr.top_entropy_quantile <= 1,
        f"{k}.top_entropy_quantile is {tr.top_entropy_quantile}; it must be in (0, 1]",
    )
    _need(
        tr.max_completion_length > 0,
        f"{k}.max_completion_length is {tr.max_completion_length}; it must be > 0",
    )
    _need(
        tr.max_prompt_length is None or tr.max_prompt_length > 0,
        f"{k}.max_prompt_length is {tr.max_prompt_length}; it must be > 0 (or null)",
    )
    _need(
        tr.gradient_accumulation_steps >= 1,
        f"{k}.gradient_accumulation_steps is {tr.gradient_accumulation_steps}; use >= 1",
    )
    _need(
        tr.per_device_train_batch_size is None or tr.per_device_train_batch_size >= 1,
        f"{k}.per_device_train_batch_size is {tr.per_device_train_batch_size}; use >= 1 or null",
    )
    _need(tr.weight_decay >= 0, f"{k}.weight_decay is {tr.weight_decay}; it must be >= 0")
    for name in ("adam_beta1", "adam_beta2"):
        v = getattr(tr, name)
        _need(0 <= v < 1, f"{k}.{name} is {v}; it must be in [0, 1)")
    _need(tr.adam_epsilon > 0, f"{k}.adam_epsilon is {tr.adam_epsilon}; it must be > 0")
    _need(tr.max_grad_norm > 0, f"{k}.max_grad_norm is {tr.max_grad_norm}; it must be > 0")
    _need(
        tr.repetition_penalty > 0,
        f"{k}.repetition_penalty is {tr.repetition_penalty}; it must be > 0 (1.0 = off)",
    )
    _need(tr.logging_steps >= 1, f"{k}.logging_steps is {tr.logging_steps}; use >= 1")
    _choice(tr.vllm_mode, VLLM_MODES, f"{k}.vllm_mode")
    _choice(tr.vllm_importance_sampling_mode, VLLM_IS_MODES, f"{k}.vllm_importance_sampling_mode")
    _need(
        0 < tr.vllm_gpu_memory_utilization <= 1,
        f"{k}.vllm_gpu_memory_utilization is {tr.vllm_gpu_memory_utilization}; "
        "it must be in (0, 1]",
    )
    _need(
        tr.vllm_tensor_parallel_size >= 1,
        f"{k}.vllm_tensor_parallel_size is {tr.vllm_tensor_parallel_size}; use >= 1",
    )
    if tr.use_vllm and tr.vllm_max_model_length is not None:
        prompt = tr.max_prompt_length or 0
        for name, st in config.stages.items():
            comp = st.max_completion_length or tr.max_completion_length
            need = prompt + comp
            _need(
                tr.vllm_max_model_length >= need,
                f"{k}.vllm_max_model_length ({tr.vllm_max_model_length}) < max_prompt_length "
                f"({prompt}) + stages.{name} max_completion_length ({comp}) = {need}; "
                f"raise vllm_max_model_length to at least {need}",
            )
    for key in tr.extra:
        _need(
            key not in _MANAGED,
            f"{k}.extra.{key} duplicates a setting the config manages; set it in train or "
            "stages.<name> instead",
        )


def _check_model(config: RunConfig, check_paths: bool) -> None:
    m = config.model
    _choice(m.dtype, DTYPES, "model.dtype")
    _need(m.name_or_path != "", "model.name_or_path is empty; use tiny, a HF id or a folder")
    if check_paths and is_local_path(m.name_or_path):
        p = Path(m.name_or_path).expanduser()
        _need(
            p.is_dir(),
            f"model.name_or_path: folder {m.name_or_path} does not exist; build it first, or "
            "use tiny (the embedded model) or a Hugging Face id",
        )
        _need(
            (p / "config.json").is_file(),
            f"model.name_or_path: {m.name_or_path} has no config.json; point it at a model folder",
        )
    _need(
        m.name_or_path == "tiny" or not m.tiny,
        "model.tiny settings are given but model.name_or_path is not tiny; remove model.tiny "
        "or set name_or_path: tiny",
    )


def _check_eval(config: RunConfig) -> None:
    e, k = config.eval, "eval"
    _need(len(e.people) > 0, f"{k}.people is empty; list person counts, e.g. [2, 3]")
    for count in e.people:
        _need(
            MIN_PEOPLE <= count <= MAX_PEOPLE,
            f"{k}.people has person count {count}; use {MIN_PEOPLE}..{MAX_PEOPLE}",
        )
    _need(len(set(e.people)) == len(e.people), f"{k}.people {e.people} repeats a person count")
    _need(e.n >= 1, f"{k}.n is {e.n}; use >= 1 puzzle per person count")
    _need(e.max_new_tokens >= 1, f"{k}.max_new_tokens is {e.max_new_tokens}; use >= 1")
    _need(e.batch_size >= 1, f"{k}.batch_size is {e.batch_size}; use >= 1")
    _need(e.samples >= 1, f"{k}.samples is {e.samples}; use >= 1")
    _need(e.temperature >= 0, f"{k}.temperature is {e.temperature}; use >= 0 (0 = greedy)")
    _need(
        e.samples == 1 or e.temperature > 0,
        f"{k}.samples is {e.samples} but temperature is 0 (greedy samples are identical); "
        "set eval.temperature > 0 or samples: 1",
    )
    _need(e.depth >= 1 and e.width >= 1, f"{k}.depth/width are {e.depth}/{e.width}; use >= 1")


def _check_run(config: RunConfig) -> None:
    r, k = config.run, "run"
    _need(
        r.name.strip() != "" and "/" not in r.name,
        f"{k}.name {r.name!r}: use a non-empty name without '/'",
    )
    _need(
        r.checkpoint_every >= 0,
        f"{k}.checkpoint_every is {r.checkpoint_every}; use >= 0 (0 = stage ends only)",
    )
    _need(r.keep_checkpoints >= 1, f"{k}.keep_checkpoints is {r.keep_checkpoints}; use >= 1")
    _need(r.samples_per_step >= 0, f"{k}.samples_per_step is {r.samples_per_step}; use >= 0")
    _choice(config.prompt.style, PROMPT_STYLES, "prompt.style")


def validate(config: RunConfig, *, world_size: int = 1, check_paths: bool = True) -> None:
    """Raise ConfigError (one line) at the first problem; return None when the config is good.

    ``world_size`` is the number of training processes (accelerate's num_processes): the
    generation batch must split evenly over them. ``check_paths`` checks that a local model
    folder exists (off for recipes checked on a machine without the model).
    """
    _need(len(config.stages) > 0, "stages is empty; define at least one stage")
    _check_run(config)
    _check_model(config, check_paths)
    _check_train(config)
    available = _available_rewards()
    _check_rewards(config.rewards, "rewards", available)
    for name, st in config.stages.items():
        _check_stage(name, st, config, world_size)
        if st.rewards is not None:
            _check_rewards(st.rewards, f"stages.{name}.rewards", available)
    _check_eval(config)
