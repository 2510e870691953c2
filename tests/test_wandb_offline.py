"""``run.report_to: wandb`` with ``WANDB_MODE=offline``: a micro run writes one offline wandb
run holding the stage, reward, format, length, temperature and LR series of every step,
under TRL's metric names (``train/`` + the key TRL logs) and ours (``train/kk/...``).

The offline run is read back from its ``run-<id>.wandb`` file: a LevelDB-style log (a
7-byte header ``:W&B``, 0xBEE1, version; 32 KiB blocks of records, each with a 7-byte header
of checksum, length and type: full, first, middle, last) of ``wandb_internal_pb2.Record``
protobufs, whose ``history`` records are the logged rows. No network."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kill_harness import train_cmd
from wandb.proto import wandb_internal_pb2  # in the dev extra: never skipped

from curriculum import run_records as rr

pytestmark = pytest.mark.slow

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _records(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1, data[:7]
    pos, parts = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (crc, length, kind) == (0, 0, 0):  # block padding
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            parts = chunk
        elif kind == MIDDLE:
            parts += chunk
        elif kind == LAST:
            yield parts + chunk


def history_rows(path: Path) -> list[dict]:
    rows = []
    for raw in _records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    (item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows


def test_wandb_offline_run_holds_the_curriculum_series(tmp_path, bin_dir, repo_root):
    out, wandb_dir = tmp_path / "run", tmp_path / "wandb-dir"
    wandb_dir.mkdir()
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(wandb_dir),
        "WANDB_SILENT": "true",
    }
    env.pop("WANDB_API_KEY", None)
    res = subprocess.run(
        train_cmd(
            bin_dir, repo_root, out, "run.report_to=wandb", "eval.enabled=false", overrides=()
        ),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=repo_root,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    runs = list(wandb_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1, runs  # one wandb run for the whole curriculum
    rows = [r for r in history_rows(runs[0]) if "train/reward" in r]
    metrics = rr.read_metrics(out)
    assert [r["train/global_step"] for r in rows] == [m.global_step for m in metrics]
    assert [m.global_step for m in metrics] == [1, 2, 3, 4, 5, 6]
    # configs/micro.yaml: 2 steps per stage; temperatures 1.0, 1.2, then 1.2 -> 0.9 linear.
    assert [r["train/kk/stage"] for r in rows] == [1, 1, 2, 2, 3, 3]
    assert [r["train/kk/temperature"] for r in rows] == pytest.approx(
        [1.0, 1.0, 1.2, 1.2, 1.2, 0.9]
    )
    for row, m in zip(rows, metrics, strict=True):
        assert row["train/reward"] == pytest.approx(m.reward_mean)
        assert row["train/rewards/logic_rl_format/mean"] == pytest.approx(
            m.rewards["logic_rl_format"]
        )
        assert row["train/kk/format_error_ratio"] == pytest.approx(m.format_error_ratio)
        assert row["train/completions/mean_length"] == pytest.approx(m.completion_length_mean)
        assert row["train/learning_rate"] == pytest.approx(m.learning_rate)
