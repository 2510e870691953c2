"""How every command-line tool of the project ends: a user error is one line on stderr.

``kk-gen``, ``kk-score``, ``kk-train``, ``kk-eval`` and ``kk-analyze`` run their body
through :func:`run_cli`. A :class:`CliError` (or one of the tool's own error types) prints
``PROG: error: MESSAGE`` (its first line only) and exits 2; Ctrl-C prints
``PROG: interrupted`` and exits 130. :class:`OneLineParser` makes argparse's own errors
one such line instead of usage text plus the message. It lives in ``kk_puzzles``, the
lowest package, so that every package may use it.

>>> def body(argv):
...     raise CliError("--n must be positive\\nsecond line")
>>> import contextlib, io
>>> err = io.StringIO()
>>> with contextlib.redirect_stderr(err):
...     code = run_cli("kk-demo", body, [])
>>> code, err.getvalue()
(2, 'kk-demo: error: --n must be positive\\n')
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

TYPE_CHECKING = False  # typing's, without importing typing (2 ms of every kk-gen run)
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_USER_ERROR",
    "CliError",
    "OneLineParser",
    "fail",
    "run_cli",
]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A user error (bad arguments, unreadable input): one line on stderr, exit code 2."""


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns`` (COLUMNS, else the terminal, else 80) without
    importing shutil, which pulls in bz2, lzma and zlib: about 2 ms of every kk-gen run,
    for a width that only ``--help`` uses."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):  # no stdout, or not a terminal
            columns = 0
    return columns or 80


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help layout; argparse makes one for every add_argument (to check it)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
        **kwargs: Any,
    ) -> None:
        width = _terminal_columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width, **kwargs)


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; we keep only the one error line (exit 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise CliError(message)


def fail(prog: str, message: object) -> int:
    """Print ``PROG: error: MESSAGE`` (its first line) on stderr; return ``EXIT_USER_ERROR``."""
    text = str(message).strip()
    first = text.splitlines()[0] if text else "error"
    print(f"{prog}: error: {first}", file=sys.stderr, flush=True)
    return EXIT_USER_ERROR


def run_cli(
    prog: str,
    body: Callable[[list[str]], int | None],
    argv: Sequence[str] | None = None,
    *,
    errors: tuple[type[BaseException], ...] = (),
    interrupted: str = "interrupted",
    quiet_broken_pipe: bool = False,
) -> int:
    """Run ``body(argv)`` (``sys.argv[1:]`` by default) and return its exit code.

    ``CliError`` and the types in ``errors`` become :func:`fail`'s line and exit 2;
    ``KeyboardInterrupt`` becomes ``PROG: INTERRUPTED`` and exit 130; with
    ``quiet_broken_pipe`` a closed stdout (``... | head``) ends quietly with 0.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return int(body(args) or 0)
    except (CliError, *errors) as exc:
        return fail(prog, exc)
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        if quiet_broken_pipe:
            return 0
        raise
