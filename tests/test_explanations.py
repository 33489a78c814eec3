"""Explanations: the decision folded onto the words of the raw message, exactly."""

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
from sentinelle.modeling.explanations import (
    MAX_EXPLAIN,
    Explainer,
    ExplanationUnavailable,
    feature_labels,
    label,
)
from sentinelle.modeling.fast.training import train
from sentinelle.modeling.spans import raw_words, token_spans
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


def fitted(classifier: str, stem: bool = False, **changes: object) -> tuple[object, Normaliser]:
    params = load(ROOT / "params.yaml")
    p = dataclasses.replace(
        params.train, classifier=classifier, **{"features": "union", "n_jobs": 1, **changes}
    )
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


def explained(model: object, normaliser: Normaliser, texts: list[str], k: int, name: str):
    """The explainer, the TF-IDF matrix, the token spans and the explanations of ``texts``."""
    explainer = Explainer(model, name)
    spans = [token_spans(normaliser, t) for t in texts]
    X = model[:-1].transform([" ".join(w.tokens) for w in spans])  # type: ignore[index]
    return explainer, X, spans, explainer.explain(X, k, spans)


@pytest.mark.parametrize("classifier", LINEAR)
def test_the_words_plus_intercept_are_the_decision(classifier: str) -> None:
    model, normaliser = fitted(classifier)
    explainer, X, spans, explanations = explained(model, normaliser, MESSAGES, 3, classifier)
    assert [" ".join(w.tokens) for w in spans] == [normaliser(t) for t in MESSAGES]
    reference = reference_decision(model, X)
    sums = np.array(
        [values.sum() + explainer.linear.intercept for _, values in explainer.contributions(X)]
    )
    assert np.abs(sums - reference).max() <= 1e-9
    assert np.abs(explainer.decisions(X) - reference).max() <= 1e-9
    # Some features push each way, so the identity is not a trivial one.
    assert np.ptp(reference) > 0.1
    # The spam score is a monotone function of that decision.
    scores = model.predict_proba([normaliser(t) for t in MESSAGES])[:, 1]  # type: ignore[attr-defined]
    if classifier in ("logreg", "multinomial_nb", "complement_nb"):
        np.testing.assert_allclose(scores, expit(reference), rtol=0, atol=1e-12)
    order = np.argsort(reference, kind="stable")
    assert np.all(np.diff(scores[order]) >= -1e-12)
    # Every word of every message, plus what has no place, is the decision.
    for folded, decision in zip(explainer.fold(X, spans), reference, strict=True):
        total = folded.intercept + folded.values.sum() + folded.unplaced
        print(f"{classifier}: |words + intercept - decision| = {abs(total - decision):.3g}")
        assert abs(total - decision) <= 1e-9 and folded.unplaced == 0.0
        assert abs(folded.tokens.sum() - folded.values.sum()) <= 1e-12
    for text, why, decision in zip(MESSAGES, explanations, reference, strict=True):
        listed = why["spam"] + why["ham"]
        total = why["intercept"] + sum(item["contribution"] for item in listed) + why["rest"]
        assert abs(total - decision) <= 1e-9 and abs(why["decision"] - decision) <= 1e-9
        assert len(why["spam"]) <= 3 and len(why["ham"]) <= 3 and listed
        assert all(item["contribution"] > 0 for item in why["spam"])
        assert all(item["contribution"] < 0 for item in why["ham"])
        assert all(text[item["start"] : item["end"]] == item["text"] for item in listed)


def test_the_top_words_are_the_largest_in_order() -> None:
    model, normaliser = fitted("logreg")
    explainer, X, spans, [why] = explained(model, normaliser, [MESSAGES[0]], 5, "logreg")
    [folded] = explainer.fold(X, spans)
    raw = MESSAGES[0]
    expected = sorted(zip(folded.values.tolist(), folded.words, strict=True), key=lambda v: -v[0])
    assert [(i["contribution"], i["text"]) for i in why["spam"]] == [
        (v, raw[a:b]) for v, (a, b) in expected[:5] if v > 0
    ]
    assert why["rest"] == pytest.approx(sum(v for v, _ in expected[5:]), abs=1e-12)


def test_each_ngram_is_shared_among_its_occurrences_and_its_words() -> None:
    """Word n-grams only: a unigram's contribution goes to its occurrences, a bigram's half to
    each of its two words (computed here from the feature names and the TF-IDF row)."""
    model, normaliser = fitted("logreg", features="word", word_ngrams=(1, 2), min_df=1)
    raw = "Free prize, free PRIZE"  # tokens: free prize , free prize
    explainer, X, spans, _ = explained(model, normaliser, [raw], 3, "logreg")
    [(indices, values)] = explainer.contributions(X)
    names = model[:-1].get_feature_names_out()  # type: ignore[index]
    of = {str(names[i]): v for i, v in zip(indices, values, strict=True)}
    tokens = spans[0].tokens
    assert tokens == ["free", "prize", ",", "free", "prize"]
    count = {t: tokens.count(t) for t in tokens}
    bigrams = [" ".join(tokens[i : i + 2]) for i in range(4)]
    expected = [of.get(t, 0.0) / count[t] for t in tokens]
    for i, bigram in enumerate(bigrams):
        share = of.get(bigram, 0.0) / bigrams.count(bigram) / 2
        expected[i] += share
        expected[i + 1] += share
    assert of["free prize"] != 0 and bigrams.count("free prize") == 2  # shared by 2, 2 words
    [folded] = explainer.fold(X, spans)
    np.testing.assert_allclose(folded.tokens, expected, rtol=0, atol=1e-15)
    # The words of the raw message: "prize," holds "prize" and ",".
    assert [raw[a:b] for a, b in folded.words] == ["Free", "prize,", "free", "PRIZE"]
    np.testing.assert_allclose(
        folded.values,
        [expected[0], expected[1] + expected[2], expected[3], expected[4]],
        rtol=0,
        atol=1e-15,
    )


