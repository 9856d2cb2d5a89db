"""Property/fuzz tests: random user dataset files (CSV/TSV/JSONL/lines) into the loaders.

Every file gives either a valid dataset (non-empty texts, labels in the label set or finite targets) or a
DataError/ConfigError that names the file, the problem and a fix; never a raw exception.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from analysis.core.config import DataConfig
from analysis.core.errors import DataError, PruneScopeError
from analysis.data import tasks as data
from tests.fuzz_common import fuzz_settings

FUZZ = fuzz_settings(120)
SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".txt")
COLUMNS = ("text", "label", "sentence1", "sentence2", "score", "y", "sentence", "", " text ", "__line__", "label")
CELLS = st.one_of(
    st.sampled_from(["0", "1", "2", "-1", "1.5", "0.25", "nan", "NaN", "inf", "-inf", "", " ", "pos", "neg",
                     "a fine film", 'say "hi"', "a,b", "a\tb", "x\ny", "1e5", "True", "null", "\u2028", "é"]),
    st.text(max_size=12), st.integers(-3, 3).map(str), st.floats(allow_nan=True).map(repr))
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                        st.sampled_from(["a fine film", "pos", "neg", "", "0", "1", "1.5"]), st.text(max_size=8),
                        st.lists(st.integers(0, 2), max_size=2), st.dictionaries(st.sampled_from(["a"]), st.none()))
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252")


@st.composite
def delimited(draw) -> bytes:
    """A header and rows joined by a (possibly wrong) delimiter, in a random encoding and line ending."""
    header = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=4))
    width = len(header)
    rows = draw(st.lists(st.lists(CELLS, min_size=max(0, width - 2), max_size=width + 1), max_size=12))
    delimiter = draw(st.sampled_from([",", "\t", ";", "|", " "]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [delimiter.join(header)] + [delimiter.join(r) for r in rows]
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["", " ", '"unclosed', "a" * 5000, "\x00"])))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace"), {"\t": ".tsv"}.get(delimiter, ".csv")


@st.composite
def jsonl(draw) -> bytes:
    """JSON objects (keys vary from row to row, labels of mixed types), with some broken lines."""
    keys = st.sampled_from(["text", "label", "sentence1", "sentence2", "score", "y"])
    rows = draw(st.lists(st.dictionaries(keys, JSON_VALUES, max_size=4), max_size=10))
    lines = [json.dumps(r) for r in rows]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", "[1, 2]", "{", "3", "null", "{}"])))
    return "\n".join(lines).encode(draw(st.sampled_from(("utf-8", "utf-8-sig", "utf-16")))), ".jsonl"


@st.composite
def sensible(draw) -> bytes:
    """A mostly well-formed sentiment CSV or JSONL (so the valid path runs too), then perhaps one defect."""
    labels = draw(st.sampled_from([["0", "1"], ["pos", "neg"], ["0.5", "1.25", "3"], ["1", "nan"], ["0", "1", "x"],
                                   [0, 1], [0.5, 2], [True, False], [0, "1"], [None, 1]]))
    n = draw(st.integers(0, 12))
    cells = [(f"film {i}", draw(st.sampled_from(labels))) for i in range(n)]
    is_json = draw(st.booleans())
    if is_json:
        body = "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in cells)
    else:
        header = draw(st.sampled_from(["text,label\n", "sentence,score\n", "text\n", "label,text\n", ""]))
        body = header + "".join(f'"{t}",{y}\n' for t, y in cells)
    content = body.encode()
    defect = draw(st.sampled_from(["none", "none", "bom", "utf16", "byte", "nan", "empty", "truncate", "no_label",
                                   "empty_label"]))
    if defect == "bom":
        content = b"\xef\xbb\xbf" + content
    elif defect == "utf16":
        content = body.encode("utf-16")
    elif defect == "byte" and content:
        at = draw(st.integers(0, len(content)))
        content = content[:at] + draw(st.binary(min_size=1, max_size=2)) + content[at:]
    elif defect in ("nan", "empty"):
        content += b'"film x",nan\n' if defect == "nan" else b'"",1\n'
    elif defect in ("no_label", "empty_label"):  # a row whose label is missing (JSONL: no key) or empty
        content += ((b'{"text": "film y"}\n' if defect == "no_label" else b'{"text": "film y", "label": ""}\n')
                    if is_json else b'"film y",\n')
    elif defect == "truncate" and content:
        content = content[: draw(st.integers(0, len(content)))]
    return content, ".jsonl" if is_json else ".csv"


# (content, the suffix that suits it); the tests use another suffix now and then
FILES = st.one_of(sensible(), st.tuples(st.binary(max_size=300), st.sampled_from(SUFFIXES)), delimited(), jsonl())


def _write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def _check_dataset(task: data.TaskData) -> None:
    """A loaded dataset: non-empty text cells, labels inside the label set, finite regression targets."""
    event(f"valid dataset: {task.card.task}")
    for split in (task.train, task.eval):
        assert split is not None and len(split) > 0
        assert all(isinstance(t, str) and t.strip() for col in split.texts for t in col)
        assert split.labels is not None and len(split.labels) == len(split)
        if task.card.task == "classification":
            assert task.card.labels and len(task.card.labels) >= 2
            assert all(label.strip() for label in task.card.labels), task.card.labels
            assert split.labels.min() >= 0 and split.labels.max() < len(task.card.labels)
        else:
            assert np.isfinite(split.labels).all()


def _check_error(exc: PruneScopeError, paths: list[Path]) -> None:
    """A user error names one of the files (or the config field at fault) and what to do."""
    message = str(exc)
    event(f"clear error: {type(exc).__name__}")
    assert exc.problem
    assert isinstance(exc, DataError) and any(p.name in message for p in paths), message
    assert exc.fix, message


def _load_or_clear_error(cfg: DataConfig, paths: list[Path]) -> bool:
    """Load the files as a task: a sound dataset (True) or a clear error naming one of `paths` (False)."""
    try:
        task = data.load_task(cfg, seed=0)
    except PruneScopeError as exc:
        _check_error(exc, paths)
        return False
    _check_dataset(task)
    return True


@FUZZ
@given(train=FILES, evaluation=st.one_of(st.none(), FILES), suffix=st.one_of(st.none(), st.sampled_from(SUFFIXES)),
       mapping=st.sampled_from([{}, {}, {}, {"text_columns": ("text",)}, {"label_column": "y"}, {"task": "regression"},
                                {"task": "classification"}, {"text_columns": ("sentence1", "sentence2")}]))
def test_user_files_give_a_dataset_or_a_clear_error(train, evaluation, suffix, mapping):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train_path = _write(folder, "train" + (suffix or train[1]), train[0])
        eval_path = (train_path if evaluation is None
                     else _write(folder, "dev" + (suffix or evaluation[1]), evaluation[0]))
        cfg = DataConfig(dataset=str(train_path), eval_file=str(eval_path), **mapping)
        if _load_or_clear_error(cfg, [train_path, eval_path]):
            assert data.fingerprint(cfg)


@FUZZ
@given(train=sensible(), evaluation=st.one_of(st.none(), sensible()))
def test_mostly_sound_files_give_a_dataset_or_a_clear_error(train, evaluation):
    """Near-valid files with one defect at most, so both outcomes (dataset, error) are well exercised."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train_path = _write(folder, "train" + train[1], train[0])
        eval_path = train_path if evaluation is None else _write(folder, "dev" + evaluation[1], evaluation[0])
        _load_or_clear_error(DataConfig(dataset=str(train_path), eval_file=str(eval_path)), [train_path, eval_path])


