"""Reading data files (CSV, TSV, JSONL, plain lines) into row dicts, with the checks done before parsing.

Limits: a file over $PRUNESCOPE_MAX_FILE_MB megabytes (default 2048) or holding a line longer than
$PRUNESCOPE_MAX_LINE_CHARS characters (default 1,000,000) is refused with its size or line number. Files
must be UTF-8 (a BOM is fine). Every error names the file, the problem and the fix. Each row carries its
line number under `__line__` so later checks can point at it.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

from analysis.core import settings
from analysis.core.errors import DataError

FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".txt": "lines"}
LINE_KEY = "__line__"
DELIMITERS = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}


def read_rows(path: Path, columns: Sequence[str] | None = None, fmt: str | None = None) -> list[dict[str, Any]]:
    """Read CSV/TSV/JSONL/lines into dicts, with clear errors on size, encoding and structure."""
    text = read_text(path)
    fmt = fmt or FORMATS.get(path.suffix.lower(), "tsv")
    if fmt == "jsonl":
        return _read_jsonl(text, path)
    if fmt == "lines":
        name = (columns or ("text",))[0]
        return [{name: line.strip(), LINE_KEY: n} for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    return _read_delimited(text, path, "\t" if fmt == "tsv" else ",", columns)


def read_text(path: Path) -> str:
    """A data file's text: it exists, is not empty, is within the size and line limits, and is UTF-8."""
    if not path.is_file():
        raise DataError(f"file {str(path)!r} does not exist", fix="check the path or PRUNESCOPE_DATA")
    size, limit = path.stat().st_size, settings.max_file_bytes()
    if size == 0:
        raise DataError(f"file {path} is empty", fix="give a file with a header row and data rows")
    if size > limit:
        raise DataError(f"file {path} is {size / 1e6:.1f} MB, over the {limit / 1e6:.0f} MB limit",
                        fix="split the file, or raise PRUNESCOPE_MAX_FILE_MB")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        encoding = " (it looks like UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise DataError(f"{path} is not UTF-8{encoding} (bad byte at line {line})",
                        fix="re-save the file as UTF-8") from None
    check_line_lengths(text, path)
    return text


def check_line_lengths(text: str, path: Path) -> None:
    """Refuse a line over the limit (a sign of a wrong delimiter, a binary file, or a runaway quote)."""
    limit = settings.max_line_chars()
    if len(text) <= limit:
        return
    lines = text.splitlines()
    if max(map(len, lines), default=0) <= limit:
        return
    n, line = next((n, line) for n, line in enumerate(lines, 1) if len(line) > limit)
    raise DataError(f"line {n} of {path} is {len(line)} characters, over the {limit} limit",
                    fix="check that the file is text with one record per line, or raise PRUNESCOPE_MAX_LINE_CHARS")


def _read_jsonl(text: str, path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines: JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {n} is not valid JSON ({exc.msg})", fix="one JSON object per line") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {n} is not a JSON object", fix="one JSON object per line")
        row[LINE_KEY] = n
        rows.append(row)
    return rows


def _read_delimited(text: str, path: Path, delimiter: str, columns: Sequence[str] | None) -> list[dict[str, Any]]:
    # GLUE files contain stray quote characters: quoting must be off for TSV.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    csv.field_size_limit(max(settings.max_line_chars(), 1 << 17))
    try:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter, quoting=quoting)
        rows = list(reader)
    except csv.Error as exc:
        raise DataError(f"cannot parse {path}: {exc}", fix="check the delimiter and quoting "
                        "(an unclosed quote swallows the rest of the file)") from None
    header = list(columns) if columns else (rows.pop(0) if rows else [])
    header = [h.strip() for h in header]
    out = []
    for n, row in enumerate(rows, 1 if columns else 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            # A short row: keep it (missing cells become "") so the column checks can name it.
            row = row + [""] * (len(header) - len(row))
        record: dict[str, Any] = dict(zip(header, row))
        record[LINE_KEY] = n
        out.append(record)
    return out


def delimiter_hint(columns: Sequence[str]) -> str:
    """When a header came out as one column holding a delimiter, say which delimiter the file seems to use."""
    if len(columns) != 1:
        return ""
    for delimiter, name in DELIMITERS.items():
        if delimiter in columns[0]:
            suffix = " (name it .tsv)" if delimiter == "\t" else (" (name it .csv)" if delimiter == "," else "")
            return (f"; the header is one column {columns[0]!r}: the file looks {name}-separated{suffix}; "
                    "PruneScope reads .csv as comma- and .tsv as tab-separated")
    return ""
