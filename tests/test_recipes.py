"""Every GPU recipe loads, validates for its stated GPU count and becomes TRL GRPOConfigs.

No GPU and no model hub here: recipes name hub ids (Qwen/...), which are never loaded; the
checks work on the configuration alone (check_paths=False, no weights). TrainingArguments
refuses bf16 on a machine without a GPU unless ``use_cpu`` is set, so the GRPOConfig builds
below add ``train.extra.use_cpu=true``; nothing else is changed from the recipe files.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from curriculum import ConfigError, batch_plan, load_config
from curriculum.config import RunConfig, StageConfig, TrainConfig

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted((REPO / "configs" / "recipes").glob("*/*.yaml"))
LAUNCH_RE = re.compile(r"^#\s*launch:\s*gpus=(\d+)\s+accelerate=(\S+)\s*$", re.MULTILINE)
CPU_BUILD = ["train.extra.use_cpu=true"]  # see the module docstring


def launch_of(path: Path) -> tuple[int, Path]:
    m = LAUNCH_RE.search(path.read_text(encoding="utf-8"))
    assert m, f"{path} lacks its '# launch: gpus=N accelerate=PATH' line"
    return int(m.group(1)), REPO / m.group(2)


def ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.stem}" for p in paths]


@pytest.fixture(scope="module")
def grpo_configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """recipe id -> stage name -> KKGRPOConfig, built for the recipe's stated GPU count."""
    from stages.grpo_config import build_grpo_config

    out: dict[str, dict[str, Any]] = {}
    tmp = tmp_path_factory.mktemp("grpo")
    for path in RECIPES:
        gpus, _ = launch_of(path)
        cfg = load_config(path, CPU_BUILD, world_size=gpus, check_paths=False)
        out[ids([path])[0]] = {
            name: build_grpo_config(cfg, name, output_dir=tmp / name, world_size=gpus)
            for name in cfg.stages
        }
    return out


def test_the_four_recipes_exist() -> None:
    names = set(ids(RECIPES))
    assert {
        "qwen2.5-7b-instruct-1m/logic_rl_3stage",
        "qwen2.5-7b-instruct-1m/lora_1gpu",
        "qwen2.5-3b-instruct/logic_rl_3stage",
        "qwen2.5-1.5b-instruct/logic_rl_3stage",
    } <= names


@pytest.mark.parametrize("path", RECIPES, ids=ids(RECIPES))
def test_recipe_loads_and_validates_for_its_gpu_count(path: Path) -> None:
    gpus, accelerate_cfg = launch_of(path)
    assert accelerate_cfg.is_file(), f"{path.name} names a missing {accelerate_cfg}"
    acc = yaml.safe_load(accelerate_cfg.read_text())
    assert acc["num_processes"] == gpus, "recipe and accelerate config disagree on GPU count"
    cfg = load_config(path, world_size=gpus, check_paths=False)
    assert cfg.model.name_or_path.startswith("Qwen/")
    assert cfg.train.bf16 is True and acc["mixed_precision"] == "bf16"
    for name in cfg.stages:
        plan = batch_plan(cfg, name, world_size=gpus)
        st = cfg.stages[name]
        # TRL's rule for the stated GPU count: the generation batch holds whole groups and
        # is exactly prompts_per_step * num_generations completions, one optimizer step.
        gen = plan.per_device_train_batch_size * gpus * plan.steps_per_generation
        assert gen == st.prompts_per_step * st.num_generations
        assert gen % st.num_generations == 0
        assert plan.steps_per_generation == cfg.train.gradient_accumulation_steps


def test_the_7b_recipe_is_the_spec_curriculum() -> None:
    path = REPO / "configs/recipes/qwen2.5-7b-instruct-1m/logic_rl_3stage.yaml"
    cfg = load_config(path, world_size=8, check_paths=False)
    assert cfg.model.name_or_path == "Qwen/Qwen2.5-7B-Instruct-1M"
    assert cfg.model.dtype == "bfloat16" and cfg.train.bf16
    assert cfg.train.use_vllm and cfg.train.vllm_mode == "colocate"
    assert list(cfg.stages) == ["warmup", "explore", "anneal"]
    w, e, a = (cfg.stages[n] for n in ("warmup", "explore", "anneal"))
    assert (dict(w.people), w.num_generations, w.temperature.start) == ({3: 1.0}, 32, 1.0)
    assert (dict(e.people), e.num_generations, e.temperature.start) == ({5: 1.0}, 64, 1.2)
    assert (a.num_generations, a.temperature.start, a.temperature.end) == (16, 1.2, 0.9)
    assert a.temperature.schedule != "constant"
    assert all(s.prompts_per_step == 8 for s in (w, e, a))
    assert cfg.train.learning_rate == 4e-7 and cfg.train.lr_floor == 2e-7
    assert cfg.train.lr_decay_from == "anneal"
    assert cfg.train.beta == 0.001
    assert cfg.train.max_completion_length == 4096
    assert [r["name"] for r in cfg.rewards] == ["logic_rl_format", "logic_rl_answer"]


