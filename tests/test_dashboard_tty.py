"""The dashboard in a real terminal: a pty read through the pyte terminal emulator."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from curriculum import run_records as rr

pyte = pytest.importorskip("pyte")

REPO = Path(__file__).resolve().parent.parent


class Terminal:
    """A command running in a pty of a fixed size; the screen as a terminal would show it."""

    def __init__(self, argv: list[str], cols: int, rows: int, cwd: Path = REPO) -> None:
        self.cols, self.rows = cols, rows
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env.update(TERM="xterm-256color", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True
        )
        os.close(slave)
        self.master = master
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.snapshots: list[str] = []

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def run(self, timeout: float, watch: Callable[[str], bool] | None = None) -> int:
        """Read until the command exits; keep a snapshot each time ``watch(screen)`` is true."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([self.master], [], [], 0.1)
                if ready:
                    try:
                        data = os.read(self.master, 65536)
                    except OSError:  # EIO: the child closed the pty
                        break
                    if not data:
                        break
                    self.raw += data
                    self.stream.feed(data)
                    screen = self.text()
                    if watch is not None and watch(screen):
                        self.snapshots.append(screen)
                elif self.proc.poll() is not None:
                    break
            else:
                self.proc.kill()
                pytest.fail(f"timed out after {timeout} s; screen:\n{self.text()}")
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.master)


def _watch_cmd(run: Path, *extra: str) -> list[str]:
    # `kk-train watch` through the real CLI module (same as the console script).
    code = "import sys; from stages.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "watch", str(run), *extra]


def _writer(run: Path, delay: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("dashboard_synthetic.py")),
            str(run),
            "--steps",
            "6",
            "5",
            "4",
            "--delay",
            str(delay),
        ],
        cwd=REPO,
    )
    deadline = time.monotonic() + 60
    while not (run / rr.RUN_INFO_FILE).exists():
        assert time.monotonic() < deadline, "the writer never wrote run.json"
        time.sleep(0.02)
    return proc


def _mid_run(screen: str) -> bool:
    # A whole frame of a running stage (the screen is also seen between partial writes).
    return "▶" in screen and ("no alerts" in screen or "⚠" in screen)


@pytest.mark.parametrize(("cols", "rows"), [(120, 40), (80, 24)])
def test_watch_live_in_a_terminal(tmp_path: Path, cols: int, rows: int) -> None:
    run = tmp_path / "run"
    writer = _writer(run, delay=0.15)
    try:
        term = Terminal(_watch_cmd(run, "--interval", "0.1"), cols, rows)
        rc = term.run(timeout=60, watch=_mid_run)
    finally:
        writer.wait(timeout=60)
    final = term.text()
    assert rc == 0, final
    assert b"Traceback" not in term.raw
    # While the run was going: a live dashboard with the key facts on screen.
    assert term.snapshots, "never saw a running stage"
    mid = term.snapshots[len(term.snapshots) // 2]
    for needle in ("kk-rl synthetic", "ETA", "step ", "correct", "reward", "accuracy"):
        assert needle in mid, (needle, mid)
    assert max(len(line) for line in mid.splitlines()) <= cols
    # At the end: the summary table on screen.
    assert "run summary" in final and "refine" in final


def test_watch_once_on_a_small_terminal(tmp_path: Path) -> None:
    from dashboard_synthetic import write_synthetic_run

    write_synthetic_run(tmp_path, (6, 5, 4))
    term = Terminal(_watch_cmd(tmp_path, "--once"), 80, 24)
    assert term.run(timeout=60) == 0
    assert b"Traceback" not in term.raw
    # --once prints the whole dashboard and scrolls: the summary is last on screen.
    assert "run summary" in term.text() and "refine" in term.text()


def test_kk_train_micro_run_in_a_terminal(tmp_path: Path) -> None:
    """The real trainer on micro settings in an 80x24 terminal, read off the screen."""
    config = REPO / "configs" / "micro.yaml"
    if not config.exists() or not (REPO / "stages" / "driver.py").exists():
        pytest.skip("configs/micro.yaml or the driver is not there yet")
    run = tmp_path / "run"
    code = "import sys; from stages.cli import main; sys.exit(main())"
    argv = [
        sys.executable,
        "-c",
        code,
        "--stage",
        "all",
        "--config",
        str(config),
        "--output-dir",
        str(run),
        "--max-steps",
        "1",
    ]
    term = Terminal(argv, 80, 24)
    rc = term.run(timeout=240, watch=lambda s: "▶" in s and "step " in s)
    screen = term.text()
    assert rc == 0, screen
    assert b"Traceback" not in term.raw
    assert term.snapshots, f"no live dashboard seen; screen:\n{screen}"
    live = term.snapshots[-1]
    assert "kk-rl kk-micro" in live and "step " in live and "correct" in live
    assert "run summary" in screen and "run finished" in screen
    steps = len(rr.read_metrics(run))
    assert f"step {steps}/" in screen or f"step {steps}/" in live
