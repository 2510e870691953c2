"""Two processes building the same tiny model into one empty cache folder at once: the
build lock (``stages.tiny.base.build_lock``) lets one pre-train while the other waits and
then uses its folder."""

from __future__ import annotations

import subprocess
import sys
import time

from stages.tiny import base
from stages.tiny import model as tiny_model

# The smallest model and pre-training the builder allows (0 steps: saved as initialised).
SMALLEST = {
    "hidden_size": 2,
    "layers": 1,
    "heads": 1,
    "kv_heads": 1,
    "intermediate_size": 1,
    "max_positions": 64,
    "steps": 0,
    "batch_size": 1,
    "threads": 1,
}

# Each process records a call of the real pre-training, says it is ready (imports done),
# waits for "go", then builds.
BUILDER = """
import os, sys, time
from pathlib import Path
import stages.tiny.base as base
cache, marks = Path(sys.argv[1]), Path(sys.argv[2])
real = base.pretrain
def recorded(*args, **kwargs):
    (marks / f"pretrain-{os.getpid()}").write_text("")
    return real(*args, **kwargs)
base.pretrain = recorded
(marks / f"ready-{os.getpid()}").write_text("")
while not (marks / "go").exists():
    time.sleep(0.002)
print("built:", base.ensure_base_model(eval(sys.argv[3]), cache))
"""


def test_two_processes_building_at_once_pretrain_once(tmp_path, repo_root):
    cache, marks = tmp_path / "cache", tmp_path / "marks"
    marks.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILDER, str(cache), str(marks), repr(SMALLEST)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=repo_root,
        )
        for _ in range(2)
    ]
    deadline = time.monotonic() + 300
    while len(list(marks.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    (marks / "go").write_text("")
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    final = cache / f"tiny-{tiny_model.cfg_key(SMALLEST)}"
    # Only our line: an installed DeepSpeed logs its accelerator choice to stdout on import.
    built = [[ln for ln in out.splitlines() if ln.startswith("built: ")] for out, _ in outs]
    assert built == [[f"built: {final}"], [f"built: {final}"]]
    assert len(list(marks.glob("pretrain-*"))) == 1  # the other process waited, then reused it
    assert (final / base.DONE_FILE).is_file() and (final / "config.json").is_file()
    assert sorted(p.name for p in cache.iterdir()) == [final.name, f"{final.name}.lock"]
