"""Run one of the ``tests/*_check.py`` scripts in a subprocess and read the JSON it writes.

The vLLM checks run in subprocesses of their own (an engine initialises torch.distributed,
a client imports vLLM); each takes its arguments, ends with its output file, and writes a
JSON object there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run_check(
    script: str,
    *args: str,
    out: Path,
    timeout: float,
    context: Callable[[], str] | None = None,
) -> Any:
    """``python tests/<script> *args <out>`` from the repository root; its JSON output.

    Fails the test with the script's stderr (and what ``context()`` returns then, e.g. the
    tail of a server log) when it exits non-zero.
    """
    proc = subprocess.run(
        [sys.executable, str(HERE / script), *args, str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=HERE.parent,
    )
    if proc.returncode != 0:
        extra = "\n" + context() if context is not None else ""
        raise AssertionError(f"{script} exited {proc.returncode}:\n{proc.stderr[-3000:]}{extra}")
    return json.loads(out.read_text(encoding="utf-8"))
