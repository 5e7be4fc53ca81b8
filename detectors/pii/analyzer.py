"""The Presidio analyzer of the PII detector: its recognisers (detectors/pii/recognizers.py) on an NLP
engine that wraps the runtime's shared spaCy pipeline (detectors/nlp.py) and never loads or downloads a
model itself."""

from __future__ import annotations

from typing import Any

from detectors.nlp import SharedNLP
from detectors.pii.options import NER_MAPPING, PiiOptions
from detectors.pii.recognizers import build_recognizers


def _engine(shared: SharedNLP, language: str) -> Any:
    """A Presidio NLP engine over the shared pipeline: never loads, never downloads."""
    from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine

    class SharedSpacyNlpEngine(SpacyNlpEngine):
        def __init__(self) -> None:
            labels: set[str] = set()
            if "ner" in shared.nlp.pipe_names:
                labels = set(shared.nlp.get_pipe("ner").labels)
            conf = NerModelConfiguration(
                model_to_presidio_entity_mapping=dict(NER_MAPPING),
                labels_to_ignore=sorted(labels - set(NER_MAPPING)),
            )
            super().__init__(models=[{"lang_code": language, "model_name": shared.model_name}],
                             ner_model_configuration=conf)
            self.nlp = {language: shared.nlp}

        def load(self) -> None:  # the pipeline is the runtime's shared one, already loaded
            return None

        def process_text(self, text: str, language: str) -> Any:  # pragma: no cover - we pass artifacts
            return self._doc_to_nlp_artifact(shared.parse_sync([text])[0], language)

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> Any:
            # Without the lemmatizer (not needed for NER) lemma_ is empty: use the lower-cased text so that
            # Presidio's context words still match.
            lemmas = [t.lemma_ or t.lower_ for t in doc]
            entities, scores = self._get_updated_entities(self._get_entities(doc), self._get_scores_for_entities(doc))
            return NlpArtifacts(entities=entities, tokens=doc, tokens_indices=[t.idx for t in doc], lemmas=lemmas,
                                nlp_engine=self, language=language, scores=scores)

    return SharedSpacyNlpEngine()


def build_analyzer(shared: SharedNLP, opts: PiiOptions) -> Any:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

    registry = RecognizerRegistry(supported_languages=[opts.language])
    for rec in build_recognizers(opts):
        registry.add_recognizer(rec)
    return AnalyzerEngine(registry=registry, nlp_engine=_engine(shared, opts.language),
                          supported_languages=[opts.language])