def test_the_lr_curve_ends_at_the_floor() -> None:
    from curriculum import run_learning_rate, stage_bounds

    path = REPO / "configs/recipes/qwen2.5-7b-instruct-1m/logic_rl_3stage.yaml"
    cfg = load_config(path, world_size=8, check_paths=False)
    bounds = {name: (first, last) for name, first, last in stage_bounds(cfg)}
    assert run_learning_rate(cfg, bounds["warmup"][0]) == pytest.approx(4e-7)
    assert run_learning_rate(cfg, bounds["explore"][1]) == pytest.approx(4e-7)
    assert run_learning_rate(cfg, bounds["anneal"][1]) == pytest.approx(2e-7)


# Keys the recipes must spell out because TRL's defaults moved between releases.
PINNED_TRAIN = (
    "loss_type",
    "scale_rewards",
    "epsilon",
    "epsilon_high",
    "beta",
    "mask_truncated_completions",
    "steps_per_generation",
    "num_iterations",
    "importance_sampling_level",
    "gradient_checkpointing",
    "bf16",
    "logging_steps",
    "max_grad_norm",
    "vllm_importance_sampling_correction",
    "vllm_importance_sampling_mode",
)
PINNED_EXTRA = (
    "vllm_importance_sampling_clip_max",
    "use_bias_correction_kl",
    "vllm_enable_sleep_mode",
)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: node}
    return {prefix[:-1]: node}


@pytest.mark.parametrize("path", RECIPES, ids=ids(RECIPES))
def test_trl_defaults_we_rely_on_are_written_out(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    for key in PINNED_TRAIN:
        assert key in raw["train"], f"{path.name}: train.{key} must be written out"
    for key in PINNED_EXTRA:
        assert key in raw["train"]["extra"], f"{path.name}: train.extra.{key} must be written"
    # Every written key carries a comment saying why (the line or the one after it).
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^\s{2}(\w+):", line)
        if m and m.group(1) in PINNED_TRAIN:
            assert "#" in line or lines[i + 1].lstrip().startswith("#"), line


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b)
    return a == b


@pytest.mark.parametrize("path", RECIPES, ids=ids(RECIPES))
def test_every_key_is_consumed(path: Path, grpo_configs: dict[str, dict[str, Any]]) -> None:
    """Each YAML key is a schema field, and its value arrives in the GRPOConfig (or a kk_ field,
    or the driver's model/peft/reward/eval inputs)."""
    gpus, _ = launch_of(path)
    raw = yaml.safe_load(path.read_text())
    schema = {f.name for f in dataclasses.fields(RunConfig)}
    assert set(raw) <= schema
    cfg = load_config(path, CPU_BUILD, world_size=gpus, check_paths=False)
    built = grpo_configs[ids([path])[0]]
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(raw["train"]) <= train_fields
    # train.* -> GRPOConfig fields of the same name (or the kk_ field the driver reads).
    derived = {"per_device_train_batch_size", "steps_per_generation"}
    renamed = {
        "lr_schedule": "kk_lr_schedule",
        "lr_floor": "kk_lr_floor",
        "lr_decay_from": "kk_lr_decay_from",
        "warmup_steps": "kk_warmup_steps",
        "max_prompt_length": "kk_max_prompt_length",
    }
    for name, args in built.items():
        st = cfg.stages[name]
        for key, value in raw["train"].items():
            if key == "extra":
                continue
            attr = renamed.get(key, key)
            assert hasattr(args, attr), f"train.{key} reaches no GRPOConfig field"
            if key in derived:
                continue
            if key == "max_completion_length" and st.max_completion_length is not None:
                value = st.max_completion_length
            if key == "beta" and st.beta is not None:
                value = st.beta
            assert _same(getattr(args, attr), value), (key, getattr(args, attr), value)
        for key, value in raw["train"]["extra"].items():
            assert _same(getattr(args, key), value), (key, getattr(args, key), value)
        # stages.<name>.* -> sampling and group settings of that stage's GRPOConfig.
        stage_raw = raw["stages"][name]
        assert set(stage_raw) <= {f.name for f in dataclasses.fields(StageConfig)}
        assert args.num_generations == stage_raw["num_generations"]
        assert args.temperature == pytest.approx(stage_raw["temperature"]["start"])
        assert args.kk_temperature_end == pytest.approx(
            stage_raw["temperature"]["end"] or stage_raw["temperature"]["start"]
        )
        assert args.kk_temperature_schedule == stage_raw["temperature"]["schedule"]
        assert args.top_p == stage_raw["top_p"] and args.top_k == stage_raw["top_k"]
        assert args.min_p == stage_raw["min_p"]
        assert args.kk_prompts_per_step == stage_raw["prompts_per_step"]
        assert args.kk_stage_steps == stage_raw["steps"]
        assert args.reward_weights == [1.0] * len(raw["rewards"])
        assert args.seed == raw["run"]["seed"]
    # model.*: init kwargs are from_pretrained arguments, peft keys are LoraConfig fields.
    assert set(raw["model"]["init_kwargs"]) <= {"attn_implementation", "trust_remote_code"}
    if raw["model"]["peft"] is not None:
        pytest.importorskip("peft", reason="peft not installed (pip install 'kk-rl[peft]')")
        from stages.scaleout.launch import peft_config_from

        lora = peft_config_from(cfg.model.peft)
        for key, value in raw["model"]["peft"].items():
            got = getattr(lora, key)
            assert got == value or (key == "task_type" and str(got).endswith(value)), key


