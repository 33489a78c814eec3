"""Explanations: each n-gram's exact share of the decision, and where it is in the raw message."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

import tiny_model
from helpers import ROOT
from sentinelle.errors import UserError
from sentinelle.modeling.calibration import base_estimator
from sentinelle.modeling.explanations import MAX_EXPLAIN, Explainer, ExplanationUnavailable
from sentinelle.modeling.spans import ngram_spans, token_spans
from sentinelle.modeling.training import train
from sentinelle.params import load
from sentinelle.serving.scorer import Scorer
from sentinelle.text.normaliser import Normaliser

LINEAR = ["linear_svm", "logreg", "sgd", "multinomial_nb", "complement_nb"]
MESSAGES = [
    *tiny_model.SPAM,
    *tiny_model.HAM,
    "WINNING a FREE prize!! Call now",
    "ok see you later, call me",
    "get f r e e stuff",
]


def fitted(classifier: str, stem: bool = False) -> tuple[object, Normaliser]:
    params = load(ROOT / "params.yaml")
    p = dataclasses.replace(params.train, classifier=classifier, features="union", n_jobs=1)
    normaliser = Normaliser(**dataclasses.asdict(dataclasses.replace(params.preprocess, stem=stem)))
    texts = normaliser.many(tiny_model.SPAM + tiny_model.HAM)
    labels = np.array(["spam"] * len(tiny_model.SPAM) + ["ham"] * len(tiny_model.HAM))
    return train(p, 1, texts, labels, jobs=1).model, normaliser


def reference_decision(model: object, X: object) -> np.ndarray:
    """The decision as scikit-learn computes it: ``decision_function`` of the linear model,
    the log-odds of ``predict_log_proba`` for naive Bayes; positive towards spam."""
    classifier = base_estimator(model[-1])  # type: ignore[index]
    classes = list(classifier.classes_)
    if hasattr(classifier, "decision_function"):
        return classifier.decision_function(X) * (1 if classes.index("spam") == 1 else -1)
    log_proba = classifier.predict_log_proba(X)
    return log_proba[:, classes.index("spam")] - log_proba[:, classes.index("ham")]


@pytest.mark.parametrize("classifier", LINEAR)
def test_contributions_plus_intercept_are_the_decision(classifier: str) -> None:
    model, normaliser = fitted(classifier)
    X = model[:-1].transform([normaliser(t) for t in MESSAGES])  # type: ignore[index]
    explainer = Explainer(model, classifier)
    reference = reference_decision(model, X)
    sums = np.array(
        [values.sum() + explainer.linear.intercept for _, values in explainer.contributions(X)]
    )
    error = float(np.abs(sums - reference).max())
    print(f"{classifier}: max |contributions + intercept - decision| = {error:.3g}")
    assert error <= 1e-9
    assert np.abs(explainer.decisions(X) - reference).max() <= 1e-9
    # Some features push each way, so the identity is not a trivial one.
    assert np.ptp(reference) > 0.1
    # The spam score is a monotone function of that decision.
    scores = model.predict_proba([normaliser(t) for t in MESSAGES])[:, 1]  # type: ignore[attr-defined]
    if classifier in ("logreg", "multinomial_nb", "complement_nb"):
        np.testing.assert_allclose(scores, expit(reference), rtol=0, atol=1e-12)
    order = np.argsort(reference, kind="stable")
    assert np.all(np.diff(scores[order]) >= -1e-12)
    for explained, decision in zip(explainer.explain(X, 3), reference, strict=True):
        listed = sum(item["contribution"] for item in explained["spam"] + explained["ham"])
        total = explained["intercept"] + listed + explained["rest"]
        assert abs(total - decision) <= 1e-9 and abs(explained["decision"] - decision) <= 1e-9
        assert len(explained["spam"]) <= 3 and len(explained["ham"]) <= 3
        assert all(item["contribution"] > 0 for item in explained["spam"])
        assert all(item["contribution"] < 0 for item in explained["ham"])


def test_the_top_ngrams_are_the_largest_contributions_in_order() -> None:
    model, normaliser = fitted("logreg")
    explainer = Explainer(model, "logreg")
    X = model[:-1].transform([normaliser(MESSAGES[0])])  # type: ignore[index]
    [(indices, values)] = explainer.contributions(X)
    [explained] = explainer.explain(X, 5)
    expected = sorted(zip(values.tolist(), indices.tolist(), strict=True), key=lambda v: -v[0])[:5]
    assert [(i["contribution"], i["ngram"]) for i in explained["spam"]] == [
        (v, explainer.names[i]) for v, i in expected
    ]
    assert explainer.kinds[expected[0][1]] == explained["spam"][0]["kind"]


def test_a_random_forest_cannot_be_explained() -> None:
    model, _ = fitted("random_forest")
    with pytest.raises(ExplanationUnavailable) as exc:
        Explainer(model, "random_forest")
    assert str(exc.value).startswith("explanations are not available for random_forest (")
    assert "\n" not in str(exc.value)


def test_k_is_bounded() -> None:
    model, normaliser = fitted("logreg")
    X = model[:-1].transform([normaliser("free prize")])  # type: ignore[index]
    for k in (0, MAX_EXPLAIN + 1):
        with pytest.raises(UserError, match=f"explain={k} is out of range; use 1 to 50"):
            Explainer(model).explain(X, k)


def test_spans_of_word_and_char_ngrams_in_the_raw_message() -> None:
    normaliser = Normaliser(placeholders=True, stem=True)
    raw = "WINNING a FREE prize!! Call 0906 170 1461, get f r e e stuff"
    where = token_spans(normaliser, raw)
    assert where.tokens[:4] == ["win", "a", "free", "prize"]
    # A word: the raw word it came from ("WINNING", stemmed to "win").
    assert ngram_spans(where, "win", "word") == [[0, 7]]
    # Two words: from the first one's start to the last one's end.
    assert ngram_spans(where, "free prize", "word") == [[10, 20]]
    # "!!" is its own token within "prize!!".
    assert ngram_spans(where, "!!", "word") == [[20, 22]]
    # Tokens of several raw words: "0906 170 1461" -> _phone_, "f r e e" -> free.
    assert ngram_spans(where, "_phone_", "word") == [[28, 41]]
    assert ngram_spans(where, "free", "word") == [[10, 14], [47, 54]]
    # Char n-grams: exact characters where the token is the raw text lower-cased ...
    assert ngram_spans(where, " fre", "char") == [[10, 13], [47, 54]]
    assert ngram_spans(where, "ee ", "char") == [[12, 14], [47, 54]]
    assert ngram_spans(where, "win", "char") == [[0, 3]]
    # ... and the whole word where it is not ("prize" is exact, the stem "win" is a prefix).
    assert ngram_spans(where, "zz", "char") == []
    assert raw[10:14] == "FREE" and raw[28:41] == "0906 170 1461" and raw[47:54] == "f r e e"


def test_spans_are_code_point_indices_of_the_raw_text() -> None:
    normaliser = Normaliser(placeholders=False)
    raw = "Ça  va?\u200b frее 😀 prize"  # two spaces, a zero-width space, a Cyrillic "е"
    where = token_spans(normaliser, raw)
    [[start, end]] = ngram_spans(where, "prize", "word")
    assert raw[start:end] == "prize"
    [[start, end]] = ngram_spans(where, "free", "word")
    assert raw[start:end] == "frее"


def test_scorer_explain_matches_its_scores(tmp_path: Path) -> None:
    scorer = Scorer.load(tiny_model.make(tmp_path))
    texts = ["WIN a FREE prize! Call now", "see you at lunch"]
    scores, explained = scorer.explain(texts, 2)
    np.testing.assert_array_equal(scores, scorer.scores(texts))
    top = explained[0]["spam"][0]
    assert top["ngram"] == "free" and top["kind"] == "word" and top["spans"] == [[6, 10]]
    assert texts[0][6:10] == "FREE"
    json.dumps(explained, allow_nan=False)  # the API and `score --explain` write it as JSON
