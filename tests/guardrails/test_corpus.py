"""Corpus management: readers, persistence round trip, incremental add/remove, malformed inputs rejected
with nothing half-written, and the `trustwall corpus` commands."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from detectors.copyright.index import CorpusIndex
from detectors.copyright.schema import FORMAT, VERSION, CorpusError, Document, inverted_keys
from detectors.copyright.sources import read_sources, strip_gutenberg
from guardrails.cli import app

_VOCAB = [f"v{i}" for i in range(2000)]


def prose(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_VOCAB) for _ in range(n))


def docs(n: int, start: int = 0) -> list[Document]:
    return [Document(f"d{i}", prose(200, i), f"Title {i}") for i in range(start, start + n)]


def excerpt(i: int, a: int = 50, b: int = 110) -> str:
    return " ".join(prose(200, i).split()[a:b])


# ----------------------------------------------------------------------------------- index


def test_persistence_round_trip(tmp_path: Path) -> None:
    idx = CorpusIndex()
    idx.add(docs(5) + [Document("lic", prose(200, 77), "Licensed", "CC-BY-4.0")])
    path = idx.save(tmp_path / "c" / "index.npz")
    back = CorpusIndex.load(path)
    assert back.docs == idx.docs and back.params == idx.params
    for name in ("word_off", "word_start", "word_end", "sh_off", "shingles", "win_doc", "win_start", "win_key", "sigs", "inv"):
        assert np.array_equal(getattr(back._a, name), getattr(idx._a, name)), name
        assert getattr(back._a, name).dtype == getattr(idx._a, name).dtype, name
    assert back._a.inv.dtype == np.uint64 and len(back._a.inv) == len(back._a.shingles) > 0
    text = "intro words here " + excerpt(3)
    assert back.containment(text) == idx.containment(text) and back.containment(text)["d3"] > 0.9
    assert [(m.source_id, m.span, m.source_span) for m in back.search(text)] == \
           [(m.source_id, m.span, m.source_span) for m in idx.search(text)]
    # the file is plain numpy + JSON: no pickle needed to read it
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]))
    assert meta["format"] == FORMAT and meta["version"] == VERSION == 2 and meta["docs"][5]["licence"] == "CC-BY-4.0"
    assert "text" not in meta["docs"][0]


def test_incremental_add_and_remove_keep_search_consistent(tmp_path: Path) -> None:
    idx = CorpusIndex()
    idx.add(docs(4))
    idx.build_lsh()  # the live LSH is updated in place from here on
    idx.add(docs(2, start=4))
    assert [m.source_id for m in idx.search(excerpt(5))] == ["d5"]
    idx.remove(["d1", "d5"])
    assert idx.ids() == ["d0", "d2", "d3", "d4"]
    assert idx.search(excerpt(5)) == [] and idx.search(excerpt(1)) == []
    assert [m.source_id for m in idx.search(excerpt(3))] == ["d3"]
    # same answers as an index built from scratch with the remaining documents
    fresh = CorpusIndex()
    fresh.add([d for d in docs(6) if d.id not in ("d1", "d5")])
    for i in (0, 2, 3, 4):
        assert [(m.source_id, m.span, m.source_span) for m in idx.search(excerpt(i, 20, 90))] == \
               [(m.source_id, m.span, m.source_span) for m in fresh.search(excerpt(i, 20, 90))]
    idx.save(tmp_path / "i.npz")
    assert CorpusIndex.load(tmp_path / "i.npz").ids() == ["d0", "d2", "d3", "d4"]


def _inverted_reference(idx: CorpusIndex) -> np.ndarray:
    """The inverted index written out naively: one (hash << 32 | global shingle index) per shingle, sorted."""
    return np.array(sorted((int(h) << 32) | i for i, h in enumerate(idx._a.shingles.tolist())), dtype=np.uint64)


def test_inverted_index_stays_exact_through_incremental_add_and_remove() -> None:
    idx = CorpusIndex()
    idx.add(docs(3))
    idx.add(docs(3, start=3) + [Document("dup", prose(200, 1) + " tail words here", "Copy of d1")])
    assert np.array_equal(idx._a.inv, _inverted_reference(idx))
    idx.remove(["d1", "d4"])
    idx.add([Document("d0", prose(150, 40), "replaced")], replace=True)
    assert idx.ids() == ["d2", "d3", "d5", "dup", "d0"]
    assert np.array_equal(idx._a.inv, _inverted_reference(idx))
    fresh = CorpusIndex()
    fresh.add([Document("d2", prose(200, 2)), Document("d3", prose(200, 3)), Document("d5", prose(200, 5)),
               Document("dup", prose(200, 1) + " tail words here"), Document("d0", prose(150, 40))])
    assert np.array_equal(idx._a.inv, fresh._a.inv)  # same entries as an index built from scratch
    # containment reads the updated index: d1 is gone, its copy "dup" still holds all of the excerpt
    assert idx.containment(excerpt(1)) == {"dup": 1.0}
    assert idx.containment(excerpt(4)) == {}
    idx.remove(idx.ids())
    assert len(idx._a.inv) == 0 and idx.containment(excerpt(2)) == {} and idx.search_all(excerpt(2)) == ([], [])


def test_version_1_index_loads_and_other_versions_ask_for_a_rebuild(tmp_path: Path) -> None:
    idx = CorpusIndex()
    idx.add(docs(3))
    path = idx.save(tmp_path / "index.npz")
    with np.load(path) as z:
        arrays = dict(z)
    meta = json.loads(bytes(arrays.pop("meta")))

    def write(name: str, version: object, drop_inv: bool) -> Path:
        m = dict(meta, version=version)
        out = {k: v for k, v in arrays.items() if not (drop_inv and k == "inv")}
        np.savez(tmp_path / name, meta=np.frombuffer(json.dumps(m).encode(), dtype=np.uint8), **out)
        return tmp_path / name

    v1 = CorpusIndex.load(write("v1.npz", 1, drop_inv=True))  # written by the previous release: no inverted index
    assert np.array_equal(v1._a.inv, idx._a.inv)
    assert [m.source_id for m in v1.search(excerpt(2))] == ["d2"]
    v1.save(tmp_path / "v1.npz")  # the next write upgrades the file
    with np.load(tmp_path / "v1.npz") as z:
        assert json.loads(bytes(z["meta"]))["version"] == 2 and "inv" in z.files
    for bad in (3, 0, "2"):
        with pytest.raises(CorpusError, match=r"version .* is not supported .*rebuild it.*trustwall corpus add"):
            CorpusIndex.load(write("vx.npz", bad, drop_inv=False))
    with pytest.raises(CorpusError, match="unreadable corpus index"):  # a version-2 file without its inverted index
        CorpusIndex.load(write("v2-no-inv.npz", 2, drop_inv=True))


@pytest.mark.parametrize("damage", ["unsorted", "short", "wrong_hash", "out_of_range", "dtype"])
def test_damaged_inverted_index_is_rejected(tmp_path: Path, damage: str) -> None:
    idx = CorpusIndex()
    idx.add(docs(2))
    path = idx.save(tmp_path / "good.npz")
    with np.load(path) as z:
        arrays = dict(z)
    inv = arrays["inv"].copy()
    if damage == "unsorted":
        inv[[0, -1]] = inv[[-1, 0]]
    elif damage == "short":
        inv = inv[:-1]
    elif damage == "wrong_hash":
        inv = np.sort(inv ^ np.uint64(1 << 40))
    elif damage == "out_of_range":
        inv[-1] = (inv[-1] & ~np.uint64(0xFFFFFFFF)) | np.uint64(len(inv) + 5)
    else:
        inv = inv.astype(np.int64)
    arrays["inv"] = inv
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CorpusError, match="inconsistent"):
        CorpusIndex.load(tmp_path / "bad.npz")


def test_inverted_keys_sorted_and_based() -> None:
    sh = np.array([7, 3, 7, 1], dtype=np.uint32)
    assert inverted_keys(sh, 10).tolist() == [(1 << 32) | 13, (3 << 32) | 11, (7 << 32) | 10, (7 << 32) | 12]
    assert inverted_keys(np.zeros(0, np.uint32)).dtype == np.uint64


def test_add_is_all_or_nothing() -> None:
    idx = CorpusIndex()
    idx.add(docs(2))
    with pytest.raises(CorpusError, match="already in the corpus"):
        idx.add(docs(1, start=5) + docs(1))
    with pytest.raises(CorpusError, match="duplicate document id"):
        idx.add([Document("x", prose(50, 1)), Document("x", prose(50, 2))])
    with pytest.raises(CorpusError, match="fewer than 3 words"):
        idx.add([Document("y", prose(50, 1)), Document("z", "too short")])
    assert idx.ids() == ["d0", "d1"]
    idx.add([Document("d0", prose(60, 9), "new")], replace=True)
    assert idx.ids() == ["d1", "d0"] and idx.docs[1].title == "new"
    with pytest.raises(CorpusError, match="unknown document id"):
        idx.remove(["d1", "nope"])
    assert len(idx) == 2


def test_missing_index_is_empty_and_corrupt_index_is_rejected(tmp_path: Path) -> None:
    assert len(CorpusIndex.load(tmp_path / "none.npz")) == 0
    with pytest.raises(CorpusError, match="no corpus index"):
        CorpusIndex.load(tmp_path / "none.npz", missing_ok=False)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CorpusError, match="not a corpus index"):
        CorpusIndex.load(bad)
    zipped = tmp_path / "zipped.npz"
    np.savez(zipped, other=np.zeros(2))
    with pytest.raises(CorpusError, match="unreadable corpus index"):
        CorpusIndex.load(zipped)
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.frombuffer(b'{"format": "x"}', dtype=np.uint8))
    with pytest.raises(CorpusError, match="not a trustwall copyright index"):
        CorpusIndex.load(other)
    idx = CorpusIndex()
    idx.add(docs(2))
    good = idx.save(tmp_path / "good.npz")
    with np.load(good) as z:
        arrays = dict(z)
    arrays["win_doc"] = arrays["win_doc"][:-1]
    np.savez(tmp_path / "trunc.npz", **arrays)
    with pytest.raises(CorpusError, match="inconsistent"):
        CorpusIndex.load(tmp_path / "trunc.npz")


# ----------------------------------------------------------------------------------- readers


def test_readers_text_dirs_jsonl_and_gutenberg(tmp_path: Path) -> None:
    (tmp_path / "books" / "sub").mkdir(parents=True)
    (tmp_path / "books" / "a.txt").write_text("header\n*** START OF THE PROJECT GUTENBERG EBOOK 1 ***\n" + prose(30, 1)
                                              + "\n*** END OF THE PROJECT GUTENBERG EBOOK 1 ***\nlicence blurb")
    (tmp_path / "books" / "sub" / "b.md").write_text(prose(30, 2))
    (tmp_path / "books" / ".hidden.txt").write_text(prose(30, 3))
    (tmp_path / "books" / "skip.bin").write_bytes(b"\x00\x01")
    (tmp_path / "w.jsonl").write_text(
        json.dumps({"id": "j1", "title": "J one", "text": prose(30, 4), "license": "CC0"}) + "\n\n"
        + json.dumps({"id": 7, "text": prose(30, 5), "extra": 1}) + "\n")
    got = read_sources([tmp_path / "books", tmp_path / "w.jsonl"], licence="default-lic")
    assert [(d.id, d.title, d.licence) for d in got] == [
        ("a", "a", "default-lic"), ("sub/b", "b", "default-lic"), ("j1", "J one", "CC0"), ("7", "", "default-lic")]
    assert got[0].text == prose(30, 1)
    assert strip_gutenberg("no markers\n") == "no markers"


@pytest.mark.parametrize("content, message", [
    ('{"id": "a", "text": "x y z"}\n{"id": "b", "text": ', "w.jsonl:2: invalid JSON"),
    ('["a", "b"]\n', "w.jsonl:1: each line must be a JSON object"),
    ('{"id": "", "text": "a b c"}\n', "w.jsonl:1: field 'id'"),
    ('{"id": "a", "text": 5}\n', "w.jsonl:1: field 'text'"),
    ('{"id": "a", "text": "a b c", "licence": 3}\n', "w.jsonl:1: field 'licence'"),
    ('{"id": "a", "text": "a b c", "title": ["t"]}\n', "w.jsonl:1: field 'title'"),
    ("\n\n", "no documents"),
])
def test_malformed_jsonl_is_rejected_clearly(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "w.jsonl").write_text(content)
    with pytest.raises(CorpusError, match=message.replace("(", r"\(")):
        read_sources([tmp_path / "w.jsonl"])


def test_bad_text_files_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(CorpusError, match="not UTF-8"):
        read_sources([tmp_path / "latin1.txt"])
    (tmp_path / "bin.txt").write_bytes(b"ab\x00cd")
    with pytest.raises(CorpusError, match="binary"):
        read_sources([tmp_path / "bin.txt"])
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(CorpusError, match="empty text"):
        read_sources([tmp_path / "empty.txt"])
    with pytest.raises(CorpusError, match="no such file"):
        read_sources([tmp_path / "missing.txt"])
    (tmp_path / "d").mkdir()
    with pytest.raises(CorpusError, match="no .txt"):
        read_sources([tmp_path / "d"])


# ----------------------------------------------------------------------------------- CLI


def cli(tmp_path: Path, *args: str):  # noqa: ANN201
    return CliRunner().invoke(app, ["--data-dir", str(tmp_path / "data"), "corpus", *args])


def test_cli_add_list_stats_remove(tmp_path: Path) -> None:
    (tmp_path / "w.jsonl").write_text("".join(json.dumps({"id": f"j{i}", "title": f"T{i}", "text": prose(120, i)}) + "\n"
                                              for i in range(3)))
    (tmp_path / "book.txt").write_text(prose(300, 10))
    r = cli(tmp_path, "add", str(tmp_path / "w.jsonl"), str(tmp_path / "book.txt"), "--licence", "all-rights-reserved")
    assert r.exit_code == 0, r.output
    assert "added 4 document(s)" in r.output
    index_file = tmp_path / "data" / "copyright" / "index.npz"
    assert index_file.exists()
    r = cli(tmp_path, "list", "--json")
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert [x["id"] for x in rows] == ["j0", "j1", "j2", "book"] and rows[3]["licence"] == "all-rights-reserved"
    r = cli(tmp_path, "stats", "--json")
    st = json.loads(r.output)
    assert st["documents"] == 4 and st["windows"] > 0 and st["file_bytes"] == index_file.stat().st_size
    assert st["inverted_entries"] == st["shingles"] == 120 * 3 - 6 + 300 - 2
    assert "documents: 4" in cli(tmp_path, "stats").output and "inverted_entries: 652" in cli(tmp_path, "stats").output
    assert "j1" in cli(tmp_path, "list").output
    r = cli(tmp_path, "remove", "j1")
    assert r.exit_code == 0 and "corpus now has 3" in r.output
    r = cli(tmp_path, "add", str(tmp_path / "book.txt"))
    assert r.exit_code == 2 and "already in the corpus" in r.output and "Traceback" not in r.output
    assert cli(tmp_path, "add", "--replace", str(tmp_path / "book.txt")).exit_code == 0


def test_cli_malformed_file_leaves_the_index_untouched(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text(prose(100, 1))
    assert cli(tmp_path, "add", str(tmp_path / "good.txt")).exit_code == 0
    index_file = tmp_path / "data" / "copyright" / "index.npz"
    before = index_file.read_bytes()
    (tmp_path / "more.txt").write_text(prose(100, 2))
    (tmp_path / "bad.jsonl").write_text('{"id": "x", "text": "a b c d"}\n{"id": "y"}\n')
    r = cli(tmp_path, "add", str(tmp_path / "more.txt"), str(tmp_path / "bad.jsonl"))
    assert r.exit_code == 2
    assert "bad.jsonl:2: field 'text' must be a non-empty string (corpus unchanged)" in r.output
    assert index_file.read_bytes() == before
    assert sorted(p.name for p in index_file.parent.iterdir()) == [".index.lock", "index.npz"]  # no temp file left
    r = cli(tmp_path, "remove", "nope")
    assert r.exit_code == 2 and "unknown document id 'nope'" in r.output
    assert index_file.read_bytes() == before


def test_cli_empty_corpus(tmp_path: Path) -> None:
    assert "the corpus is empty" in cli(tmp_path, "list").output
    assert json.loads(cli(tmp_path, "stats", "--json").output)["documents"] == 0


def test_failed_save_leaves_previous_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    idx = CorpusIndex()
    idx.add(docs(2))
    path = idx.save(tmp_path / "index.npz")
    before = path.read_bytes()
    idx.add(docs(1, start=2))

    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        idx.save(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["index.npz"]


def test_cli_index_parameters_are_fixed_at_creation(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(prose(100, 1))
    (tmp_path / "b.txt").write_text(prose(100, 2))
    r = cli(tmp_path, "add", "--bands", "8", "--rows", "1", "--window", "16", "--stride", "8", str(tmp_path / "a.txt"))
    assert r.exit_code == 0, r.output
    st = json.loads(cli(tmp_path, "stats", "--json").output)
    assert st["params"] == {"shingle": 3, "bands": 8, "rows": 1, "seed": 1, "window": 16, "stride": 8}
    r = cli(tmp_path, "add", "--rows", "2", str(tmp_path / "b.txt"))
    assert r.exit_code == 2 and "built with rows=1" in r.output
    assert cli(tmp_path, "add", "--rows", "1", str(tmp_path / "b.txt")).exit_code == 0
    r = cli(tmp_path / "x", "add", "--window", "10", "--stride", "4", str(tmp_path / "a.txt"))
    assert r.exit_code == 2 and "multiple of stride" in r.output