def test_a_repeated_word_gets_the_same_share_from_char_ngrams() -> None:
    model, normaliser = fitted("logreg", features="char")
    explainer, X, spans, _ = explained(model, normaliser, ["prize FREE prize"], 3, "logreg")
    [folded] = explainer.fold(X, spans)
    assert folded.values[0] == pytest.approx(folded.values[2], abs=1e-15)
    assert abs(folded.values.sum() + folded.intercept - explainer.decisions(X)[0]) <= 1e-12


def test_a_random_forest_cannot_be_explained() -> None:
    model, _ = fitted("random_forest")
    with pytest.raises(ExplanationUnavailable) as exc:
        Explainer(model, "random_forest")
    assert str(exc.value).startswith("explanations are not available for random_forest (")
    assert "\n" not in str(exc.value)


def test_k_is_bounded() -> None:
    model, normaliser = fitted("logreg")
    for k in (0, MAX_EXPLAIN + 1):
        with pytest.raises(UserError, match=f"explain={k} is out of range; use 1 to 50"):
            explained(model, normaliser, ["free prize"], k, "logreg")


def words_of(normaliser: Normaliser, raw: str) -> list[str]:
    word_of, words = raw_words(token_spans(normaliser, raw))
    assert sorted(set(word_of.tolist())) == list(range(len(words)))
    return [raw[a:b] for a, b in words]


def test_the_words_are_those_of_the_raw_message() -> None:
    plain = Normaliser(placeholders=False, stem=True)
    raw = "WINNING a FREE prize!! Call 0906 170 1461, get f r e e stuff"
    # A word is a run of non-white-space ("prize!!": "prize" and "!!"), or the runs one token
    # spans ("f r e e" -> "free").
    assert words_of(plain, raw) == [
        "WINNING", "a", "FREE", "prize!!", "Call", "0906", "170", "1461,", "get", "f r e e",
        "stuff",
    ]  # fmt: skip
    # With placeholders, "0906 170 1461" is one _phone_ token, hence one word.
    placeholders = Normaliser(placeholders=True, stem=True)
    assert "0906 170 1461," in words_of(placeholders, raw)
    # Invisible characters alone are no word; astral characters are one code point each.
    raw = "Ça  va?\u200b frее 😀😀 prize \u200b"  # a zero-width space, a Cyrillic "е"
    words = ["Ça", "va?\u200b", "frее", "😀😀", "prize"]
    assert words_of(Normaliser(placeholders=False), raw) == words


def test_scorer_explain_matches_its_scores(tmp_path: Path) -> None:
    scorer = Scorer.load(tiny_model.make(tmp_path))
    texts = ["WIN a FREE prize! Call now", "see you at lunch", "FREE 😀 prize 😀"]
    scores, explained = scorer.explain(texts, 2)
    np.testing.assert_array_equal(scores, scorer.scores(texts))
    top = explained[0]["spam"][0]
    assert top == {"text": "FREE", "start": 6, "end": 10, "contribution": top["contribution"]}
    assert texts[0][6:10] == "FREE"
    # Offsets are code points (Python's): after an emoji too.
    items = explained[2]["spam"] + explained[2]["ham"]
    assert {i["text"] for i in items} >= {"😀"}
    assert all(texts[2][i["start"] : i["end"]] == i["text"] for i in items)
    json.dumps(explained, allow_nan=False)  # the API and `score --explain` write it as JSON


def test_features_are_labelled_as_a_person_reads_them() -> None:
    # Word n-grams as words; the SMS data's HTML entities ("&lt;", tokens "& lt ;") decoded.
    assert label("have won", "word") == "have won"
    assert label("& lt", "word") == "<" and label("& amp ;", "word") == "&"
    assert label("lt ;#& gt", "word") == "lt ;#>" and label("t & c", "word") == "t & c"
    # Character n-grams quoted, their word-boundary spaces shown as "·".
    assert label(" fre", "char_wb") == "“·fre”" and label(" ", "char_wb") == "“·”"
    assert label("&lt;", "char_wb") == "“<”"
    model, _ = fitted("logreg")
    labels = feature_labels(model)
    names = model[:-1].get_feature_names_out()  # type: ignore[index]
    assert len(labels) == len(names)
    assert labels[list(names).index("word__free")] == "free"
    assert labels[list(names).index("char__ fr")] == "“·fr”"
