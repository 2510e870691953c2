"""Change the sampling temperature of a live TRL ``GRPOTrainer`` (trl 1.16) everywhere at once.

TRL copies ``args.temperature`` at construction time into several places, and setting
``trainer.temperature`` alone changes none of them:

* ``trainer.generation_config`` (a ``GenerationConfig`` used by ``model.generate``),
* ``trainer.generation_kwargs`` (the dict used to override the model's generation config),
* ``trainer.vllm_generation.temperature`` (vLLM rollouts, when ``use_vllm``),
* the fused log-prob head that ``add_fused_lm_head`` patches onto the policy and the reference
  model: a closure that divides the logits by the temperature before the log-softmax. The
  policy-gradient ratio and the KL term must see the same distribution the completions were
  sampled from, so this one matters as much as the sampler.

``set_temperature`` updates all of them plus ``trainer.temperature`` and ``trainer.args.temperature``.
The fused head is found by the name of TRL's private closure, so ``check_fused_heads`` runs when
a trainer is built: if TRL patched the models some other way, the run stops right there (a
schedule that silently missed the log-probs would train on the wrong distribution).
"""

from __future__ import annotations

import math
from typing import Any

from stages.errors import RunSetupError

# Name of the closure variable holding the temperature inside TRL's patched forward.
_HEAD_FUNC_NAME = "_fused_forward"
_HEAD_VAR = "temperature"


def _iter_wrapped(fn: Any) -> Any:
    """Yield ``fn`` and every function it wraps (accelerate and functools wrappers chain them)."""
    seen: set[int] = set()
    while fn is not None and id(fn) not in seen:
        seen.add(id(fn))
        yield fn
        fn = getattr(fn, "__func__", None) or getattr(fn, "__wrapped__", None)


def _head_cells(model: Any) -> list[Any]:
    """Closure cells holding the temperature of the fused log-prob head patched onto ``model``."""
    cells = []
    if model is None:
        return cells
    candidates = [model]
    base = getattr(model, "get_base_model", None)  # PEFT: the head is patched on the base model
    if callable(base):
        try:
            candidates.append(base())
        except Exception:
            pass
    inner = getattr(model, "module", None)  # DDP / DeepSpeed engine wrappers
    if inner is not None:
        candidates.append(inner)
    for cand in candidates:
        forward = cand.__dict__.get("forward") if hasattr(cand, "__dict__") else None
        for fn in _iter_wrapped(forward):
            code = getattr(fn, "__code__", None)
            if code is None or code.co_name != _HEAD_FUNC_NAME or _HEAD_VAR not in code.co_freevars:
                continue
            cell = fn.__closure__[code.co_freevars.index(_HEAD_VAR)]
            if all(cell is not c for c in cells):
                cells.append(cell)
    return cells


class TrlInternalsError(RunSetupError):
    """The installed TRL does not keep the fused head's temperature where this module looks."""


def check_fused_heads(trainer: Any) -> None:
    """Raise ``TrlInternalsError`` (one line, naming the TRL version) unless the policy and the
    reference model (when there is one) carry TRL's fused log-prob head with its temperature."""
    missing = [
        name
        for name in ("model", "ref_model")
        if getattr(trainer, name, None) is not None and not _head_cells(getattr(trainer, name))
    ]
    if missing:
        import trl

        raise TrlInternalsError(
            f"trl {trl.__version__}: no fused log-prob head ({_HEAD_FUNC_NAME} with a "
            f"'{_HEAD_VAR}' closure) on the trainer's {' and '.join(missing)}, so the temperature "
            "schedule cannot reach the log-probs; kk-rl is written for trl 1.16.0 (pyproject.toml)"
        )


def get_head_temperature(model: Any) -> float | None:
    """The temperature the fused log-prob head of ``model`` divides logits by (None if unpatched)."""
    cells = _head_cells(model)
    return float(cells[0].cell_contents) if cells else None


def set_temperature(trainer: Any, value: float) -> None:
    """Set the sampling temperature of ``trainer`` in every place TRL 1.16 keeps it.

    Call it between optimizer steps (the callbacks do it at ``on_step_begin``, before the
    generation of the step), so that one batch is sampled and scored at one temperature.

    >>> class Fake:  # any object with TRL's attributes works; missing ones are skipped
    ...     temperature = 1.0
    ...     generation_kwargs = {"temperature": 1.0}
    >>> fake = Fake()
    >>> set_temperature(fake, 0.7)
    >>> fake.temperature, fake.generation_kwargs["temperature"]
    (0.7, 0.7)
    """
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"temperature must be a positive finite number, got {value}")
    trainer.temperature = value
    args = getattr(trainer, "args", None)
    if args is not None and hasattr(args, "temperature"):
        args.temperature = value
    gen_cfg = getattr(trainer, "generation_config", None)
    if gen_cfg is not None:
        gen_cfg.temperature = value
    gen_kwargs = getattr(trainer, "generation_kwargs", None)
    if isinstance(gen_kwargs, dict):
        gen_kwargs["temperature"] = value
    vllm = getattr(trainer, "vllm_generation", None)
    if vllm is not None and hasattr(vllm, "temperature"):
        vllm.temperature = value
    for name in ("model", "model_wrapped", "ref_model"):
        for cell in _head_cells(getattr(trainer, name, None)):
            cell.cell_contents = value


def get_temperatures(trainer: Any) -> dict[str, float | None]:
    """Every place's current value (for tests and the dry-run table)."""
    out: dict[str, float | None] = {"trainer": getattr(trainer, "temperature", None)}
    gen_cfg = getattr(trainer, "generation_config", None)
    out["generation_config"] = None if gen_cfg is None else gen_cfg.temperature
    gen_kwargs = getattr(trainer, "generation_kwargs", None)
    out["generation_kwargs"] = (
        gen_kwargs.get("temperature") if isinstance(gen_kwargs, dict) else None
    )
    vllm = getattr(trainer, "vllm_generation", None)
    out["vllm"] = getattr(vllm, "temperature", None) if vllm is not None else None
    out["policy_head"] = get_head_temperature(getattr(trainer, "model", None))
    out["ref_head"] = get_head_temperature(getattr(trainer, "ref_model", None))
    return out
