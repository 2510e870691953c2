"""Reading and writing puzzle records: JSONL, parquet, HF datasets, verl parquet, import.

Every writer goes through a temporary file in the target folder and ``os.replace``, so a
failure never leaves half a file. pyarrow and datasets are imported inside the functions.

>>> import tempfile, pathlib
>>> from kk_puzzles import generate
>>> recs = generate(3, 4, seed=2)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "p.jsonl"
>>> write_jsonl(recs, path)
>>> read_jsonl(path) == recs
True
>>> res = import_records(path)
>>> len(res.accepted), res.rejected
(4, [])
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from .generator import puzzle_id
from .grammar import StatementError, depth_of, parse_statements, width_of
from .prompts import base_prompt, chat_messages, chatml_prompt
from .render import role_words, solution_text, solution_text_format
from .solver import MAX_PEOPLE, consistent_mask, mask_to_solutions
from .trace import render_trace, trace_steps

TYPE_CHECKING = False  # typing's, without importing typing (2 ms of every kk-gen run)
if TYPE_CHECKING:
    from typing import Any

ROLE_KEYS = ("knight", "knave", "a_knight", "a_knave", "Knight", "Knave")


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


class DataError(ValueError):
    """A data file that cannot be read (one-line message naming the file and place)."""


def _temp_path(p: Path) -> str:
    """A new, empty file next to ``p`` (mode 0666 less the umask), for an atomic write.

    Made here rather than with ``tempfile`` (which costs ``kk-gen`` milliseconds to import).
    """
    for attempt in range(100):
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{attempt}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return str(tmp)
    raise FileExistsError(f"no free temporary name next to {p}")


def _atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then move the result onto ``path``; clean up on failure."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(p)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # the usual mode, whatever the writer left
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_line() -> Callable[[Any], str]:
    """``json.dumps`` with its defaults (mem-kk-logic's layout), for records.

    Less the check for containers that hold themselves (records are plain data), and with
    json's C encoder made once: ``JSONEncoder.encode`` makes it anew for every record.
    Together about 10% of the encoding. Where the C encoder is missing, plain ``encode``.
    """
    encoder = json.JSONEncoder(check_circular=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python build without _json
        return encoder.encode
    # The arguments JSONEncoder.iterencode passes it (json/encoder.py); a test compares
    # the lines with json.dumps.
    chunks = make(None, encoder.default, json.encoder.encode_basestring_ascii, None,
                  encoder.key_separator, encoder.item_separator, False, False, True)  # fmt: skip
    return lambda record: "".join(chunks(record, 0))


def dumps_jsonl(records: Iterable[Mapping[str, Any]]) -> str:
    """Records as JSON lines, written like mem-kk-logic (``json.dumps`` defaults)."""
    encode = _json_line()
    return "".join([encode(r) + "\n" for r in records])


def write_jsonl(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write one JSON object per line, atomically (streamed: no whole-file string)."""

    def write(tmp: str) -> None:
        encode = _json_line()
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(encode(r) + "\n" for r in records)

    _atomic_write(path, write)


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read JSON lines (blank lines skipped); DataError names the bad line."""
    out = []
    try:
        fh = open(path, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    with fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{i}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{i}: expected a JSON object")
            out.append(obj)
    return out


def _columns(records: Sequence[Mapping[str, Any]]) -> list[str]:
    cols: dict[str, None] = {}
    for r in records:
        for k in r:
            cols.setdefault(k, None)
    return list(cols)


def write_parquet(records: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write records as a parquet table (dict fields become structs), atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = _columns(records)
    table = pa.Table.from_pydict({c: [r.get(c) for r in records] for c in cols})
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_parquet(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a parquet file into a list of plain dicts."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read parquet {path}: {exc}") from None
    return table.to_pylist()


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read .jsonl/.json lines or .parquet by extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(path)
    raise DataError(f"{path}: unknown file type {suffix!r} (use .jsonl or .parquet)")


def to_hf_dataset(
    records: Sequence[Mapping[str, Any]],
    prompt_style: str = "chat",
    *,
    prefill_think: bool = True,
    json_fields: Sequence[str] = (),
) -> Any:
    """A ``datasets.Dataset`` with a ``prompt`` column and every record field.

    ``prompt_style="chat"`` gives the conversational prompt (system + user messages);
    ``"base"`` gives the plain ``User: ... Assistant: <think>`` string. Fields named in
    ``json_fields`` are stored as JSON strings (rewards accept both forms).
    """
    if prompt_style not in ("chat", "base"):
        raise ValueError(f"prompt_style must be 'chat' or 'base', got {prompt_style!r}")
    import datasets

    rows = []
    for r in records:
        row = dict(r)
        for f in json_fields:
            if f in row and not isinstance(row[f], str):
                row[f] = json.dumps(row[f])
        if prompt_style == "chat":
            row["prompt"] = chat_messages(r)
        else:
            row["prompt"] = base_prompt(r, prefill_think)
        rows.append(row)
    return datasets.Dataset.from_list(rows)


def _verl_schema() -> Any:
    import pyarrow as pa

    s = pa.string()

    def lst(t: Any) -> Any:
        return pa.list_(pa.field("element", t))

    return pa.schema(
        [
            ("quiz", s),
            ("names", lst(s)),
            ("knight_knave", pa.struct([(k, s) for k in sorted(ROLE_KEYS)])),
            ("solution", lst(pa.bool_())),
            ("solution_text", s),
            ("solution_text_format", s),
            ("cot_head", s),
            ("cot_repeat_steps", lst(s)),
            ("cot_foot", s),
            ("statements", s),
            ("index", pa.int64()),
            ("data_source", s),
            ("prompt", lst(pa.struct([("content", s), ("role", s)]))),
            ("ability", s),
            (
                "reward_model",
                pa.struct(
                    [
                        (
                            "ground_truth",
                            pa.struct([("solution_text_format", s), ("statements", s)]),
                        ),
                        ("style", s),
                    ]
                ),
            ),
            ("extra_info", pa.struct([("index", pa.int64()), ("split", s)])),
        ]
    )


def verl_rows(
    records: Sequence[Mapping[str, Any]],
    *,
    split: str = "train",
    data_source: str = "kk_logic",
    prefill_think: bool = True,
) -> list[dict[str, Any]]:
    """Rows in Logic-RL's verl layout (mem-kk-logic fields + verl's prompt/reward_model)."""
    rows = []
    for i, r in enumerate(records):
        lines = str(r.get("cot", "")).split("\n")
        rows.append(
            {
                "quiz": r["quiz"],
                "names": list(r["names"]),
                "knight_knave": {k: r["knight_knave"][k] for k in sorted(ROLE_KEYS)},
                "solution": [bool(x) for x in r["solution"]],
                "solution_text": r["solution_text"],
                "solution_text_format": r["solution_text_format"],
                "cot_head": lines[0],
                "cot_repeat_steps": lines[1:-1],
                "cot_foot": lines[-1] if len(lines) > 1 else "",
                "statements": r["statements"],
                "index": i,
                "data_source": data_source,
                "prompt": [{"content": chatml_prompt(r, prefill_think), "role": "user"}],
                "ability": "logic",
                "reward_model": {
                    "ground_truth": {
                        "solution_text_format": r["solution_text_format"],
                        "statements": r["statements"],
                    },
                    "style": "rule",
                },
                "extra_info": {"index": i, "split": split},
            }
        )
    return rows


def write_verl_parquet(
    records: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    split: str = "train",
    data_source: str = "kk_logic",
    prefill_think: bool = True,
) -> None:
    """Write a verl/Logic-RL training parquet with the same schema as Logic-RL's K&K files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = verl_rows(records, split=split, data_source=data_source, prefill_think=prefill_think)
    table = pa.Table.from_pylist(rows, schema=_verl_schema())
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))


