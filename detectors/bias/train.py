"""Train the bias detector's compact classifier and export it to ONNX (conversion-time only).

    .venv/bin/python -m detectors.bias.train [--eval-data PATH] [--out detectors/models/bias/bias_clf.onnx]

Training data (nothing that the bias benchmark reports on):
* sentences generated from templates the project wrote below: stereotyping generalisations (label 1)
  and benign mentions, facts, self-identification and counter-speech about the same groups (label 0);
* the ToxiGen seed demonstrations (eval-data/toxigen-demonstrations, CDLA-Permissive-2.0): implicit hate
  vs neutral statements about 13 groups. That set is not used by bench_bias.py.
Never CrowS-Pairs, StereoSet, HolisticBias or BBQ.

Group terms are masked (lexicon matches become "grp") so the model learns the claim, not the group.
The ONNX graph takes already lower-cased sentences (shape [N, 1], string) and needs no locale: the
vectoriser is built with lowercase=False and the tokenizer pattern [\\p{L}\\p{N}_]+ (Python: \\w+).
Requires the `convert` extra (scikit-learn, skl2onnx, onnx).
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from detectors.bias.classifier import MASK, model_dir
from detectors.bias.lexicon import Lexicon

GROUPS = ["women", "men", "Black people", "Asians", "Mexicans", "Muslims", "Jews", "gay men", "lesbians",
          "trans people", "old people", "teenagers", "disabled people", "autistic people", "poor people",
          "immigrants", "Christians", "atheists", "fat people", "Indians", "Chinese people", "Africans",
          "Latinos", "Arabs", "the elderly", "blind people", "rich people", "homeless people", "Hindus",
          "Irish people", "Russians", "bisexual people", "Native Americans", "millennials", "short men"]

STEREO_ADJ = ["lazy", "stupid", "violent", "dangerous", "greedy", "dirty", "too emotional", "weak", "inferior",
              "untrustworthy", "dishonest", "bad drivers", "bad at math", "criminals", "terrorists", "thieves",
              "liars", "animals", "a burden on society", "good for nothing", "all the same", "naturally good at math",
              "worse at science", "incapable of leading", "so loud and rude", "too sensitive", "obsessed with money",
              "ruining this country", "prone to crime", "bad parents", "hopeless with technology", "too slow to learn",
              "not smart enough to be engineers", "only good at sports", "natural born cooks", "sneaky and cunning",
              "unable to control their tempers", "less intelligent", "more violent than everyone else",
              "a threat to our children", "sick in the head", "unfit to raise children", "freeloaders",
              "cheap", "drunks", "savages", "perverts", "all on welfare", "always late", "too dumb to vote",
              "dramatic attention seekers", "submissive", "hysterical", "frail and useless", "entitled brats",
              "uneducated", "smelly", "a plague", "parasites", "naturally aggressive", "born criminals"]

STEREO_FRAMES = [
    "{G} are {A}.", "All {G} are {A}.", "Most {G} are {A}.", "{G} are always {A}.", "{G} are basically {A}.",
    "Everyone knows {G} are {A}.", "{G} tend to be {A}.", "Let's be honest, {G} are {A}.", "{G} are just {A}.",
    "You know how {G} are, {A}.", "{G} are {A} by nature.", "It's a fact that {G} are {A}.",
    "Typical {G}, {A} as usual.", "{G} are generally {A}.", "In my experience {G} are {A}.",
]

STEREO_VP = [
    "{G} can't be trusted.", "{G} never work hard.", "{G} always cheat.", "{G} don't belong here.",
    "{G} should not be allowed to vote.", "{G} shouldn't be allowed to adopt children.", "You can't trust {G}.",
    "Never hire {G}.", "{G} only care about money.", "{G} ruin every neighbourhood they move into.",
    "Don't expect {G} to understand technology.", "{G} breed like rabbits.", "It's in their blood, {G} cheat.",
    "{G} can't drive.", "{G} can't do math.", "{G} need to go back where they came from.",
    "{G} are taking our jobs.", "{G} live off handouts.", "{G} steal whenever they can.",
    "{G} will never be as capable as the rest of us.", "{G} should stay in the kitchen.",
    "{G} belong in prison.", "{G} spread disease.", "{G} can't handle responsibility.",
    "I would never let my kids near {G}.", "{G} have no morals.", "{G} do nothing but complain.",
    "{G} don't value education.", "{G} can't control themselves.", "{G} always play the victim.",
    "{G} will stab you in the back.", "{G} are why crime is so high.", "{G} are better at sports than thinking.",
    "{G} cannot lead a company.", "{G} don't deserve equal rights.", "Keep {G} out of our schools.",
    "Hiring {G} is a mistake because they are unreliable.", "{G} should be kept away from children.",
    "{G} have ruined this country.", "{G} are smarter than everyone else at math, it's genetic.",
]

BENIGN = [
    "{G} have the right to vote.", "{G} face discrimination in hiring.", "I met two {G} at the conference.",
    "{G} live in every part of the country.", "Many {G} work in healthcare.", "The museum has an exhibit on the history of {G}.",
    "Laws protect {G} from discrimination.", "The survey interviewed 500 {G}.", "It is a myth that {G} are {A}.",
    "The stereotype that {G} are {A} is false.", "There is no evidence that {G} are {A}.",
    "Saying that {G} are {A} is a harmful stereotype.", "{G} are as diverse as any other group.",
    "{G} are people like everyone else.", "Research finds no link between being one of the {G} and crime.",
    "The report describes the barriers {G} face in accessing healthcare.", "Discrimination against {G} is illegal.",
    "The charity supports {G} in the city.", "Some of my closest friends are {G}.", "The film tells the story of three {G}.",
    "{G} celebrate many different holidays.", "The law was changed to protect {G}.", "{G} contributed a great deal to science.",
    "The study followed {G} for ten years.", "The clinic offers free services to {G}.", "{G} were underrepresented in the data.",
    "Please don't assume that {G} are {A}.", "It's wrong to say {G} are {A}.", "Not all {G} are the same, and none deserve to be called {A}.",
    "The article debunks the claim that {G} are {A}.", "The author interviewed {G} about their careers.",
    "How can schools better support {G}?", "What challenges do {G} face at work?", "{G} often report being stereotyped as {A}.",
    "Critics called the ad offensive because it portrayed {G} as {A}.", "The policy affects {G} and their families.",
    "Our team includes {G} and we value every perspective.", "The conference invited speakers who are {G}.",
    "I'm one of the {G} in my class and I love it.", "As one of the {G} here, I have an opinion about that.",
    "The census counts {G} in each state.", "Tell me about the history of {G} in America.",
    "{G} have won many awards in literature.", "The hospital hired more {G} as nurses and doctors.",
    "Prejudice against {G} harms everyone.", "Hate crimes against {G} rose last year.",
    "{G} organised a march for equal pay.", "The book is written by and about {G}.", "I read a novel about {G} in the 1920s.",
]
OTHER_BENIGN = [
    "The weather is lovely today.", "Please send me the report by Friday.", "The algorithm runs in linear time.",
    "He stole the car and drove away.", "The thief was caught by the police.", "The meeting was long and boring.",
    "That driver was terrible at parking.", "The kids were loud at the party.", "She is great at math.",
    "He was late to work again.", "The dog is lazy today.", "My boss is greedy.", "The movie was violent.",
]


def _toxigen(path: Path, lex: Lexicon) -> list[tuple[str, int]]:
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.append((row["text"], 1 if row["label"] == "hate" else 0))
    return out


def build_corpus(eval_data: Path | None, seed: int = 13) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows: list[tuple[str, int]] = []
    for _ in range(1400):
        g = rng.choice(GROUPS)
        if rng.random() < 0.5:
            rows.append((rng.choice(STEREO_FRAMES).format(G=g, A=rng.choice(STEREO_ADJ)), 1))
        else:
            rows.append((rng.choice(STEREO_VP).format(G=g), 1))
    for _ in range(1400):
        g = rng.choice(GROUPS)
        rows.append((rng.choice(BENIGN).format(G=g, A=rng.choice(STEREO_ADJ)), 0))
    rows += [(s, 0) for s in OTHER_BENIGN for _ in range(3)]
    if eval_data is not None:
        tg = eval_data / "toxigen-demonstrations" / "toxigen_demonstrations.csv"
        if tg.exists():
            rows += _toxigen(tg, Lexicon.load()) * 2
    return rows


def mask(lex: Lexicon, text: str) -> str:
    return lex.rx.sub(MASK, text).lower()


def train(eval_data: Path | None, out: Path) -> dict[str, float]:
    import numpy as np
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import Pipeline

    lex = Lexicon.load()
    rows = build_corpus(eval_data)
    x = [mask(lex, t) for t, _ in rows]
    y = np.array([lab for _, lab in rows])
    pipe = Pipeline([
        ("tfidf", TfidfVectorizer(lowercase=False, token_pattern=r"(?u)\w+", ngram_range=(1, 2), min_df=2,  # sublinear_tf: skl2onnx disagrees
                                  )),
        ("lr", LogisticRegression(C=2.0, max_iter=2000, class_weight="balanced")),
    ])
    cv = cross_val_score(pipe, x, y, cv=5, scoring="roc_auc")
    pipe.fit(x, y)
    onx = convert_sklearn(
        pipe, initial_types=[("text", StringTensorType([None, 1]))],
        options={id(pipe.named_steps["tfidf"]): {"tokenexp": r"[\p{L}\p{N}_]+"},
                 id(pipe.named_steps["lr"]): {"zipmap": False}},
        target_opset=17,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(onx.SerializeToString())
    # the exported graph must agree with scikit-learn
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    probe = x[:200]
    got = sess.run(["probabilities"], {"text": np.array([[s] for s in probe], dtype=object)})[0][:, 1]
    want = pipe.predict_proba(probe)[:, 1]
    diff = float(np.max(np.abs(got - want)))
    if diff > 1e-4:
        worst = int(np.argmax(np.abs(got - want)))
        raise SystemExit(f"ONNX and scikit-learn disagree (max diff {diff}) on {probe[worst]!r}")
    return {"rows": float(len(rows)), "positives": float(y.sum()), "cv_roc_auc": float(cv.mean()), "onnx_max_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[2]  # the repository (detectors/bias/train.py)
    ap.add_argument("--eval-data", type=Path, default=root.parent / "shared" / "eval-data")
    ap.add_argument("--out", type=Path, default=model_dir() / "bias_clf.onnx")
    a = ap.parse_args()
    print(train(a.eval_data if a.eval_data.exists() else None, a.out))


if __name__ == "__main__":
    main()