@pytest.mark.parametrize("path", RECIPES, ids=ids(RECIPES))
def test_vllm_settings_are_coherent(path: Path) -> None:
    from stages.scaleout.vllm_support import check_vllm

    gpus, _ = launch_of(path)
    cfg = load_config(path, world_size=gpus, check_paths=False)
    assert check_vllm(cfg, world_size=gpus, gpus=gpus) == []
    tr = cfg.train
    assert 0 < tr.vllm_gpu_memory_utilization <= 0.9
    longest = max(s.max_completion_length or tr.max_completion_length for s in cfg.stages.values())
    assert tr.vllm_max_model_length >= tr.max_prompt_length + longest
    assert gpus % tr.vllm_tensor_parallel_size == 0


def test_peft_recipe_builds_a_lora_config_and_rejects_bad_keys() -> None:
    pytest.importorskip("peft", reason="peft not installed (pip install 'kk-rl[peft]')")
    from stages.scaleout.launch import peft_config_from

    path = REPO / "configs/recipes/qwen2.5-7b-instruct-1m/lora_1gpu.yaml"
    cfg = load_config(path, world_size=1, check_paths=False)
    lora = peft_config_from(cfg.model.peft)
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (32, 64, 0.0)
    assert lora.target_modules == "all-linear"
    with pytest.raises(ConfigError, match=r"model\.peft\.rank is not a peft\.LoraConfig field"):
        peft_config_from({"rank": 8})
    assert peft_config_from(None) is None


def test_a_recipe_fails_for_a_gpu_count_it_was_not_made_for() -> None:
    path = REPO / "configs/recipes/qwen2.5-7b-instruct-1m/logic_rl_3stage.yaml"
    with pytest.raises(ConfigError, match=r"not divisible by world_size \* steps_per_generation"):
        load_config(path, world_size=6, check_paths=False)


# A two-person puzzle (Zoey a knight, Oliver a knave); completions as the 7B recipes see
# them (the prompt ends with "<think>"). Columns: our total (format + answer) under the
# recipes' rewards, hand-computed; Logic-RL's training scorer (Unakar/Logic-RL
# verl/utils/reward_score/kk.py, read by hand), which scores the text after the assistant
# header, the prefilled "<think>" included. docs/rewards.md states the rules.
RIGHT = "(1) Zoey is a knight\n(2) Oliver is a knave"
LAYOUTS = [
    # newline between </think> and <answer>: the instruct layout both accept
    (f"So.</think>\n<answer>{RIGHT}</answer>", 3.0, 3.0),
    (f"So.</think>\n\n<answer>{RIGHT.replace('knave', 'knight')}</answer>\n", -0.5, -0.5),
    (f"So.</think> <answer>{RIGHT}</answer>", 3.0, 3.0),
    # anything after </answer>: Logic-RL checks nothing there, ours fails the format
    (f"So.</think>\n<answer>{RIGHT}</answer> Hope this helps!", -3.0, 3.0),
    # text between </think> and <answer>: the same
    (f"So.</think>\nFinal answer:\n<answer>{RIGHT}</answer>", -3.0, 3.0),
    # prose in the answer: Logic-RL's parse finds each "NAME is a ROLE"; ours is strict
    ("So.</think>\n<answer>Zoey is a knight and Oliver is a knave, as shown.</answer>", -1.0, 3.0),
    # each tag once, in order: both fail the format
    (f"So.</think>\n<answer>{RIGHT}</answer>\n<answer>{RIGHT}</answer>", -3.0, -3.0),
    (f"<think>Again.</think>\n<answer>{RIGHT}</answer>", -3.0, -3.0),
    (f"So.\n<answer>{RIGHT}</answer></think>", -3.0, -3.0),
]


@pytest.mark.parametrize("name", ["logic_rl_3stage.yaml", "lora_1gpu.yaml"])
def test_7b_recipes_score_the_instruct_layout_as_logic_rl_and_keep_the_tail_rules(name) -> None:
    from stages.stage_inputs import build_reward_funcs

    cfg = load_config(REPO / "configs/recipes/qwen2.5-7b-instruct-1m" / name, check_paths=False)
    assert cfg.prompt.prefill_think
    funcs, weights = build_reward_funcs(cfg.rewards, cfg.prompt.prefill_think)
    texts = [text for text, _, _ in LAYOUTS]
    columns = {
        "names": ['["Zoey", "Oliver"]'] * len(texts),
        "solution": ["[true, false]"] * len(texts),
    }
    totals = [0.0] * len(texts)
    for f in funcs:
        for i, value in enumerate(f(texts, **columns)):
            totals[i] += weights[f.__name__] * value
    assert totals == [ours for _, ours, _ in LAYOUTS]
