"""Prompts: the R1-style system prompt, chat messages and the base-model template.

>>> rec = {"quiz": "Q?", "names": ["Ann", "Bo"]}
>>> [m["role"] for m in chat_messages(rec)]
['system', 'user']
>>> base_prompt(rec).endswith("User: Q?\\nAssistant: <think>")
True
>>> base_prompt(rec, prefill_think=False).endswith("Assistant:")
True
"""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False  # typing's, without importing typing (2 ms of every kk-gen run)
if TYPE_CHECKING:
    from typing import Any

SYSTEM_PROMPT = (
    "You are a helpful assistant. The user gives you a logic puzzle. First think through "
    "the reasoning step by step inside <think> </think> tags, then give the final answer "
    "inside <answer> </answer> tags, i.e. <think> reasoning here </think><answer> answer "
    "here </answer>. In the answer, state the identity of every person on its own "
    "numbered line, using the puzzle's own role words, e.g. <answer> (1) Zoey is a "
    "knight\n(2) ... </answer>."
)


def _quiz(record: Mapping[str, Any]) -> str:
    quiz = record.get("quiz")
    if not isinstance(quiz, str) or not quiz:
        raise ValueError("record has no 'quiz' text")
    return quiz


def chat_messages(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """System prompt plus the quiz as the user turn (render with the model's chat template)."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": _quiz(record)},
    ]


def base_prompt(record: Mapping[str, Any], prefill_think: bool = True) -> str:
    """Plain-text prompt for base models: system text, 'User: <quiz>', 'Assistant: <think>'."""
    tail = "Assistant: <think>" if prefill_think else "Assistant:"
    return f"{SYSTEM_PROMPT}\n\nUser: {_quiz(record)}\n{tail}"


def chatml_prompt(record: Mapping[str, Any], prefill_think: bool = True) -> str:
    """A hand-written ChatML string (the layout verl/Logic-RL parquet files carry)."""
    tail = "<think>" if prefill_think else ""
    return (
        f"<|im_start|>system\n{SYSTEM_PROMPT}\n<|im_end|>\n"
        f"<|im_start|>user\n{_quiz(record)}\n<|im_end|>\n"
        f"<|im_start|>assistant\n{tail}"
    )
