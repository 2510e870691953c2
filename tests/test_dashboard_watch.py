"""`kk-train watch RUN_DIR`: finished runs, runs being written, bad run directories."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dashboard_synthetic import write_synthetic_run
from rich.console import Console

from curriculum import run_records as rr
from stages.dashboard.watch import _Tail, watch_main


def console(width: int = 120) -> Console:
    return Console(width=width, record=True, color_system=None, file=io.StringIO())


def test_once_on_a_finished_run(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path, (20, 15, 10))
    out = console()
    assert watch_main([str(tmp_path), "--once"], console=out) == 0
    text = out.export_text()
    assert "finished in 0:45" in text and text.count("✓ done") == 3
    assert "step 45/45" in text and "refine 10/10" in text
    assert "latest sample" in text and "step 45 · 3 people" in text
    assert "run summary" in text
    summary = [ln.split() for ln in text.splitlines() if ln.strip().startswith("explore")]
    assert summary[-1][1:4] == ["done", "15", "0:15"]


def test_once_on_a_run_in_progress(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path, (20, 15, 10), finish=False)
    # Cut the files as a writer would leave them mid-run: stage 2, and a partial line.
    metrics = (tmp_path / rr.METRICS_FILE).read_text().splitlines(keepends=True)
    (tmp_path / rr.METRICS_FILE).write_text("".join(metrics[:27]) + metrics[27][:40])
    events = [
        ln
        for ln in (tmp_path / rr.EVENTS_FILE).read_text().splitlines(keepends=True)
        if json.loads(ln)["global_step"] <= 27
    ]
    (tmp_path / rr.EVENTS_FILE).write_text("".join(events))
    out = console()
    assert watch_main([str(tmp_path), "--once"], console=out) == 0
    text = out.export_text()
    assert "step 27/45" in text and "▶ running" in text and "· pending" in text
    assert "run summary" not in text


def test_once_uses_the_runs_alert_thresholds(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path, (5, 3, 2))
    (tmp_path / rr.CONFIG_FILE).write_text(
        "dashboard:\n  alerts:\n    zero_std_ratio: 0.2\n    zero_std_steps: 2\n"
    )
    out = console()
    assert watch_main([str(tmp_path), "--once"], console=out) == 0
    assert "⚠ zero-std groups" in out.export_text()  # synthetic runs have 25% zero-std groups


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (lambda p: None, "run directory not found"),
        (lambda p: p.mkdir(), "not a run directory"),
        (lambda p: p.write_text("x"), "not a directory"),
        (
            lambda p: (p.mkdir(), (p / rr.RUN_INFO_FILE).write_text("{broken")),
            "invalid",
        ),
        (
            lambda p: (
                p.mkdir(),
                (p / rr.CONFIG_FILE).write_text("dashboard:\n  alerts: {x: 1}\n"),
            ),
            "unknown key 'x'",
        ),
    ],
    ids=["missing", "empty", "file", "bad-run-json", "bad-thresholds"],
)
def test_bad_run_dirs_exit_2_with_one_line(tmp_path: Path, capsys, setup, needle: str) -> None:
    target = tmp_path / "run"
    setup(target)
    for extra in ([], ["--once"]):
        assert watch_main([str(target), *extra], console=console()) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err and err.startswith("kk-train watch: error:")


def test_bad_interval_exits_2(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path, (2, 2, 2))
    with pytest.raises(SystemExit) as exc:
        watch_main([str(tmp_path), "--interval", "0"], console=console())
    assert exc.value.code == 2


def test_tail_handles_partial_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    tail = _Tail(path)
    assert tail.read() == []  # not there yet
    path.write_bytes(b'{"a": 1}\n{"b": ')
    assert tail.read() == [{"a": 1}]
    assert tail.read() == []
    with open(path, "ab") as fh:
        fh.write(b'2}\nnot json\n{"c": "\xc3')
    assert tail.read() == [{"b": 2}] and tail.bad_lines == 1
    with open(path, "ab") as fh:
        fh.write(b'\xa9"}\n')  # the rest of a UTF-8 character split across writes
    assert tail.read() == [{"c": "é"}]
    path.write_bytes(b'{"d": 4}\n')  # rewritten shorter (truncated on resume)
    assert tail.read() == [{"d": 4}]


def test_follows_a_run_written_by_another_thread(tmp_path: Path) -> None:
    writer = threading.Thread(
        target=write_synthetic_run, args=(tmp_path, (6, 5, 4)), kwargs={"delay": 0.02}
    )
    writer.start()
    deadline = time.monotonic() + 60
    while not (tmp_path / rr.RUN_INFO_FILE).exists():
        assert time.monotonic() < deadline, "the writer never wrote run.json"
        time.sleep(0.01)
    buffer = io.StringIO()
    plain = Console(file=buffer, width=80, color_system=None)
    try:
        rc = watch_main([str(tmp_path), "--interval", "0.01"], console=plain)
    finally:
        writer.join()
    assert rc == 0
    lines = buffer.getvalue().splitlines()
    steps = [int(ln.split()[1].split("/")[0]) for ln in lines if ln.startswith("step ")]
    # Every step exactly once, in order (the first line may sum up what existed at start).
    assert steps == sorted(set(steps)) and steps[-1] == 15
    assert len(steps) >= 10
    assert any("run summary" in ln for ln in lines)


def test_watch_subprocess_follows_a_writer_process(tmp_path: Path) -> None:
    run = tmp_path / "run"
    writer = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("dashboard_synthetic.py")),
            str(run),
            "--steps",
            "4",
            "3",
            "3",
            "--delay",
            "0.05",
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while not (run / rr.RUN_INFO_FILE).exists():
            assert time.monotonic() < deadline, "the writer never wrote run.json"
            time.sleep(0.02)
        watcher = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from stages.cli import main; sys.exit(main())",
                "watch",
                str(run),
                "--interval",
                "0.05",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        writer.wait(timeout=60)
    assert watcher.returncode == 0, watcher.stderr
    out = watcher.stdout
    assert "step 10/10" in out and "run summary" in out and "Traceback" not in watcher.stderr
