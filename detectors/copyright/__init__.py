"""Copyright post-check (`type: copyright`): verbatim, near-verbatim and heavily paraphrased reuse of a
registered corpus, with span evidence.

Layout (each module imports only the ones above it in this list; none imports this package's names):

* ``text``: tokenising with code-point offsets, word and shingle hashes, MinHash window signatures,
  covered words and runs (pure numpy).
* ``schema``: index parameters, documents, matches, the array layout and inverted-index keys, the
  persistence format constants, ``CorpusError``.
* ``sources``: reading protected works (text files, directories, JSONL) for ``trustwall corpus add``.
* ``search``: the read-only search of the index (exact candidates, MinHash LSH, verification, documents).
* ``index``: ``CorpusIndex``: adding and removing documents, the LSH, atomic save and checked load.
* ``detector``: ``CopyrightOptions``, ``CopyrightDetector`` and the registry entry ``TYPE``.

Importing this package stays light: numpy and datasketch are imported when the detector is built.
"""

from __future__ import annotations

from detectors.copyright.detector import (
    CATEGORY,
    CITE_CATEGORY,
    PARAPHRASE_CATEGORY,
    TYPE,
    CopyrightDetector,
    CopyrightOptions,
    build_detector,
    citation_block,
    citation_for,
    resolve_corpus,
    spans_cover,
)

__all__ = [
    "CATEGORY", "CITE_CATEGORY", "PARAPHRASE_CATEGORY", "TYPE", "CopyrightDetector", "CopyrightOptions",
    "build_detector", "citation_block", "citation_for", "resolve_corpus", "spans_cover",
]
