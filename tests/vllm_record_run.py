"""Run in a subprocess by ``test_vllm_train.py``: ``kk-train`` with vLLM's engine watched.

``python tests/vllm_record_run.py RECORD_JSON KK_TRAIN_ARGS...`` runs kk-train's own
``main`` after wrapping ``vllm.LLM.__init__`` and ``vllm.LLM.generate`` with recorders
that call the real methods: every engine built (with how many earlier engines were still
alive then) and every generation call's ``SamplingParams`` go to RECORD_JSON.
"""

from __future__ import annotations

import json
import sys
import weakref
from pathlib import Path
from typing import Any


def main(record_path: str, argv: list[str]) -> int:
    import vllm

    engines: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    built: list[weakref.ref[Any]] = []
    real_init, real_generate = vllm.LLM.__init__, vllm.LLM.generate

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        alive = sum(ref() is not None for ref in built)
        keys = ("dtype", "enforce_eager", "max_model_len")
        engines.append({"alive_before": alive, **{k: kwargs.get(k) for k in keys}})
        real_init(self, *args, **kwargs)
        built.append(weakref.ref(self))

    def generate(self: Any, prompts: Any, sampling_params: Any = None, **kwargs: Any) -> Any:
        p = sampling_params
        engine = next(i for i, ref in enumerate(built) if ref() is self)
        fields = ("temperature", "top_p", "top_k", "min_p", "n", "max_tokens")
        calls.append(
            {"engine": engine, "prompts": len(prompts), **{f: getattr(p, f) for f in fields}}
        )
        return real_generate(self, prompts, sampling_params=sampling_params, **kwargs)

    vllm.LLM.__init__ = init
    vllm.LLM.generate = generate
    from stages.cli import main as kk_train

    rc = kk_train(argv)
    record = {"rc": rc, "engines": engines, "calls": calls}
    Path(record_path).write_text(json.dumps(record), encoding="utf-8")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
