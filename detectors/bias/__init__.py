"""Demographic bias post-check: answers that stereotype or demean people for who they are.

Categories are one per protected attribute, so a policy can set thresholds and actions per attribute::

    bias_gender, bias_race_ethnicity, bias_nationality, bias_religion, bias_age, bias_disability,
    bias_sexual_orientation, bias_socioeconomic, bias_appearance

A finding covers one sentence (its code-point span) and one attribute; its score in [0, 1] combines
signals that each carry weight on their own:

* identity-group mentions from the project's lexicon (detectors/data/bias_lexicon.json: nouns,
  adjectives that qualify a person noun, plural forms), with a prior that is higher for groups that are
  common targets of demeaning stereotypes;
* generalisation structure from the spaCy parse: the group as the subject of a generic or habitual
  claim (bare plural, present tense or modal), quantifiers (all, most, always, never, can't, tend to),
  comparisons between groups; self-identification ("I'm a Deaf grandmother", "as a Muslim", "my gay
  friends") switches the structure signal off;
* content: demeaning trait words and stereotype frames ("bad at", "can't be trusted"), and stereotype
  associations of that very group (e.g. crime for Black people, money for Jewish people) from the lexicon;
* a compact classifier (TF-IDF + logistic regression in ONNX, detectors/models/bias/) over the sentence
  with group terms masked, trained on sentences the project wrote plus the ToxiGen seed demonstrations;
* the toxicity detector's identity-attack score, when a toxicity scorer is shared in the runtime.

A mention with no claim scores low: the score is the geometric mean of structure and content times the
group prior. The evidence holds the attribute, the group id, the signals and the sentence span; never text.

Modules (each imports only the ones above it; none is heavy at import):

* lexicon.py: the identity-group lexicon and its prefix-trie word matchers (`Lexicon`, `word_rx`);
* classifier.py: the ONNX stereotype classifier and where the embedded one lives (`Classifier`, `MASK`);
* scorer.py: pure scoring over parsed Docs (`BiasScorer`, `SentenceScore`, `Mention`);
* detector.py: the `bias` detector type (`BiasOptions`, `BiasDetector`, `load_scorer`, `TYPE`);
* counterfactual.py: the counterfactual probe (`counterfactual_report`, `probe`; `trustwall bias probe`);
* train.py: rebuilds the embedded classifier (conversion time only; not imported here).
"""

from __future__ import annotations

from detectors.bias.classifier import MASK, Classifier, model_dir
from detectors.bias.counterfactual import Variant, counterfactual_report, counterfactual_variants, probe, swap_term
from detectors.bias.detector import TYPE, BiasDetector, BiasOptions, load_scorer
from detectors.bias.lexicon import ATTRIBUTES, CATEGORIES, CATEGORY_PREFIX, Group, Lexicon, Term, data_path, word_rx
from detectors.bias.scorer import PROXY_MAX, BiasScorer, Mention, SentenceScore, ToxicityFn

__all__ = [
    "ATTRIBUTES", "CATEGORIES", "CATEGORY_PREFIX", "MASK", "PROXY_MAX", "TYPE", "BiasDetector", "BiasOptions",
    "BiasScorer", "Classifier", "Group", "Lexicon", "Mention", "SentenceScore", "Term", "ToxicityFn", "Variant",
    "counterfactual_report", "counterfactual_variants", "data_path", "load_scorer", "model_dir", "probe",
    "swap_term", "word_rx",
]
