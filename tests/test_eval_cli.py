"""kk-eval end to end on a tiny random model folder: files, run directories, held-out sets, errors."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import kk_puzzles  # noqa: E402
from analysis import eval_cli  # noqa: E402
from curriculum import run_records as rr  # noqa: E402
from kk_puzzles import io as kkio  # noqa: E402
from stages.evaluation.heldout import trivial_baselines  # noqa: E402
from stages.scaleout.vllm_support import vllm_unavailable_reason  # noqa: E402
from stages.tiny.tokenizer import build_tokenizer, save_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tinymodel") / "model"
    tok = build_tokenizer(["Zoey said that Bob is a knave."])
    cfg = transformers.Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(out)
    save_tokenizer(tok, out)
    return out


def test_data_file_subprocess(model_dir: Path, tmp_path: Path, bin_dir: Path, logic_rl_data: Path):
    out = tmp_path / "out"
    data = logic_rl_data / "3ppl" / "test.parquet"
    proc = subprocess.run(
        [str(bin_dir / "kk-eval"), "--model", str(model_dir), "--data", str(data), "--n", "4",
         "--max-new-tokens", "6", "--batch-size", "3", "--out", str(out), "--save-completions"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "transformers" in proc.stdout and "All knights" in proc.stdout
    # Logic-RL's puzzles were not drawn from our slice: kk-eval says how many lie outside it
    assert "of 4 puzzles lie outside the reserved evaluation slice" in proc.stdout
    doc = json.loads((out / "eval.json").read_text())
    res = doc["models"]["model"]
    assert res["groups"]["3"]["puzzles"] == 4 and res["overall"]["completions"] == 4
    # 6 new tokens on a random model: every completion is cut off
    assert res["groups"]["3"]["truncated"] == 4 and res["groups"]["3"]["mean_length"] == 6
    first4 = kkio.import_records(data).accepted[:4]
    assert res["baselines"]["3"] == trivial_baselines(first4)[3]
    assert doc["puzzle_ids"] == [r["id"] for r in first4]
    rows = list(csv.DictReader((out / "eval.csv").open()))
    assert [r["people"] for r in rows] == ["3", "all"] and rows[0]["puzzles"] == "4"
    assert float(rows[0]["truncation"]) == 1.0
    lines = (out / "completions-model.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["length"] == 6


def _run_dir(tmp_path: Path, model_dir: Path) -> Path:
    run = tmp_path / "run"
    plan = [rr.StagePlan(n, {"2": 1.0}, 4, 2, i, i, 1.0, 1.0) for i, n in enumerate(["b", "a"], 1)]
    info = rr.RunInfo(
        run_name="myrun", model="tiny", device="cpu", started_at=0.0, total_steps=2,
        stages=plan, extra={"base_model": str(model_dir)},
    )  # fmt: skip
    rr.write_run_info(run, info)
    for name in ("a", "b"):
        shutil.copytree(model_dir, run / "checkpoints" / f"stage-{name}")
    (run / "checkpoints" / "step-2").mkdir()  # step checkpoints are not evaluated
    return run


def test_run_directory_base_and_stage_checkpoints(model_dir: Path, tmp_path: Path, capsys):
    run = _run_dir(tmp_path, model_dir)
    data = tmp_path / "p.jsonl"
    recs = kk_puzzles.generate(2, 3, seed=9) + kk_puzzles.generate(3, 3, seed=9)
    kkio.write_jsonl(recs, data)
    code = eval_cli.main(
        ["--model", str(run), "--data", str(data), "--people", "2", "--n", "2",
         "--max-new-tokens", "4", "--temperature", "1.0", "--samples", "2", "--seed", "5"]
    )  # fmt: skip
    assert code == 0
    doc = json.loads((run / "kk-eval" / "eval.json").read_text())
    # plan order (b before a), base first
    assert list(doc["models"]) == ["myrun/base", "myrun/stage-b", "myrun/stage-a"]
    for res in doc["models"].values():
        assert list(res["groups"]) == ["2"] and res["groups"]["2"]["completions"] == 4
        assert set(res["groups"]["2"]["pass_at"]) == {"1", "2"}
    # identical weights, same seed: identical numbers for all three
    vals = [json.dumps(r["groups"], sort_keys=True) for r in doc["models"].values()]
    assert vals[0] == vals[1] == vals[2]
    assert doc["settings"]["samples"] == 2 and len(doc["puzzle_ids"]) == 2
    out = capsys.readouterr().out
    assert "myrun/stage-a" in out and "Strict pass@1" in out


def test_heldout_default_config_is_disjoint_from_training(model_dir: Path, tmp_path: Path):
    import curriculum
    from curriculum import data as cdata

    out = tmp_path / "o"
    assert eval_cli.main(["--model", str(model_dir), "--people", "3", "--n", "3",
                          "--max-new-tokens", "3", "--out", str(out)]) == 0  # fmt: skip
    doc = json.loads((out / "eval.json").read_text())
    cfg = curriculum.load_config(None, [])
    held = cdata.heldout_records(cfg)[:3]  # the run's own held-out set: same prefix
    assert doc["puzzle_ids"] == [r["id"] for r in held]
    train = {r["id"] for s in cfg.stages for r in cdata.stage_dataset_records(cfg, s)}
    assert not set(doc["puzzle_ids"]) & train
    assert "disjoint" in doc["data_source"] and "reserved evaluation slice" in doc["data_source"]
    assert all(r["names"][0] == kk_puzzles.NAMES[0] for r in held)  # the tiny model's fixed cast


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "MISSING"], "no such model folder or run directory"),
        (["--model", "MODEL", "--people", "8-2"], "--people '8-2'"),
        (["--model", "MODEL", "--people", "1,3"], "person counts start at 2"),
        (["--model", "MODEL", "--people", "x"], "--people 'x'"),
        (["--model", "MODEL", "--samples", "0"], "--samples must be at least 1"),
        (["--model", "MODEL", "--data", "MISSING"], "no such file"),
        pytest.param(
            ["--model", "MODEL", "--backend", "vllm"],
            "--backend vllm",
            marks=pytest.mark.skipif(
                vllm_unavailable_reason(import_check=False) is None,
                reason="vLLM runs here; tests/test_vllm_eval.py covers it and its absence",
            ),
        ),
        (["--model", "EMPTYDIR"], "not a model folder"),
        (["--model", "EMPTYRUN"], "has no base model"),
        (["--model", "MODEL", "--temperature", "-1"], "--temperature must be >= 0"),
        (["--model", "MODEL", "--people", "2", "--n", "50"], "at most 18"),
        ([], "--model"),
    ],
)
def test_errors_are_one_line_exit_2(args, message, model_dir: Path, tmp_path: Path, capsys):
    (tmp_path / "empty").mkdir()
    rr.write_run_info(tmp_path / "emptyrun", rr.RunInfo("r", "m", "cpu", 0.0, 1))
    subst = {
        "MISSING": str(tmp_path / "absent"),
        "MODEL": str(model_dir),
        "EMPTYDIR": str(tmp_path / "empty"),
        "EMPTYRUN": str(tmp_path / "emptyrun"),
    }
    out = tmp_path / "out"
    code = eval_cli.main([subst.get(a, a) for a in args] + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("kk-eval: error: ") and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_parse_people():
    assert eval_cli.parse_people("2-8") == list(range(2, 9))
    assert eval_cli.parse_people("5, 3,3") == [3, 5]
