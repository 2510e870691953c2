"""``kk-gen`` output is byte-identical to what the generator wrote before it was optimised.

The checksums below were captured from commit 633e704 (main, before the generator speed
work of issue 15) by running this file as a script on that commit:

    .venv/bin/python tests/test_gen_golden.py

which prints the table. The test regenerates every file with the current code (the real
CLI entry point, in-process for speed, plus one whole ``kk-gen`` process) and compares the
md5 of each output file, and of ``kk-gen slice``'s report, with the old code's. A change
that alters any byte for a fixed seed (sampling order, canonical ids, the reserved slice's
structure keys, names/templates stream, quiz text, trace, JSON layout) fails here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# (kk-gen arguments, {output file name: md5}); output files are written to --out out.jsonl
# and its derived names (.train/.test/.perturbed_<kind>).
CASES: list[tuple[list[str], dict[str, str]]] = [
    (["--people", "2", "--n", "150", "--seed", "0"], {
        "out.jsonl": "c4c49e9605aa1f5bd880e4b847ad273d",
    }),
    (["--people", "3", "--n", "500", "--seed", "1"], {
        "out.jsonl": "63dbdf176a33b418e04a3824a9686ccb",
    }),
    (["--people", "5", "--n", "2000", "--seed", "0"], {
        "out.jsonl": "31ac19ac4cb61eec85ea009ed3fe9563",
    }),
    (["--people", "8", "--n", "300", "--seed", "2"], {
        "out.jsonl": "6c1ad9cc232266096b42a54bf57c9666",
    }),
    (["--people", "5", "--n", "400", "--seed", "4", "--split", "0.1"], {
        "out.test.jsonl": "4ab09a13b3e75a71dee8248ed62aa38e",
        "out.train.jsonl": "de0f1dda866d612b6c319d289ac12fb2",
    }),
    (["--people", "3", "--n", "300", "--seed", "5", "--split", "50", "--cast", "fixed"], {
        "out.test.jsonl": "130eec2451d46da024e5d3dd52f313d3",
        "out.train.jsonl": "b63a92237b5a4893fa9eff4f63daa31a",
    }),
    (["--people", "8", "--n", "200", "--seed", "6", "--split", "0.2", "--cast", "fixed"], {
        "out.test.jsonl": "1bafcfb979ddd14defb56fa47269281c",
        "out.train.jsonl": "bc78f3a1f2957ca5f5a210dc3e5a6681",
    }),
    (["--people", "2", "--n", "60", "--seed", "3", "--split", "10", "--cast", "fixed"], {
        "out.test.jsonl": "1deb2a00ea1f04fd8ec7fec47b1541d4",
        "out.train.jsonl": "bf1d5bb5b14c309ad1b2ab5ca660c995",
    }),
    (["--people", "4", "--n", "200", "--seed", "7", "--depth", "3", "--width", "3"], {
        "out.jsonl": "abd22b7e090a25c9bcfbdd18c9fe6c4c",
    }),
    (["--people", "6", "--n", "150", "--seed", "8", "--depth", "4", "--width", "5", "--role-words", "random"], {
        "out.jsonl": "fec0d9f52eb0195e94a5eed4c8fde11e",
    }),
    (["--people", "3-7", "--n", "300", "--seed", "9"], {
        "out.jsonl": "baee0fa83bc92308ccde9f9998bb800b",
    }),
    (["--people", "3:2,5:1", "--n", "200", "--seed", "10", "--role-words", "saint/sinner"], {
        "out.jsonl": "ef2583512bc51db33f5a2f3bfca52c45",
    }),
    (["--people", "12", "--n", "100", "--seed", "11"], {
        "out.jsonl": "690d59d39982501b2a1b4461755abe5b",
    }),
    (["--people", "16", "--n", "30", "--seed", "12", "--depth", "3"], {
        "out.jsonl": "63cb650f7690945867c88f7070f40bfc",
    }),
    (["--people", "5", "--n", "200", "--seed", "13", "--perturb", "all"], {
        "out.jsonl": "dc42fcc019bc0f065444a5821c2fcd0e",
        "out.perturbed_leaf.jsonl": "4080fb85732d7f508761dda103148fe4",
        "out.perturbed_names.jsonl": "537450d03dfd4f6b85f722ad552791a5",
        "out.perturbed_order.jsonl": "a13db9956757f77462ad45517bd6fe16",
        "out.perturbed_roles.jsonl": "c5502ece7bad511891093dfdef9478a2",
        "out.perturbed_statement.jsonl": "28fc1269343c430c2ca79ad5a575ebf4",
    }),
    (["--people", "4", "--n", "120", "--seed", "14", "--split", "0.25", "--cast", "fixed", "--perturb", "logical", "--depth", "3", "--width", "4"], {
        "out.test.jsonl": "b5b659c091c88c5e6f7698301e068c82",
        "out.test.perturbed_leaf.jsonl": "9b7e50bd550d5093c2fc3387a27a7656",
        "out.test.perturbed_statement.jsonl": "6eb697e6c6ea4379e73e0c8c7e919fc7",
        "out.train.jsonl": "c3343c1165f944c62aa9eff42f3443a1",
        "out.train.perturbed_leaf.jsonl": "b708194fe3073adaf84b5f2d416173f6",
        "out.train.perturbed_statement.jsonl": "528c5945fcb87b5a4f293c2e760d2818",
    }),
]  # fmt: skip
SLICE_ARGS = ["slice", "--people", "2-5", "--samples", "400"]
SLICE_MD5 = "24899b19cfa7a1811aeccccf0e5a1fce"


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _run_cli(argv: list[str]) -> str:
    """Run kk-gen's entry point in this process; return its stdout (exit 0 checked)."""
    from kk_puzzles.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    assert code == 0, f"kk-gen {' '.join(argv)} exited {code}"
    return out.getvalue()


def _outputs(args: list[str], folder: Path) -> dict[str, str]:
    _run_cli([*args, "--quiet", "--force", "--out", str(folder / "out.jsonl")])
    return {p.name: _md5(p.read_bytes()) for p in sorted(folder.iterdir())}


def _capture() -> None:
    """Print CASES and SLICE_MD5 for the code checked out now (run on the old commit)."""
    print("CASES: list[tuple[list[str], dict[str, str]]] = [")
    for args, _ in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            sums = _outputs(args, Path(tmp))
        print(f"    ({args!r}, {{")
        for name, digest in sums.items():
            print(f'        "{name}": "{digest}",')
        print("    }),")
    print("]  # fmt: skip")
    report = _run_cli(SLICE_ARGS)
    print(f'SLICE_MD5 = "{_md5(report.encode())}"')


@pytest.mark.parametrize("args, expected", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_output_matches_old_generator(args, expected, tmp_path):
    assert _outputs(args, tmp_path) == expected


def test_slice_report_matches_old_generator():
    assert _md5(_run_cli(SLICE_ARGS).encode()) == SLICE_MD5


def test_whole_process_matches(bin_dir, tmp_path):
    """The installed ``kk-gen`` in its own process writes the same bytes (fresh caches)."""
    args, expected = CASES[2]
    out = tmp_path / "out.jsonl"
    res = subprocess.run(
        [str(bin_dir / "kk-gen"), *args, "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert _md5(out.read_bytes()) == expected["out.jsonl"]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    _capture()
