"""Every key of every shipped run config reaches the code that uses it, or is rejected.

A key that validates but that nothing reads is a setting the user believes in and the run
ignores. Here the real driver runs every stage of each shipped config (configs/*.yaml and
configs/**/*.yaml that are run configs) with stand-ins for what needs weights, a GPU or time:
the models, the puzzle generator, TRL's trainer loop, the evaluation and the report. Every
read of a config field is recorded (``config.yaml`` is written from a stand-in, since dumping
the whole config reads every key); a key of the resolved schema that no run of any shipped
config reads fails the test, with the rule that a stage key counts for ``stages.*``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

pytest.importorskip("trl")

from transformers import TrainerControl, TrainerState

import curriculum.data as cdata
import stages.driver as driver
import stages.run_eval as run_eval
import stages.stage_inputs as stage_inputs
import stages.tiny.base as tiny_base
from curriculum import schema
from curriculum.config import load_config
from stages.cli import _default_run_dir

REPO = Path(__file__).resolve().parent.parent
RUN_KEYS = {f.name for f in dataclasses.fields(schema.RunConfig)}

# Keys no run reads yet, each with the reason; the test fails once one of them is read, so
# the list only shrinks.
NOT_WIRED: dict[str, str] = {}


def _run_configs() -> list[Path]:
    """The shipped YAML files that are run configs (not accelerate / DeepSpeed configs)."""
    import yaml

    paths = sorted({*REPO.glob("configs/*.yaml"), *REPO.glob("configs/**/*.yaml")})
    out = []
    for p in paths:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
        if isinstance(data, dict) and set(data) <= RUN_KEYS and "stages" in data:
            out.append(p)
    return out


CONFIGS = _run_configs()


def _gpus(path: Path) -> int:
    import re

    m = re.search(r"^#\s*launch:\s*gpus=(\d+)", path.read_text(encoding="utf-8"), re.MULTILINE)
    return int(m.group(1)) if m else 1


# ----------------------------------------------------------------------- recording reads


def _sections(obj: Any, prefix: str) -> Iterator[tuple[Any, str]]:
    """(section instance, its dotted path + '.') for a config and every section in it."""
    yield obj, prefix
    for f in dataclasses.fields(obj):
        value = object.__getattribute__(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _sections(value, f"{prefix}{f.name}.")
        elif f.name == "stages":
            for name, stage in value.items():
                yield from _sections(stage, f"stages.{name}.")


def _leaves(config: Any) -> set[str]:
    out = set()
    for obj, prefix in _sections(config, ""):
        for f in dataclasses.fields(obj):
            value = object.__getattribute__(obj, f.name)
            if not dataclasses.is_dataclass(value) and not (prefix == "" and f.name == "stages"):
                out.add(prefix + f.name)
    return out


def _pattern(key: str) -> str:
    parts = key.split(".")
    return ".".join(["stages", "*", *parts[2:]]) if parts[0] == "stages" else key


class Reads:
    """Records ``section.field`` reads on the schema dataclasses while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: dict[int, str] = {}
        self.seen: set[str] = set()
        classes = [
            getattr(schema, n)
            for n in schema.__all__
            if dataclasses.is_dataclass(getattr(schema, n))
        ]
        for cls in classes:
            monkeypatch.setattr(cls, "__getattribute__", self._getter(cls))

    def _getter(self, cls: type) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        paths, seen = self.paths, self.seen

        def getattribute(obj: Any, attr: str) -> Any:
            if attr in names:
                prefix = paths.get(id(obj))
                if prefix is not None:
                    seen.add(prefix + attr)
            return object.__getattribute__(obj, attr)

        return getattribute

    def watch(self, config: Any) -> None:
        for obj, prefix in _sections(config, ""):
            self.paths[id(obj)] = prefix


# ------------------------------------------------------------------------- stand-ins


class FakeModel:
    training = True

    def eval(self) -> FakeModel:
        return self.train(False)

    def train(self, mode: bool = True) -> FakeModel:
        self.training = mode
        return self