@FUZZ
@given(content=FILES, suffix=st.one_of(st.none(), st.sampled_from(SUFFIXES + (".dat",))))
def test_read_rows_gives_rows_or_a_clear_error(content, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), "rows" + (suffix or content[1]), content[0])
        try:
            rows = data.read_rows(path)
        except PruneScopeError as exc:
            _check_error(exc, [path])
            return
        assert all(isinstance(r, dict) for r in rows)
        event("rows read")


def test_size_limits_are_clear_errors(tmp_path, monkeypatch):
    """A file over PRUNESCOPE_MAX_FILE_MB, or a line over PRUNESCOPE_MAX_LINE_CHARS, is refused before parsing."""
    ok = _write(tmp_path, "dev.csv", b"text,label\na,0\nb,1\n")
    big = _write(tmp_path, "big.csv", b"text,label\n" + b"a fine film,0\n" * 100_000)
    monkeypatch.setenv("PRUNESCOPE_MAX_FILE_MB", "1")
    with pytest.raises(DataError, match=r"big.csv is 1.4 MB, over the 1 MB limit.*PRUNESCOPE_MAX_FILE_MB"):
        data.load_task(DataConfig(dataset=str(big), eval_file=str(ok)), seed=0)
    monkeypatch.delenv("PRUNESCOPE_MAX_FILE_MB")
    long = _write(tmp_path, "long.csv", b"text,label\nshort,0\n" + b"x" * 3000 + b",1\n")
    monkeypatch.setenv("PRUNESCOPE_MAX_LINE_CHARS", "2000")
    with pytest.raises(DataError, match=r"line 3 of .*long.csv is 3002 characters.*PRUNESCOPE_MAX_LINE_CHARS"):
        data.load_task(DataConfig(dataset=str(long), eval_file=str(ok)), seed=0)
    for bad in ("0", "-5", "lots"):
        monkeypatch.setenv("PRUNESCOPE_MAX_LINE_CHARS", bad)
        with pytest.raises(PruneScopeError, match="PRUNESCOPE_MAX_LINE_CHARS"):
            data.read_rows(ok)


def test_known_bad_files_name_the_problem(tmp_path):
    """The shapes the fuzzers found once, kept as plain regression cases."""
    ok = _write(tmp_path, "dev.csv", b"text,label\na,0\nb,1\n")
    cases = [
        (b'{"text": "a", "label": 0}\n{"text": "b"}\n', ".jsonl", "no 'label' value at line 2"),
        (b"text,score\na,1.5\nb,nan\n", ".csv", "label 'nan' at line 3 .* is not a finite number"),
        (b"text\tlabel\na\t0\nb\t1\n", ".csv", "one column 'text\\\\tlabel'.*tab-separated"),
        (b"[1, 2]\n", ".jsonl", "line 1 is not a JSON object"),
        (b"x,y\na,0\n", ".csv", "train.csv.*--text-columns"),
    ]
    for content, suffix, message in cases:
        train = _write(tmp_path, "train" + suffix, content)
        with pytest.raises(DataError, match=message):
            data.load_task(DataConfig(dataset=str(train), eval_file=str(ok)), seed=0)
