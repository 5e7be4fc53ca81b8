"""`trustwall corpus add|remove|list|stats`: manage the protected corpus of the copyright check.

The index lives in <data_dir>/copyright/index.npz (or --corpus FILE). Every change reads all inputs
first, then writes the new index atomically: a malformed input leaves the old index untouched.
Running servers load the index at start-up: restart them (or roll the replicas) after a change.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Manage the protected corpus of the copyright check.", no_args_is_help=True)

_CORPUS_OPT = typer.Option(None, "--corpus", help="Index file (default: <data dir>/copyright/index.npz).")


from guardrails.cli.common import fail as _fail  # noqa: E402


def _index_path(ctx: typer.Context, corpus: Optional[Path]) -> Path:
    from detectors.copyright.schema import INDEX_FILE, default_index_path

    if corpus is not None:
        return corpus / INDEX_FILE if corpus.is_dir() else corpus
    from guardrails.cli.common import settings_from

    return default_index_path(settings_from(ctx).data_dir)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time (advisory lock next to the index)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / ".index.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: no advisory lock
            pass
        yield
    finally:
        os.close(fd)


def _load(path: Path):  # noqa: ANN202
    from detectors.copyright.index import CorpusIndex

    return CorpusIndex.load(path)


def _with_params(index, **given: Optional[int]):  # noqa: ANN001, ANN202
    """Index parameters are fixed when a corpus is created; asking for others later is an error."""
    from dataclasses import asdict, replace

    from detectors.copyright.index import CorpusIndex
    from detectors.copyright.schema import CorpusError

    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return index
    current = asdict(index.params)
    if len(index):
        differ = {k: v for k, v in given.items() if current[k] != v}
        if differ:
            raise CorpusError(f"the corpus was built with {', '.join(f'{k}={current[k]}' for k in differ)}; "
                              "parameters are fixed when a corpus is created (remove the index file to rebuild)")
        return index
    return CorpusIndex(replace(index.params, **given))


@app.command("add")
def add(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Text files, directories of them, or JSONL {id,title,text,licence}."),
    licence: Optional[str] = typer.Option(None, "--licence", help="Licence recorded for documents that name none."),
    replace: bool = typer.Option(False, "--replace", help="Replace documents whose id is already in the corpus."),
    corpus: Optional[Path] = _CORPUS_OPT,
    shingle: Optional[int] = typer.Option(None, "--shingle", help="New corpus only: words per shingle (3)."),
    bands: Optional[int] = typer.Option(None, "--bands", help="New corpus only: LSH bands (8)."),
    rows: Optional[int] = typer.Option(None, "--rows", help="New corpus only: MinHash values per band (2)."),
    window: Optional[int] = typer.Option(None, "--window", help="New corpus only: shingles per indexed window (32)."),
    stride: Optional[int] = typer.Option(None, "--stride", help="New corpus only: shingles between windows (16)."),
) -> None:
    """Add protected works (all or nothing)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from detectors.copyright.schema import CorpusError
    from detectors.copyright.sources import expand, read_path

    path = _index_path(ctx, corpus)
    try:
        files = expand(paths)
        with _locked(path):
            index = _load(path)
            index = _with_params(index, shingle=shingle, bands=bands, rows=rows, window=window, stride=stride)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          transient=True, disable=not files) as bar:
                task = bar.add_task("reading", total=len(files))
                docs = []
                for f, doc_id in files:
                    docs.extend(read_path(f, doc_id, licence))
                    bar.advance(task)
                task2 = bar.add_task("indexing", total=len(docs))
                added = index.add(docs, replace=replace, progress=lambda _d: bar.advance(task2))
                bar.add_task("writing index", total=None)
                index.save(path)
    except CorpusError as exc:
        _fail(f"{exc} (corpus unchanged)")
    typer.echo(f"added {len(added)} document(s); corpus now has {len(index)} in {path}")


@app.command("remove")
def remove(
    ctx: typer.Context,
    ids: list[str] = typer.Argument(..., help="Document ids to remove."),
    corpus: Optional[Path] = _CORPUS_OPT,
) -> None:
    """Remove documents by id."""
    from detectors.copyright.schema import CorpusError

    path = _index_path(ctx, corpus)
    try:
        with _locked(path):
            index = _load(path)
            index.remove(ids)
            index.save(path)
    except CorpusError as exc:
        _fail(f"{exc} (corpus unchanged)")
    typer.echo(f"removed {len(ids)} document(s); corpus now has {len(index)}")


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per document."),
    corpus: Optional[Path] = _CORPUS_OPT,
) -> None:
    """List the protected documents."""
    from dataclasses import asdict

    from detectors.copyright.schema import CorpusError

    try:
        index = _load(_index_path(ctx, corpus))
    except CorpusError as exc:
        _fail(str(exc))
    if as_json:
        for d in index.docs:
            typer.echo(json.dumps(asdict(d), ensure_ascii=False))
        return
    if not index.docs:
        typer.echo("the corpus is empty")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "title", "licence", "words", box=None)
    for d in index.docs:
        table.add_row(d.id, d.title, d.licence or "", f"{d.n_words:,}")
    Console().print(table)


@app.command("stats")
def stats(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    corpus: Optional[Path] = _CORPUS_OPT,
) -> None:
    """Sizes of the corpus and its index."""
    from detectors.copyright.schema import CorpusError

    path = _index_path(ctx, corpus)
    try:
        index = _load(path)
    except CorpusError as exc:
        _fail(str(exc))
    st = index.stats()
    st["path"] = str(path)
    st["file_bytes"] = path.stat().st_size if path.exists() else 0
    if as_json:
        typer.echo(json.dumps(st))
        return
    for k in ("path", "documents", "words", "shingles", "inverted_entries", "windows", "file_bytes", "lsh_threshold"):
        typer.echo(f"{k}: {st[k]:,}" if isinstance(st[k], int) else f"{k}: {st[k]}")
    typer.echo("params: " + ", ".join(f"{k}={v}" for k, v in st["params"].items()))