class FakeTokenizer:
    """Plain text prompts, or a chat template when the config says the model has one."""

    init_kwargs: ClassVar[dict[str, Any]] = {}
    pad_token = eos_token = "<eos>"

    def __init__(self, chat: bool) -> None:
        self.chat_template = "{{ messages }}" if chat else None

    def apply_chat_template(self, messages: Any, **kwargs: Any) -> str:
        return " ".join(m["content"] for m in messages)

    def __call__(self, text: str, **kwargs: Any) -> dict[str, list[int]]:
        return {"input_ids": list(range(len(text.split())))}


class FakeTrainer:
    """What the driver asks of KKGRPOTrainer; ``train`` runs the callback hooks step by step
    and scores one batch per step with the real (wrapped) reward functions."""

    def __init__(self, **kwargs: Any) -> None:
        self.kw = kwargs
        self.args = kwargs["args"]
        self.model = kwargs["model"]
        self.processing_class = kwargs["processing_class"]
        self.state = TrainerState()
        self.accelerator = SimpleNamespace(wait_for_everyone=lambda: None, free_memory=lambda: None)
        self.callback_handler = SimpleNamespace(callbacks=list(kwargs["callbacks"]))

    def _save_checkpoint(self, model: Any, trial: Any = None) -> None:
        folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        state = {"global_step": self.state.global_step}
        (folder / "trainer_state.json").write_text(json.dumps(state))

    def train(self, resume_from_checkpoint: str | None = None) -> None:
        args, callback = self.args, self.kw["callbacks"][0]
        data = self.kw["train_dataset"]
        batch = data[: min(len(data), int(args.kk_prompts_per_step))]
        columns = {k: v for k, v in batch.items() if k != "prompt"}
        completion = "<think>x</think><answer>(1) A is a knight</answer>"
        self.state.global_step = int(args.kk_first_step) - 1
        control = TrainerControl()
        while self.state.global_step < int(args.max_steps) and not control.should_training_stop:
            callback.on_step_begin(args, self.state, control)
            self.kw["lr_at"](self.state.global_step + 1)
            for reward in self.kw["reward_funcs"]:
                reward([completion] * len(batch["prompt"]), batch["prompt"], **columns)
            self.state.global_step += 1
            callback.on_step_end(args, self.state, control)
            if control.should_save:
                self._save_checkpoint(self.model)
                callback.on_save(args, self.state, control)
                control.should_save = False
            callback.on_log(args, self.state, control, logs={"reward": 0.0, "loss": 0.0})


