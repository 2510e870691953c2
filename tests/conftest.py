"""Shared test settings: offline, quiet, small thread counts, the external K&K data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Tests must never reach a model hub or log to wandb; keep each worker to one BLAS thread
# so two xdist workers fit on two cores.
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
}.items():
    os.environ.setdefault(key, value)

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
LOGIC_RL_DATA = REPO_ROOT.parent / "shared" / "data" / "logic-rl-kk"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """Folder holding this interpreter's console scripts (kk-gen, kk-train, ...)."""
    return BIN_DIR


@pytest.fixture(scope="session")
def logic_rl_data() -> Path:
    """Logic-RL's K&K test sets (3-7 people), read in place from ../shared/data."""
    if not (LOGIC_RL_DATA / "3ppl" / "test.parquet").exists():
        pytest.skip(f"external Logic-RL K&K data not found at {LOGIC_RL_DATA}")
    return LOGIC_RL_DATA
