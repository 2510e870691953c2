"""Rule-based rewards for Knights-and-Knaves completions (no ML imports).

Public API: `score`, `Score`, `parse_answer`, `summarize`, `SCHEMES`, and the
`rewards.registry` of TRL reward functions (`build_reward`, `build_rewards`, `available`).
"""

from rewards import registry
from rewards.puzzle import AnswerKey, answer_key
from rewards.scoring import KINDS, SCHEMES, Scheme, Score, parse_answer, score, summarize

__all__ = [
    "KINDS",
    "SCHEMES",
    "AnswerKey",
    "Scheme",
    "Score",
    "answer_key",
    "parse_answer",
    "registry",
    "score",
    "summarize",
]
