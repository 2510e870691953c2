"""Held-out evaluation and the run report, both written into the run directory.

``heldout``: batched generation, scoring with ``rewards``, pass@k, Wilson intervals and the
trivial baselines (``kk-eval`` in ``analysis`` reuses them). ``report``: ``report.md`` from
a run's records and held-out results (``python -m stages.evaluation.report RUN_DIR``). They
sit in ``stages`` because the driver runs both during training; ``analysis``, above
``stages``, reads them.
"""
