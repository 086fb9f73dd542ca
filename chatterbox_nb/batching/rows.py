"""What a batch reads and writes: its rows, their seeds, and the manifest.

Rows come from a list of strings (or dicts), or a .txt (one line an utterance),
.csv or .jsonl file with a `text` column and optional `voice`, `seed` and `id`.
A row's id names its WAV file, so ids must be unique; by default it is the row's
1-based position (a .txt line number, blank lines skipped but counted).

The manifest (`manifest.jsonl` in the output folder) holds one JSON line per row
made or failed. A row is complete when its line says "ok", its WAV has the recorded
size, and text, voice, seed and parameters are those asked for now: only such rows
are skipped on a re-run. The WAV is written first (unique temporary name, fsync,
rename), then its line is appended in one write and fsynced; a kill can leave only
a torn last line, which readers ignore. At the end of a run the manifest is
rewritten atomically in input order, one line per id. Nothing here imports torch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import InvalidOption

__all__ = ["BatchError", "Row", "read_rows", "row_seed", "Manifest", "MANIFEST"]

MANIFEST = "manifest.jsonl"
SUFFIXES = (".txt", ".csv", ".jsonl")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class BatchError(InvalidOption):
    """The batch as a whole cannot run (missing input, duplicate ids, bad engine...)."""


@dataclass(frozen=True)
class Row:
    """One utterance to make; `problem` says why it cannot be made (recorded as failed)."""

    index: int  # 1-based position in the input
    id: str
    text: str
    voice: str | None = None
    seed: int | None = None
    problem: str | None = None


def row_seed(batch_seed: int, row_id: str) -> int:
    """A row's default seed: from the batch seed and the row's id (not its position),
    so reordering or extending the input keeps every row's audio."""
    digest = hashlib.sha256(f"{batch_seed}:{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def read_rows(source: Any, batch_seed: int) -> list[Row]:
    """Rows from a list, or from a .txt/.csv/.jsonl path; whole-input mistakes raise
    `BatchError`, one row's mistake becomes that row's `problem`."""
    if isinstance(source, (str, os.PathLike)):
        records = list(_read_file(Path(source).expanduser()))
    elif isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        records = [(i, item if isinstance(item, dict) else {"text": item}) for i, item in enumerate(source, 1)]
    else:
        raise BatchError(f"batch needs a list of texts or the path of a .txt, .csv or .jsonl file, not {type(source).__name__}.")
    if not records:
        raise BatchError(f"{source} has no rows to synthesize.")
    rows = [_row(index, record, batch_seed) for index, record in records]
    seen: dict[str, int] = {}
    for row in rows:
        if row.id in seen:
            raise BatchError(
                f"Row id {row.id!r} appears on rows {seen[row.id]} and {row.index}: ids name the WAV files, so each must be unique."
            )
        seen[row.id] = row.index
    return rows


def _read_file(path: Path) -> Iterable[tuple[int, Any]]:
    if not path.is_file():
        raise BatchError(f"{path} does not exist; give a .txt, .csv or .jsonl file (or a list of texts).")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise BatchError(f"{path.name}: batch reads {', '.join(SUFFIXES)} files (one row an utterance), not {suffix or 'this file'}.")
    try:
        content = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchError(f"Cannot read {path} ({getattr(exc, 'strerror', None) or exc}); batch needs a UTF-8 text file.") from None
    if suffix == ".txt":
        return [(n, {"text": line}) for n, line in enumerate(content.splitlines(), 1) if line.strip()]
    if suffix == ".csv":
        reader = csv.DictReader(content.splitlines())
        columns = {(c or "").strip().lower(): c for c in reader.fieldnames or []}
        if "text" not in columns:
            raise BatchError(f"{path.name} has no 'text' column (its header is: {', '.join(reader.fieldnames or []) or 'empty'}).")
        return [(n, {k: r.get(columns[k]) for k in ("text", "voice", "seed", "id") if k in columns}) for n, r in enumerate(reader, 1)]
    return [(n, _json_line(line)) for n, line in enumerate(content.splitlines(), 1) if line.strip()]


def _json_line(line: str) -> Any:
    try:
        value = json.loads(line)
    except ValueError as exc:
        return {"problem": f"not a JSON object ({exc.msg})"}
    return value if isinstance(value, dict) else {"problem": "not a JSON object"}


def _row(index: int, record: dict[str, Any], batch_seed: int) -> Row:
    raw_id = record.get("id")
    row_id = f"{index:05d}" if raw_id in (None, "") else str(raw_id).strip()
    text = record.get("text")
    text = text.strip() if isinstance(text, str) else ""
    voice = record.get("voice")
    voice = str(voice).strip() if voice not in (None, "") else None
    problem = record.get("problem")
    seed = None
    if problem is None and not _ID.match(row_id):
        problem = f"id {row_id!r} cannot name a file: use letters, digits, '_', '-' and '.', up to 100 characters"
    if problem is None and not text:
        problem = "no text"
    if problem is None:
        seed, problem = _seed(record.get("seed"), batch_seed, row_id)
    return Row(index, row_id, text, voice, seed, None if problem is None else f"row {index}: {problem}.")


def _seed(value: Any, batch_seed: int, row_id: str) -> tuple[int | None, str | None]:
    if value in (None, ""):
        return row_seed(batch_seed, row_id), None
    try:
        seed = int(str(value).strip())
    except ValueError:
        return None, f"seed {value!r} is not a whole number"
    return (seed, None) if 0 <= seed < 2**63 else (None, f"seed {seed} is not between 0 and 2**63 - 1")


class Manifest:
    """The output folder's manifest: the latest line per id, appended as rows finish."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / MANIFEST
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            for line in self.path.read_text("utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line torn by a kill
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    self.entries[entry["id"]] = entry

    def complete(self, row: Row, wanted: dict[str, Any]) -> bool:
        """Made before, with these very inputs, and its WAV is whole."""
        entry = self.entries.get(row.id)
        if not entry or entry.get("status") != "ok":
            return False
        if any(entry.get(k) != v for k, v in wanted.items()):
            return False
        try:
            return (self.out_dir / entry["wav"]).stat().st_size == entry["wav_bytes"]
        except (OSError, KeyError, TypeError):
            return False

    def append(self, entry: dict[str, Any]) -> None:
        """One line in one write, then fsync; a torn line left by a kill is closed first."""
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.entries[entry["id"]] = entry

    def compact(self, order: list[str]) -> None:
        """Rewrite atomically: one line per id, in input order, then ids not in this input."""
        from ..engine.store.fsutil import write_atomic

        ranked = {row_id: n for n, row_id in enumerate(order)}
        ids = sorted(self.entries, key=lambda i: (ranked.get(i, len(ranked)), i))
        data = "".join(json.dumps(self.entries[i], ensure_ascii=False) + "\n" for i in ids)
        write_atomic(self.path, data.encode("utf-8"))
