"""GRPO training stages on TRL: the driver, the embedded tiny model, callbacks, dashboard, kk-train.

Importing this package is cheap: heavy libraries (torch, transformers, trl) are imported by
the modules that need them, so `kk-train watch` and `analysis` start fast.
"""
