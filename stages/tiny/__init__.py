"""The embedded tiny model: word-level tokenizer, Qwen2 config, pre-training corpus and loop,
measurement, and the shipped base (``assets/tiny_base``). ``python -m stages.tiny`` rebuilds it."""
