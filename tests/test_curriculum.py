"""curriculum config: loading, overrides, unknown keys, YAML round trip, every validation error."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from curriculum import (
    ConfigError,
    RunConfig,
    apply_overrides,
    batch_plan,
    from_yaml_text,
    load_config,
    select_stages,
    to_yaml,
    validate,
)
from curriculum.describe import describe

REPO = Path(__file__).resolve().parent.parent
MICRO = REPO / "configs" / "micro.yaml"
DEFAULT = REPO / "configs" / "default.yaml"


def _one_line_error(overrides: list[str], world_size: int = 1, path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides, world_size=world_size)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


# ------------------------------------------------------------------------- loading


def test_default_config_loads_as_dataclasses() -> None:
    cfg = load_config()
    assert isinstance(cfg, RunConfig)
    assert list(cfg.stages) == ["warmup", "explore", "anneal"]
    warm, explore, anneal = cfg.stages.values()
    assert cfg.model.name_or_path == "tiny"
    assert warm.people == {2: 1.0} and all(isinstance(k, int) for k in explore.people)
    assert warm.temperature.start == 1.0
    assert explore.temperature.start == 1.2 and explore.top_k == 0
    assert (anneal.temperature.start, anneal.temperature.end) == (1.2, 0.9)
    assert anneal.num_generations < explore.num_generations  # rollout n small in the anneal
    assert cfg.train.lr_floor < cfg.train.learning_rate
    assert cfg.train.gradient_checkpointing is False and cfg.train.bf16 is False
    assert [r["name"] for r in cfg.rewards] == ["logic_rl_format", "logic_rl_answer"]


def test_micro_config_is_small() -> None:
    cfg = load_config(MICRO)
    assert sum(s.steps for s in cfg.stages.values()) <= 8
    assert cfg.eval.n <= 8 and cfg.train.max_completion_length <= 64
    assert cfg.model.tiny["hidden_size"] <= 64


def test_importing_curriculum_pulls_no_ml_library() -> None:
    code = (
        "import sys, curriculum, curriculum.data, curriculum.state, curriculum.promotion, "
        "curriculum.describe\n"
        "cfg = curriculum.load_config(None)\n"
        "curriculum.describe(cfg)\n"
        "bad = [m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _trl_defaults() -> dict[str, object]:
    """Field defaults of trl 1.16's GRPOConfig (and the TrainingArguments it extends), read
    from the installed sources with ast, without importing them."""
    trl_dir = Path(importlib.util.find_spec("trl").submodule_search_locations[0])  # type: ignore[union-attr]
    tf_dir = Path(importlib.util.find_spec("transformers").submodule_search_locations[0])  # type: ignore[union-attr]
    out: dict[str, object] = {}
    for path, cls in [
        (tf_dir / "training_args.py", "TrainingArguments"),
        (trl_dir / "trainer" / "base_config.py", "_BaseConfig"),
        (trl_dir / "trainer" / "grpo_config.py", "GRPOConfig"),
    ]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            value = stmt.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "field":
                kw = {k.arg: k.value for k in value.keywords}
                if "default" not in kw:
                    continue
                value = kw["default"]
            try:
                out[stmt.target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return out


@pytest.mark.parametrize("path", [DEFAULT, MICRO], ids=["default", "micro"])
def test_values_commented_as_trl_defaults_are_trl_defaults(path: Path) -> None:
    defaults = _trl_defaults()
    assert defaults["loss_type"] == "dapo"  # sanity: the parser reads trl 1.16
    cfg = load_config(path)
    in_train, claims = False, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\S", line):
            in_train = line.startswith("train:")
            continue
        m = re.match(r"^\s+(\w+):[^#]*#\s*(TRL|HF)( 1\.16)? default\b", line)
        if in_train and m:
            key = m.group(1)
            assert key in defaults, f"{key} is not a GRPOConfig field"
            assert getattr(cfg.train, key) == defaults[key], f"{path.name}: train.{key}"
            claims += 1
    assert claims >= 5


# ------------------------------------------------------------------------- overrides


def test_overrides_types_and_nesting() -> None:
    cfg = load_config(
        None,
        [
            "stages.explore.temperature.start=1.1",
            "train.learning_rate=4e-7",
            "train.lr_floor=2e-7",
            "eval.people=[2,3]",
            "eval.n=50",
            "stages.anneal.temperature.end=null",
            "stages.anneal.temperature.schedule=constant",
            "train.extra={save_safetensors: true}",
            "run.name=my-run",
        ],
    )
    assert cfg.stages["explore"].temperature.start == 1.1
    assert cfg.train.learning_rate == 4e-7 and isinstance(cfg.train.learning_rate, float)
    assert cfg.eval.people == [2, 3]
    assert cfg.stages["anneal"].temperature.end is None
    assert cfg.train.extra == {"save_safetensors": True}
    assert cfg.run.name == "my-run"


def test_override_people_replaces_or_adds() -> None:
    replaced = load_config(None, ["stages.explore.people={3: 1.0}"])
    assert replaced.stages["explore"].people == {3: 1.0}
    added = load_config(None, ["stages.warmup.people.3=0.5"])
    assert added.stages["warmup"].people == {2: 1.0, 3: 0.5}
    quoted = load_config(None, ['stages.warmup.people={"3": 2}'])
    assert quoted.stages["warmup"].people == {3: 2.0}


def test_override_section_merges() -> None:
    cfg = load_config(None, ["stages.anneal.temperature={start: 1.1}"])
    t = cfg.stages["anneal"].temperature
    assert (t.start, t.end, t.schedule) == (1.1, 0.9, "linear")


def test_override_adds_a_stage_in_order() -> None:
    cfg = load_config(None, ["stages.final.people={4: 1}", "stages.final.steps=3"])
    assert list(cfg.stages) == ["warmup", "explore", "anneal", "final"]
    assert cfg.stages["final"].steps == 3 and cfg.stages["final"].num_generations == 8


def test_apply_overrides_returns_new_config() -> None:
    cfg = load_config()
    before = cfg.stages["warmup"].steps
    new = apply_overrides(cfg, ["stages.warmup.steps=7"])
    assert before != 7
    assert new.stages["warmup"].steps == 7 and cfg.stages["warmup"].steps == before


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        (
            "train.lerning_rate=1",
            r"unknown config key 'train\.lerning_rate' \(did you mean 'train\.learning_rate'\?\)",
        ),
        (
            "stages.warmup.stepz=1",
            r"unknown config key 'stages\.warmup\.stepz' \(did you mean 'stages\.warmup\.steps'\?\)",
        ),
        ("stagez.warmup.steps=1", r"unknown config key 'stagez' \(did you mean 'stages'\?\)$"),
        ("train.foo=1", r"unknown config key 'train\.foo'$"),
        (
            "stages.warmup.temperature.begin=1",
            r"unknown config key 'stages\.warmup\.temperature\.begin'",
        ),
        ("train.learning_rate=abc", r"bad value for 'train\.learning_rate'.*'abc'.*Float"),
        ("stages.warmup.steps=1.5", r"bad value for 'stages\.warmup\.steps'"),
        ("train.learning_rate", r"bad override 'train\.learning_rate': expected key=value"),
        ("=3", r"bad override '=3': empty key"),
        (
            "stages.warmup.people={two: 1}",
            r"bad key at 'stages\.warmup\.people\.two'.*person counts are integers",
        ),
    ],
)
def test_bad_overrides_one_line(override: str, pattern: str) -> None:
    assert re.search(pattern, _one_line_error([override]))


def test_unknown_key_in_yaml_file(tmp_path: Path) -> None:
    text = DEFAULT.read_text(encoding="utf-8").replace("  warmup_steps: 5", "  warmup_stepz: 5")
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    msg = _one_line_error([], path=path)
    assert "unknown config key 'train.warmup_stepz'" in msg and "train.warmup_steps" in msg
    assert "bad.yaml" in msg


def test_file_errors(tmp_path: Path) -> None:
    assert "config file not found" in _one_line_error([], path=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n", encoding="utf-8")
    assert "cannot read YAML" in _one_line_error([], path=bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n", encoding="utf-8")
    assert "mapping at the top level" in _one_line_error([], path=listy)


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["stages.explore.people={2: 0.5, 3: 0.5}", "train.extra={foo: 1}"])
    text = to_yaml(cfg)
    assert from_yaml_text(text) == cfg
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_config(path) == cfg
    assert text.index("\n  warmup:") < text.index("\n  explore:") < text.index("\n  anneal:")


# ------------------------------------------------------------------------- validation

CASES: list[tuple[list[str], int, str]] = [
    # batch divisibility
    (["train.per_device_train_batch_size=5"], 1,
     r"stages\.warmup: generation batch prompts_per_step \* num_generations = 4 \* 8 = 32 is not divisible by per_device_train_batch_size \* world_size = 5 \* 1 = 5; make .* a multiple of 5"),
    ([], 3, r"stages\.warmup: .* = 32 is not divisible by world_size \* steps_per_generation = 3 \* 1 = 3; make prompts_per_step \* num_generations a multiple of 3"),
    (["train.gradient_accumulation_steps=3"], 1, r"= 32 is not divisible by world_size \* steps_per_generation = 1 \* 3 = 3"),
    (["train.per_device_train_batch_size=8", "train.steps_per_generation=2"], 1,
     r"stages\.warmup: steps_per_generation \(2\) disagrees with generation batch 32 / \(per_device_train_batch_size 8 \* world_size 1\) = 4"),
    (["stages.warmup.num_generations=1"], 1, r"stages\.warmup\.num_generations is 1; GRPO needs at least 2"),
    (["stages.warmup.prompts_per_step=0"], 1, r"stages\.warmup\.prompts_per_step is 0"),
    # sampling
    (["stages.explore.temperature.start=0"], 1, r"stages\.explore\.temperature\.start is 0\.0; it must be > 0"),
    (["stages.anneal.temperature.end=-1"], 1, r"stages\.anneal\.temperature\.end is -1\.0; it must be > 0"),
    (["stages.explore.temperature.end=0.9"], 1, r"stages\.explore\.temperature goes 1\.2 -> 0\.9 but schedule is constant; set schedule linear or cosine"),
    (["stages.anneal.temperature.schedule=exp"], 1, r"stages\.anneal\.temperature\.schedule is 'exp'; use one of constant, linear, cosine"),
    (["stages.explore.top_p=0"], 1, r"stages\.explore\.top_p is 0\.0; it must be in \(0, 1\]"),
    (["stages.explore.top_p=1.5"], 1, r"stages\.explore\.top_p is 1\.5"),
    (["stages.explore.top_k=-1"], 1, r"stages\.explore\.top_k is -1; it must be >= 0"),
    (["stages.explore.min_p=2"], 1, r"stages\.explore\.min_p is 2\.0; it must be in \[0, 1\]"),
    # people
    (["stages.warmup.people={1: 1.0}"], 1, r"stages\.warmup\.people has person count 1; use 2\.\.16"),
    (["stages.warmup.people={17: 1.0}"], 1, r"person count 17; use 2\.\.16"),
    (["stages.warmup.people={2: 0}"], 1, r"stages\.warmup\.people\.2 has weight 0\.0; weights must be positive"),
    (["stages.warmup.people={2: -1}"], 1, r"people\.2 has weight -1\.0"),
    (["stages.warmup.people={}"], 1, r"stages\.warmup\.people is empty"),
    # stage numbers
    (["stages.anneal.steps=0"], 1, r"stages\.anneal\.steps is 0; it must be > 0"),
    (["stages.anneal.max_completion_length=-5"], 1, r"stages\.anneal\.max_completion_length is -5; it must be > 0"),
    (["stages.anneal.beta=-0.1"], 1, r"stages\.anneal\.beta is -0\.1"),
    (["stages.anneal.learning_rate_scale=0"], 1, r"stages\.anneal\.learning_rate_scale is 0\.0; it must be > 0"),
    (["stages.anneal.dataset_size=3"], 1, r"stages\.anneal\.dataset_size is 3; it must hold at least prompts_per_step \(8\)"),
    (["stages.anneal.depth=0"], 1, r"stages\.anneal\.depth is 0"),
    (["stages.warmup.promotion.format_error_below=1.5"], 1, r"stages\.warmup\.promotion\.format_error_below is 1\.5; it is a ratio in \[0, 1\]"),
    (["stages.warmup.promotion.window=0"], 1, r"stages\.warmup\.promotion\.window is 0"),
    (["stages.warmup.promotion.min_steps=-1"], 1, r"stages\.warmup\.promotion\.min_steps is -1"),
    (["stages.1.people={2: 1}"], 1, r"stage name '1' is reserved"),
    (["stages={}"], 1, r"stages is empty; define at least one stage"),
    # train
    (["train.lr_floor=1e-3"], 1, r"train\.lr_floor \(0\.001\) is above train\.learning_rate \(0\.0001\); lower lr_floor or raise learning_rate"),
    (["train.learning_rate=0"], 1, r"train\.learning_rate is 0\.0; it must be > 0"),
    (["train.lr_floor=0"], 1, r"train\.lr_floor is 0 with lr_schedule cosine: the last step would train at LR 0; set lr_floor > 0 \(e\.g\. 1e-05\)"),
    (["train.lr_floor=-1"], 1, r"train\.lr_floor is -1\.0"),
    (["train.lr_schedule=step"], 1, r"train\.lr_schedule is 'step'; use one of constant, linear, cosine"),
    (
        ["stages.warmup.steps=60", "stages.explore.steps=60", "stages.anneal.steps=40", "train.warmup_steps=500"],
        1,
        r"train\.warmup_steps \(500\) exceeds the run's 160 steps",
    ),
    (["train.lr_decay_from=cooldown"], 1, r"train\.lr_decay_from names unknown stage 'cooldown'; use one of warmup, explore, anneal"),
    (["train.beta=-1"], 1, r"train\.beta is -1\.0"),
    (["train.loss_type=ppo"], 1, r"train\.loss_type is 'ppo'; use one of grpo, dr_grpo, dapo"),
    (["train.scale_rewards=true"], 1, r"train\.scale_rewards is 'True'; use one of group, batch, none \(TRL's true = group, false = none\)"),
    (["train.importance_sampling_level=word"], 1, r"train\.importance_sampling_level is 'word'"),
    (["train.loss_type=luspo"], 1, r"luspo needs importance_sampling_level sequence"),
    (["train.multi_objective_aggregation=max"], 1, r"train\.multi_objective_aggregation is 'max'"),
    (["train.epsilon=0"], 1, r"train\.epsilon is 0\.0"),
    (["train.epsilon_high=0.1"], 1, r"train\.epsilon_high \(0\.1\) is below epsilon \(0\.2\)"),
    (["train.num_iterations=0"], 1, r"train\.num_iterations is 0"),
    (["train.steps_per_generation=0"], 1, r"train\.steps_per_generation is 0"),
    (["train.top_entropy_quantile=0"], 1, r"train\.top_entropy_quantile is 0\.0; it must be in \(0, 1\]"),
    (["train.max_completion_length=0"], 1, r"train\.max_completion_length is 0; it must be > 0"),
    (["train.max_prompt_length=0"], 1, r"train\.max_prompt_length is 0"),
    (["train.gradient_accumulation_steps=0"], 1, r"train\.gradient_accumulation_steps is 0"),
    (["train.per_device_train_batch_size=0"], 1, r"train\.per_device_train_batch_size is 0"),
    (["train.weight_decay=-1"], 1, r"train\.weight_decay is -1\.0"),
    (["train.adam_beta1=1"], 1, r"train\.adam_beta1 is 1\.0; it must be in \[0, 1\)"),
    (["train.adam_epsilon=0"], 1, r"train\.adam_epsilon is 0\.0"),
    (["train.max_grad_norm=0"], 1, r"train\.max_grad_norm is 0\.0"),
    (["train.repetition_penalty=0"], 1, r"train\.repetition_penalty is 0\.0"),
    (["train.logging_steps=0"], 1, r"train\.logging_steps is 0"),
    (["train.vllm_mode=remote"], 1, r"train\.vllm_mode is 'remote'; use one of colocate, server"),
    (["train.vllm_gpu_memory_utilization=0"], 1, r"train\.vllm_gpu_memory_utilization is 0\.0"),
    (["train.vllm_tensor_parallel_size=0"], 1, r"train\.vllm_tensor_parallel_size is 0"),
    (["train.use_vllm=true", "train.vllm_max_model_length=300", "train.max_prompt_length=64"], 1,
     r"train\.vllm_max_model_length \(300\) < max_prompt_length \(64\) \+ stages\.explore max_completion_length \(400\) = 464; raise vllm_max_model_length to at least 464"),
    (["train.extra={temperature: 0.5}"], 1, r"train\.extra\.temperature duplicates a setting the config manages"),
    # rewards
    (["rewards=[{name: nope}]"], 1, r"rewards\[0\] names unknown reward 'nope'; available: .*logic_rl_format"),
    (["rewards=[{weight: 1}]"], 1, r"rewards\[0\] has no name"),
    (["rewards=[{name: logic_rl, weight: heavy}]"], 1, r"rewards\[0\] \(logic_rl\) has weight 'heavy'; use a number"),
    (["rewards=[]"], 1, r"rewards is empty"),
    (["stages.anneal.rewards=[{name: bogus}]"], 1, r"stages\.anneal\.rewards\[0\] names unknown reward 'bogus'"),
    # model, prompt, run, eval
    (["model.name_or_path=./no/such/model"], 1, r"model\.name_or_path: folder \./no/such/model does not exist; build it first, or use tiny"),
    (["model.name_or_path=Qwen/Qwen2.5-0.5B", "model.tiny={layers: 2}"], 1, r"model\.tiny settings are given but model\.name_or_path is not tiny"),
    (["model.dtype=fp8"], 1, r"model\.dtype is 'fp8'; use one of float32"),
    (["model.name_or_path="], 1, r"model\.name_or_path is empty"),
    (["prompt.style=markdown"], 1, r"prompt\.style is 'markdown'; use one of base, chat"),
    (["run.name=a/b"], 1, r"run\.name 'a/b'"),
    (["run.checkpoint_every=-1"], 1, r"run\.checkpoint_every is -1"),
    (["run.keep_checkpoints=0"], 1, r"run\.keep_checkpoints is 0"),
    (["run.samples_per_step=-1"], 1, r"run\.samples_per_step is -1"),
    (["eval.people=[1]"], 1, r"eval\.people has person count 1; use 2\.\.16"),
    (["eval.people=[]"], 1, r"eval\.people is empty"),
    (["eval.people=[3,3]"], 1, r"eval\.people \[3, 3\] repeats a person count"),
    (["eval.n=0"], 1, r"eval\.n is 0"),
    (["eval.max_new_tokens=0"], 1, r"eval\.max_new_tokens is 0"),
    (["eval.batch_size=0"], 1, r"eval\.batch_size is 0"),
    (["eval.samples=0"], 1, r"eval\.samples is 0"),
    (["eval.temperature=-1"], 1, r"eval\.temperature is -1\.0"),
    (["eval.samples=4"], 1, r"eval\.samples is 4 but temperature is 0 \(greedy samples are identical\)"),
    (["eval.depth=0"], 1, r"eval\.depth/width are 0/2"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "world_size", "pattern"), CASES)
def test_validation_errors(overrides: list[str], world_size: int, pattern: str) -> None:
    msg = _one_line_error(overrides, world_size)
    assert re.search(pattern, msg), msg


def test_model_folder_checks(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    msg = _one_line_error([f"model.name_or_path={folder}"])
    assert "has no config.json" in msg
    (folder / "config.json").write_text("{}", encoding="utf-8")
    assert load_config(None, [f"model.name_or_path={folder}"]).model.name_or_path == str(folder)
    # check_paths=False: recipes are checked on machines without the model
    cfg = load_config(None, ["model.name_or_path=/no/such/dir"], check_paths=False)
    assert cfg.model.name_or_path == "/no/such/dir"
    # a hub id is not a path
    assert load_config(None, ["model.name_or_path=Qwen/Qwen2.5-0.5B"]).model.name_or_path


# The default's stage sizes are tuned to the CPU budget; these tests pin their own numbers.
EXPLORE_4X16 = ["stages.explore.prompts_per_step=4", "stages.explore.num_generations=16"]
STEPS_60_60_40 = [
    "stages.warmup.steps=60",
    "stages.explore.steps=60",
    "stages.anneal.steps=40",
    "train.lr_decay_from=anneal",
]


def test_world_size_that_divides_passes() -> None:
    cfg = load_config(None, EXPLORE_4X16, world_size=2)
    plan = batch_plan(cfg, "explore", world_size=2)
    assert (plan.generation_batch_size, plan.per_device_train_batch_size) == (64, 32)
    assert plan.steps_per_generation == 1
    validate(cfg, world_size=4)
    with pytest.raises(ConfigError, match="world_size is 0"):
        batch_plan(cfg, "explore", world_size=0)


def test_batch_plan_explicit_settings() -> None:
    cfg = load_config(None, [*EXPLORE_4X16, "train.per_device_train_batch_size=8"])
    plan = batch_plan(cfg, "explore", world_size=2)  # 64 completions / (8 * 2) = 4 micro-steps
    assert (plan.per_device_train_batch_size, plan.steps_per_generation) == (8, 4)
    cfg = load_config(None, ["train.steps_per_generation=2", "train.gradient_accumulation_steps=2"])
    plan = batch_plan(cfg, "anneal")
    assert (plan.per_device_train_batch_size, plan.steps_per_generation) == (16, 2)
    assert plan.gradient_accumulation_steps == 2


# ------------------------------------------------------------------------- --stage


def test_select_stages() -> None:
    cfg = load_config()
    assert select_stages(cfg, "all") == ["warmup", "explore", "anneal"]
    assert select_stages(cfg, "1") == ["warmup"]
    assert select_stages(cfg, "3") == ["anneal"]
    assert select_stages(cfg, "anneal") == ["anneal"]
    assert select_stages(cfg, "anneal,1") == ["warmup", "anneal"]  # config order
    for bad in ("4", "0", "cooldown", "1,x"):
        with pytest.raises(ConfigError) as info:
            select_stages(cfg, bad)
        msg = str(info.value)
        assert "for --stage; use all, 1-3 or one of: warmup, explore, anneal" in msg
        assert "\n" not in msg


# ------------------------------------------------------------------------- describe


def test_describe_table() -> None:
    promotion = [
        "stages.warmup.promotion.format_error_below=0.1",
        "stages.warmup.promotion.min_steps=20",
    ]
    cfg = load_config(
        None, [*STEPS_60_60_40, *EXPLORE_4X16, *promotion, "stages.explore.learning_rate_scale=0.5"]
    )
    text = describe(cfg, selected=["explore"])
    lines = text.splitlines()
    assert lines[0].startswith("run kk-default: model tiny, 160 steps")
    rows = {line.split()[0]: line for line in lines[3:]}
    assert "(skip)" in rows["warmup"] and "(skip)" not in rows["explore"]
    assert "1-60" in rows["warmup"] and "61-120" in rows["explore"] and "121-160" in rows["anneal"]
    assert "5.00e-05 -> 5.00e-05" in rows["explore"]  # scaled LR at both ends
    assert "1.20 -> 0.90 linear" in rows["anneal"] and "1.00e-05" in rows["anneal"]
    assert "fmt_err<0.1 (5 steps, from step 20)" in rows["warmup"]
    assert "2:0.25,3:0.75" in rows["explore"] and " 64 " in rows["explore"]