class FakeResult:
    groups: ClassVar[dict[int, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        return {}


def _puzzles() -> list[dict[str, Any]]:
    from kk_puzzles import generate

    return generate(3, 4, seed=0)


@pytest.fixture(scope="module")
def real_puzzles() -> list[dict[str, Any]]:
    return _puzzles()


def _stand_ins(monkeypatch: pytest.MonkeyPatch, tmp: Path, chat: bool, puzzles: list) -> None:
    def generate(count: int, n: int, **kwargs: Any) -> list[dict[str, Any]]:
        seed = kwargs.get("seed")
        rows = [dict(puzzles[i % len(puzzles)]) for i in range(n)]
        for i, row in enumerate(rows):
            row["id"], row["people"] = f"{count}-{seed}-{i}", count
        return rows

    def load_model(path: Any, **kwargs: Any) -> tuple[Any, Any]:
        return FakeModel(), FakeTokenizer(chat)

    def hub_model(cls: Any, name: str, **kwargs: Any) -> Any:
        return FakeModel()

    def hub_tokenizer(cls: Any, name: str, **kwargs: Any) -> Any:
        return FakeTokenizer(chat)

    import transformers

    base = tmp / "base-model"
    base.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(cdata, "_generate", generate)
    monkeypatch.setattr(tiny_base, "ensure_base_model", lambda *a, **k: base)
    monkeypatch.setattr(stage_inputs, "load_model_and_tokenizer", load_model)
    monkeypatch.setattr(
        transformers.AutoModelForCausalLM, "from_pretrained", classmethod(hub_model)
    )
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", classmethod(hub_tokenizer))
    monkeypatch.setattr(driver, "KKGRPOTrainer", FakeTrainer)
    monkeypatch.setattr(driver, "quiet_trainer", lambda trainer: None)
    monkeypatch.setattr(driver, "to_yaml", lambda config: "")
    monkeypatch.setattr(driver, "write_report", lambda run_dir: None)
    monkeypatch.setattr(run_eval, "evaluate", lambda *a, **k: FakeResult())


def _reads_of_a_run(path: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch, puzzles) -> tuple:
    """(leaf keys, keys read) of one shipped config run through the driver."""
    # CPU: TrainingArguments refuses bf16 without use_cpu (as in test_recipes).
    config = load_config(path, ["train.extra.use_cpu=true"], world_size=_gpus(path))
    chat = config.prompt.style == "chat"
    with monkeypatch.context() as m:
        _stand_ins(m, tmp, chat, puzzles)
        reads = Reads(m)
        reads.watch(config)
        _default_run_dir(config)  # kk-train's run directory: run.output_dir, run.name
        driver.Driver(config, tmp / "run", world_size=_gpus(path), printer=lambda s: None).run()
        seen = set(reads.seen)
    return _leaves(config), seen


def test_the_shipped_run_configs_are_found() -> None:
    names = {p.relative_to(REPO).as_posix() for p in CONFIGS}
    assert {"configs/default.yaml", "configs/micro.yaml"} <= names
    assert len([n for n in names if n.startswith("configs/recipes/")]) >= 4


def test_every_config_key_reaches_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_puzzles
) -> None:
    leaves: set[str] = set()
    seen: set[str] = set()
    for i, path in enumerate(CONFIGS):
        keys, read = _reads_of_a_run(path, tmp_path / f"c{i}", monkeypatch, real_puzzles)
        leaves |= {_pattern(k) for k in keys}
        seen |= {_pattern(k) for k in read}
    unread = sorted(leaves - seen - set(NOT_WIRED))
    assert not unread, f"config keys that validate but reach nothing: {unread}"
    wired = sorted(set(NOT_WIRED) & seen)
    assert not wired, f"now read, drop from NOT_WIRED: {wired}"


def test_init_kwargs_reach_checkpoint_loading(tmp_path: Path, monkeypatch) -> None:
    """model.init_kwargs apply to every stage's checkpoint, not only to a hub id."""
    import transformers

    from stages import model_io

    got: dict[str, Any] = {}

    def from_pretrained(cls: Any, name: str, **kwargs: Any) -> Any:
        got.update(kwargs)
        return FakeModel()

    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setattr(model_io, "load_tokenizer_for", lambda path: FakeTokenizer(False))
    monkeypatch.setattr(
        transformers.AutoModelForCausalLM, "from_pretrained", classmethod(from_pretrained)
    )
    config = load_config(
        REPO / "configs/micro.yaml", ["model.init_kwargs={attn_implementation: eager}"]
    )
    stage_inputs.load_policy(tmp_path, config)
    assert got["attn_implementation"] == "eager"


def test_prompt_style_must_match_the_tokenizer(tmp_path: Path, monkeypatch) -> None:
    from curriculum.config import ConfigError
    from stages import model_io

    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setattr(
        stage_inputs, "load_model_and_tokenizer", lambda p, **k: (FakeModel(), FakeTokenizer(False))
    )
    config = load_config(REPO / "configs/micro.yaml")
    stage_inputs.load_policy(tmp_path, config)  # base prompts, prompt.style base: fine
    chat = load_config(REPO / "configs/micro.yaml", ["prompt.style=chat"])
    with pytest.raises(ConfigError, match=r"prompt\.style is 'chat' .* no chat template"):
        stage_inputs.load_policy(tmp_path, chat)
    assert model_io.prompt_style_of(FakeTokenizer(True)) == "chat"


def test_stage_temperature_follows_the_grpo_config(tmp_path: Path) -> None:
    """The callback anneals by the kk_temperature_* fields of the stage's GRPOConfig."""
    from stages.grpo_config import build_grpo_config

    config = load_config(REPO / "configs/micro.yaml", ["stages.anneal.steps=4"])
    args = build_grpo_config(config, "anneal", output_dir=tmp_path)
    assert [round(args.stage_temperature(s), 3) for s in (1, 2, 3, 4)] == [1.2, 1.1, 1.0, 0.9]
    assert args.kk_temperature_schedule == "linear"
