"""NER fine-tune end to end on a tiny synthetic slice: data mapping, one short epoch, save, load, recognise."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from training.ner.data import biluo, excluded_ids, is_validation, load_sources, split, tags_to_spans


def test_iob1_and_iob2_tags_become_spans():
    assert tags_to_spans(["I-ORG", "I-ORG", "O", "I-PER", "B-PER", "I-MISC"], "iob1") == [
        (0, 2, "ORG"), (3, 4, "PER"), (4, 5, "PER"), (5, 6, "MISC")]
    assert tags_to_spans(["B-person", "I-person", "O", "B-location", "B-location", "I-location"], "iob2") == [
        (0, 2, "person"), (3, 4, "location"), (4, 6, "location")]
    assert tags_to_spans(["O", "O"], "iob2") == []


def test_biluo_keeps_gold_marks_misc_missing_and_adds_silver_only_where_free():
    tags = biluo(7, [(0, 2, "PERSON"), (3, 4, None)], [(1, 2, "DATE"), (5, 7, "DATE")])
    assert tags == ["B-PERSON", "L-PERSON", "O", "-", "O", "B-DATE", "L-DATE"]


def _write(root: Path, folder: str, fname: str, rows: list[dict]) -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    with (root / folder / fname).open("a", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def _tiny_root(root: Path) -> Path:
    names = [("Priya", "Raghunathan"), ("Tomasz", "Wielgosz"), ("Aoife", "Brennan"), ("Kwame", "Mensah"),
             ("Ingrid", "Solberg"), ("Mateo", "Quispe")]
    towns = ["Tromso", "Kumasi", "Galway", "Cusco", "Lodz", "Madurai"]
    rows = []
    for i in range(36):
        first, last = names[i % 6]
        town = towns[(i * 5) % 6]
        rows.append({"id": f"t:{i}", "tokens": ["met", first, last, "in", town, "today", "."],
                     "tags": ["O", "B-person", "I-person", "O", "B-location", "O", "O"]})
    _write(root, "wnut17-train-dev", "wnut17train.jsonl", rows)
    (root / "wnut17-train-dev" / "eval_overlap_exclude.tsv").write_text(
        "row_id\tmatch\teval_sets\ttext_prefix\nt:0\texact\twnut17-test\tmet\n", encoding="utf-8")
    _write(root, "wikigold", "wikigold.jsonl", [
        {"id": f"w:{i}", "tokens": ["The", "Acme", "Corp", "office", "in", "Oslo", "opened", "."],
         "tags": ["O", "I-ORG", "I-ORG", "O", "O", "I-LOC", "O", "O"]} for i in range(12)])
    return root


def test_sources_drop_excluded_rows_and_split_deterministically(tmp_path):
    root = _tiny_root(tmp_path)
    assert excluded_ids(root / "wnut17-train-dev") == {"t:0"}
    sents = load_sources(root)
    assert "t:0" not in {s.id for s in sents} and len(sents) == 35 + 12
    assert sents[0].spans == [(1, 3, "PERSON"), (4, 5, "GPE")]
    wiki = [s for s in sents if s.source == "wikigold"][0]
    assert wiki.spans == [(1, 3, "ORG"), (5, 6, "GPE")]
    train, dev = split(sents)
    assert {s.id for s in dev} == {s.id for s in sents if is_validation(s.source, s.id)}
    assert not {s.id for s in train} & {s.id for s in dev}


@pytest.mark.slow
def test_train_save_load_recognise(tmp_path):
    import spacy

    from detectors.nlp import STOCK_MODEL, load_pipeline
    from training.ner.train import TrainConfig, train

    root = _tiny_root(tmp_path / "data")
    out = tmp_path / "ner-tiny"
    logs: list[str] = []
    report = train(TrainConfig(root, out, epochs=1, rehearsal=0, log=logs.append))
    assert report["rows"]["train"] + report["rows"]["validation"] >= 40
    assert set(report["validation"]) == {"stock", "fine-tuned", "ensemble (union, fine-tuned wins)"}
    assert any(line.startswith("epoch 1:") for line in logs)
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "trustwall-ner-overlay" and meta["base"] == STOCK_MODEL
    for rel, digest in meta["sha256"].items():  # the card's checksums are the files'
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert "## Validation" in (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert not (out / "ner" / "vocab").exists()  # the base's vocab is used; not shipped twice

    shared = load_pipeline(str(out), numpy_gemm=False)
    try:
        stock = spacy.load(STOCK_MODEL)
        assert shared.nlp.pipe_names == stock.pipe_names  # the rest of sm is kept for bias
        assert shared.nlp.get_pipe("ner").to_bytes(exclude=["vocab"]) != stock.get_pipe("ner").to_bytes(
            exclude=["vocab"])  # the trained weights were loaded
        shared.require(("ner", "tagger", "parser"))
        text = "Yesterday I met Priya Raghunathan in Galway ."
        doc, ref = shared.parse_sync([text])[0], stock(text)
        assert [t.dep_ for t in doc] == [t.dep_ for t in ref] and [t.tag_ for t in doc] == [t.tag_ for t in ref]
        assert any(e.label_ in ("PERSON", "GPE", "LOC", "ORG") for e in doc.ents)
    finally:
        shared.close()


SHIPPED = Path(__file__).resolve().parents[2] / "detectors" / "models" / "ner-tw"


def test_bare_command_uses_the_shipped_models_settings(tmp_path, monkeypatch):
    """`python -m training.ner` with no flags must rebuild what ships: same epochs, rehearsal, optimiser."""
    import training.ner.__main__ as cli

    seen = {}

    def fake_train(cfg):
        seen["cfg"] = cfg
        return {"validation": {}}

    monkeypatch.setattr(cli, "train", fake_train)
    assert cli.main(["--data", str(tmp_path)]) == 0
    cfg, shipped = seen["cfg"], json.loads((SHIPPED / "meta.json").read_text(encoding="utf-8"))["config"]
    assert cfg.out == SHIPPED and cfg.limit is None
    for key in ("epochs", "rehearsal", "dropout", "learn_rate", "seed"):
        assert getattr(cfg, key) == shipped[key], key
    # the budget must not cut the shipped schedule short on the 2-core machine it was trained on
    meta = json.loads((SHIPPED / "meta.json").read_text(encoding="utf-8"))
    assert not meta.get("stopped_by_time_budget")
    assert cfg.max_minutes * 60 >= 1.5 * meta["train_seconds"]


def test_shipped_weights_match_their_card():
    meta = json.loads((SHIPPED / "meta.json").read_text(encoding="utf-8"))
    card = (SHIPPED / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert meta["sha256"]
    for rel, digest in meta["sha256"].items():
        assert hashlib.sha256((SHIPPED / rel).read_bytes()).hexdigest() == digest, rel
        assert f"`{rel}` {digest}" in card, rel