class ImportResult:
    """Records re-solved on import: the accepted ones (normalised) and (row, reason) rejects."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.accepted: list[dict[str, Any]] = []
        self.rejected: list[tuple[int, str]] = []

    def summary(self) -> str:
        return (
            f"{self.path}: {len(self.accepted)} accepted, {len(self.rejected)} rejected "
            f"of {len(self.accepted) + len(self.rejected)}"
        )


def json_or_value(value: Any, *, strict: bool = False) -> Any:
    """A record field that may be JSON text, decoded; any other value as it is.

    Datasets store lists and dicts (``names``, ``solution``, ``knight_knave``,
    ``reward_model``) as JSON strings, since Arrow cannot hold per-row dicts well, while
    JSONL and Python records hold the values themselves. By default only a ``str`` that
    starts with ``[`` or ``{`` is decoded, and one that does not parse comes back unchanged;
    ``strict=True`` decodes every ``str`` or ``bytes`` and raises ``ValueError`` when it is
    not JSON.

    >>> json_or_value('["Ann", "Bob"]'), json_or_value([True]), json_or_value("{oops")
    (['Ann', 'Bob'], [True], '{oops')
    >>> json_or_value("true", strict=True)
    True
    """
    if strict:
        if isinstance(value, (str, bytes)):
            return json.loads(value)
        return value
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def normalize_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """Re-solve one external record and return it in our format; ValueError says why not."""
    stmts_text = row.get("statements")
    if stmts_text is None:
        gt = json_or_value(row.get("reward_model") or {})
        if isinstance(gt, Mapping):
            stmts_text = (gt.get("ground_truth") or {}).get("statements")
    if not isinstance(stmts_text, str):
        raise ValueError("no 'statements' string")
    try:
        stmts = parse_statements(stmts_text)
    except StatementError as exc:
        raise ValueError(f"bad statements: {exc}") from None
    n = len(stmts)
    if not 2 <= n <= MAX_PEOPLE:
        raise ValueError(f"{n} people (supported: 2..{MAX_PEOPLE})")
    names = json_or_value(row.get("names"))
    if not isinstance(names, list) or len(names) != n or not all(isinstance(x, str) for x in names):
        raise ValueError(f"'names' must be a list of {n} strings")
    if len(set(names)) != n:
        raise ValueError("repeated names")
    roles = json_or_value(row.get("knight_knave"))
    if roles is None:
        roles = role_words()
    if not isinstance(roles, Mapping) or any(not isinstance(roles.get(k), str) for k in ROLE_KEYS):
        raise ValueError("'knight_knave' lacks some role words")
    roles = {k: roles[k] for k in ROLE_KEYS}
    sols = mask_to_solutions(consistent_mask(stmts, n), n)
    if len(sols) != 1:
        raise ValueError(f"statements have {len(sols)} solutions, expected exactly 1")
    stated = json_or_value(row.get("solution"))
    if not isinstance(stated, list) or len(stated) != n:
        raise ValueError(f"'solution' must be a list of {n} booleans")
    if [bool(x) for x in stated] != list(sols[0]):
        raise ValueError(
            f"solution {[bool(x) for x in stated]} disagrees with the statements' {list(sols[0])}"
        )
    sol = list(sols[0])
    fmt = solution_text_format(names, sol, roles)
    theirs = row.get("solution_text_format")
    if isinstance(theirs, str) and [x.strip() for x in theirs.strip().split("\n")] != fmt.split(
        "\n"
    ):
        raise ValueError("solution_text_format disagrees with names/solution")
    quiz = row.get("quiz")
    if not isinstance(quiz, str) or not quiz:
        raise ValueError("no 'quiz' text")
    return {
        "quiz": quiz,
        "names": list(names),
        "knight_knave": roles,
        "solution": sol,
        "solution_text": row.get("solution_text") or solution_text(names, sol, roles),
        "solution_text_format": fmt,
        "statements": repr(stmts),
        "id": puzzle_id(stmts),
        "people": n,
        "depth": max(depth_of(s) for s in stmts),
        "width": width_of(stmts),
        "seed": row.get("seed") if isinstance(row.get("seed"), int) else None,
        "cot": row.get("cot")
        if isinstance(row.get("cot"), str)
        else render_trace(stmts, names, roles, trace_steps(stmts)),
    }


def import_records(path: str | os.PathLike[str]) -> ImportResult:
    """Read mem-kk-logic / Logic-RL / our JSONL or parquet and re-solve every record.

    A record whose statements do not have exactly one solution equal to its ``solution``
    field (or that repeats an earlier puzzle) is rejected with a reason, not accepted.
    """
    rows = read_records(path)
    result = ImportResult(path=str(path))
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        try:
            rec = normalize_record(row)
        except ValueError as exc:
            result.rejected.append((i, str(exc)))
            continue
        if rec["id"] in seen:
            result.rejected.append((i, f"duplicate of record {seen[rec['id']]}"))
            continue
        seen[rec["id"]] = i
        result.accepted.append(rec)
    return result
