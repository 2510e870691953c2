"""Knights-and-Knaves puzzles: grammar, bit-mask solver, generator, traces, perturbations, I/O.

No ML libraries are imported here (``kk_puzzles.io`` imports pyarrow/datasets lazily).

>>> from kk_puzzles import generate, solve, parse_statements
>>> rec = generate(4, 1, seed=7)[0]
>>> solve(parse_statements(rec["statements"]), 4) == [tuple(rec["solution"])]
True
"""

from .generator import (
    MAX_DEPTH,
    MAX_WIDTH,
    MIN_PEOPLE,
    GenerationError,
    build_record,
    generate,
    puzzle_id,
    split,
)
from .grammar import StatementError, evaluate, format_statements, parse_statements
from .render import NAMES, ROLE_PAIRS, SPEECH_TEMPLATES, role_words
from .solver import MAX_PEOPLE, count_solutions, solve
from .trace import render_trace, trace_steps

__all__ = [
    "MAX_DEPTH",
    "MAX_PEOPLE",
    "MAX_WIDTH",
    "MIN_PEOPLE",
    "NAMES",
    "ROLE_PAIRS",
    "SPEECH_TEMPLATES",
    "GenerationError",
    "StatementError",
    "build_record",
    "count_solutions",
    "evaluate",
    "format_statements",
    "generate",
    "parse_statements",
    "puzzle_id",
    "render_trace",
    "role_words",
    "solve",
    "split",
    "trace_steps",
]
