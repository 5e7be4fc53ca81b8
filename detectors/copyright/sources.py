"""Reading protected works for the corpus: text files, directories of them, and JSONL.

JSONL: one object per line with `id` (string or integer) and `text` (non-empty string), optional
`title` and `licence` (or `license`); other fields are ignored. Text files: UTF-8; the id is the path
relative to the directory given (without suffix), the title the file stem; a Project Gutenberg header
and footer (the `*** START OF ... ***` / `*** END OF ... ***` lines) are stripped.

Every problem is a CorpusError naming the file (and line); nothing is indexed unless every input reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from detectors.copyright.schema import CorpusError, Document

TEXT_SUFFIXES = (".txt", ".text", ".md")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
_PG_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG EBOOK.*\*\*\*\s*$", re.MULTILINE | re.IGNORECASE)
_PG_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG EBOOK.*\*\*\*\s*$", re.MULTILINE | re.IGNORECASE)


def strip_gutenberg(text: str) -> str:
    """Drop a Project Gutenberg header and footer where their marker lines are present."""
    m = _PG_START.search(text)
    if m:
        text = text[m.end():]
    m = _PG_END.search(text)
    if m:
        text = text[:m.start()]
    return text.strip("\n\r\ufeff")


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if b"\x00" in data[:8192]:
        raise CorpusError(f"{path}: looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def read_jsonl(path: Path, licence: str | None = None) -> Iterator[Document]:
    text = _read_text(path)
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise CorpusError(f"{where}: each line must be a JSON object with 'id' and 'text'")
        doc_id = obj.get("id")
        if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)) or not str(doc_id).strip():
            raise CorpusError(f"{where}: field 'id' must be a non-empty string")
        body = obj.get("text")
        if not isinstance(body, str) or not body.strip():
            raise CorpusError(f"{where}: field 'text' must be a non-empty string")
        title = obj.get("title", "")
        if title is None:
            title = ""
        if not isinstance(title, str):
            raise CorpusError(f"{where}: field 'title' must be a string")
        lic = obj.get("licence", obj.get("license", licence))
        if lic is not None and not isinstance(lic, str):
            raise CorpusError(f"{where}: field 'licence' must be a string")
        yield Document(str(doc_id).strip(), body, title.strip(), lic, where)


def read_text_file(path: Path, doc_id: str, licence: str | None = None) -> Document:
    body = strip_gutenberg(_read_text(path))
    if not body.strip():
        raise CorpusError(f"{path}: empty text")
    return Document(doc_id, body, path.stem, licence, str(path))


def expand(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """The files to read, with the id stem each text file gets. Missing paths are errors."""
    out: list[tuple[Path, str]] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise CorpusError(f"{p}: no such file or directory")
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES + JSONL_SUFFIXES
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not files:
                raise CorpusError(f"{p}: no .txt, .md or .jsonl files in this directory")
            out.extend((f, f.relative_to(p).with_suffix("").as_posix()) for f in files)
        else:
            out.append((p, p.stem))
    return out


def read_path(path: Path, doc_id: str, licence: str | None = None) -> list[Document]:
    if path.suffix.lower() in JSONL_SUFFIXES:
        docs = list(read_jsonl(path, licence))
        if not docs:
            raise CorpusError(f"{path}: no documents in this JSONL file")
        return docs
    return [read_text_file(path, doc_id, licence)]


def read_sources(paths: Sequence[str | Path], licence: str | None = None) -> list[Document]:
    """Read every input fully (raising on the first problem) before anything is indexed."""
    docs: list[Document] = []
    for path, doc_id in expand(paths):
        docs.extend(read_path(path, doc_id, licence))
    return docs
