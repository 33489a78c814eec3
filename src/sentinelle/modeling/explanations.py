"""Why a message got its score: a linear model's decision, attributed to the words of the raw
message, exactly.

Every classifier Sentinelle trains except the random forest decides with a linear
function of the TF-IDF vector ``x``: ``decision = x · w + b``, positive towards spam.

- ``linear_svm`` (the SVM under its Platt sigmoid), ``logreg``, ``sgd``: ``w`` and ``b``
  are the model's ``coef_`` and ``intercept_``; ``decision`` is its ``decision_function``
  and the spam score a monotone function of it (sigmoid, logistic, clipped line).
- ``multinomial_nb``, ``complement_nb``: the log-odds ``log P(spam|x) - log P(ham|x)``,
  which naive Bayes computes as ``x · (log θ_spam - log θ_ham)`` plus the difference of
  the class log-priors (``multinomial_nb``) or nothing (``complement_nb``, two classes);
  the spam score is its logistic.

So feature ``i`` (a word or character n-gram) contributes ``x_i * w_i``, and those
contributions plus ``b`` add up to ``decision``. Nobody reads n-grams, so they are folded
onto the words of the raw message (``fold``):

1. Each feature's contribution is shared equally among its occurrences in the message
   (an n-gram seen 3 times: a third each).
2. A ``char_wb`` n-gram occurs inside one token (padding spaces included: ``" "`` and
   ``" fr"`` belong to the token they pad); a word n-gram of ``n`` tokens gives ``1/n`` of
   its share to each of them.
3. Each token has its place in the raw message (``spans.token_spans``), inside one raw
   word (a run of non-white-space) or over several that the normaliser joined ("f r e e"
   -> ``free``); the words it covers are one item, whose contribution is the sum of its
   tokens'.

``unplaced`` is what no word receives: the tokens with no place in the raw message (none
for the default preprocessing; a token the normaliser made up) and the features a
vectoriser found in a way this module cannot retrace (a word vectoriser that tokenises
otherwise than the normaliser). So ``intercept + sum(every word) + unplaced == decision``
(to rounding: tests check 1e-9 on the whole test split). ``Explainer.explain`` lists the
``k`` words that push most towards spam and towards ham; ``rest`` is the sum of the other
words and ``unplaced``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.naive_bayes import ComplementNB, MultinomialNB

from sentinelle.errors import UserError
from sentinelle.modeling.spans import TokenSpans, raw_words

MAX_EXPLAIN = 50  # the largest k a request may ask for
ANALYZERS = ("word", "char_wb")  # the vectorisers whose n-grams can be traced to tokens
# An HTML entity the tokenizer cut into "&" and its name ("&lt;" -> "& lt ;").
_CUT_ENTITY = re.compile(r"& (#?\w+)(?: ;)?")


class ExplanationUnavailable(UserError):
    """The model's decision is not a sum of per-feature contributions."""


@dataclass(frozen=True)
class Linear:
    """``decision = x · coef + intercept``, positive towards spam."""

    coef: np.ndarray
    intercept: float


def linear_form(classifier: Any, name: str | None = None) -> Linear:
    """The spam-ward weights and intercept of ``classifier``, from its public fitted
    attributes (``coef_``/``intercept_``, or naive Bayes' ``feature_log_prob_``), under a
    calibration wrapper with one calibrated classifier (``calibrated_classifiers_``).

    Raises ``ExplanationUnavailable`` (one line, naming the classifier) for any other.
    """
    label = name or type(classifier).__name__
    if hasattr(classifier, "calibrated_classifiers_"):
        if len(classifier.calibrated_classifiers_) != 1:
            raise ExplanationUnavailable(
                f"explanations are not available for {label} (an ensemble of calibrated models)"
            )
        classifier = classifier.calibrated_classifiers_[0].estimator
    classes = [str(c) for c in getattr(classifier, "classes_", [])]
    if sorted(classes) != ["ham", "spam"]:
        raise ExplanationUnavailable(
            f"explanations are not available for {label} (classes {classes}, not ham and spam)"
        )
    spam, ham = classes.index("spam"), classes.index("ham")
    if isinstance(classifier, MultinomialNB | ComplementNB):
        log_prob = np.asarray(classifier.feature_log_prob_, dtype=np.float64)
        prior = 0.0
        if isinstance(classifier, MultinomialNB):
            prior = float(classifier.class_log_prior_[spam] - classifier.class_log_prior_[ham])
        return Linear(log_prob[spam] - log_prob[ham], prior)
    coef = getattr(classifier, "coef_", None)
    if coef is not None and np.ndim(coef) == 2 and np.shape(coef)[0] == 1:
        sign = 1.0 if spam == 1 else -1.0
        intercept = float(np.asarray(classifier.intercept_).reshape(-1)[0])
        return Linear(np.asarray(coef, dtype=np.float64).reshape(-1) * sign, intercept * sign)
    raise ExplanationUnavailable(
        f"explanations are not available for {label} "
        "(only for the linear models: linear_svm, logreg, sgd, multinomial_nb, complement_nb)"
    )


@dataclass(frozen=True)
class Part:
    """One vectoriser of the pipeline: its analyzer kind and its first column."""

    vectoriser: Any
    analyzer: str
    offset: int


def feature_parts(pipeline: Any, name: str | None = None) -> list[Part]:
    """The vectorisers before the classifier (one, or a ``FeatureUnion`` of several), each
    with the first column of its features; ``ExplanationUnavailable`` for anything else."""
    label = name or "this model"
    steps = [step for _, step in pipeline.steps[:-1]]
    vectorisers = []
    for step in steps:
        inner = getattr(step, "transformer_list", None)
        vectorisers += [v for _, v in inner if v != "drop"] if inner is not None else [step]
    parts, offset = [], 0
    for vectoriser in vectorisers:
        analyzer = getattr(vectoriser, "analyzer", None)
        if analyzer not in ANALYZERS or not hasattr(vectoriser, "vocabulary_"):
            raise ExplanationUnavailable(
                f"explanations are not available for {label} "
                f"(features {type(vectoriser).__name__} with analyzer {analyzer!r}; "
                f"only TF-IDF vectorisers of {' or '.join(ANALYZERS)} n-grams)"
            )
        parts.append(Part(vectoriser, analyzer, offset))
        offset += len(vectoriser.vocabulary_)
    return parts


def feature_labels(pipeline: Any) -> list[str]:
    """Each feature of ``pipeline`` as a person reads it (``label``), in column order."""
    return [
        label(str(term), part.analyzer)
        for part in feature_parts(pipeline)
        for term in part.vectoriser.get_feature_names_out()
    ]


def label(term: str, analyzer: str) -> str:
    """A feature as a person reads it: a word n-gram as its words; a ``char_wb`` n-gram in
    quotes with its spaces (word boundaries) shown as ``·`` ("“·fre”": "fre" starting a
    word). HTML entities of the SMS data ("&lt;", cut by the tokenizer into "& lt ;") show
    as their characters."""
    if analyzer == "char_wb":
        return "“" + html.unescape(term).replace(" ", "·") + "”"
    return _CUT_ENTITY.sub(_entity, term)


def _entity(match: re.Match[str]) -> str:
    entity = f"&{match.group(1)};"
    decoded = html.unescape(entity)
    return match.group(0) if decoded == entity else decoded


@dataclass(frozen=True)
class Folded:
    """One message's decision folded onto its raw words (see the module docstring).

    ``words`` are ``(start, end)`` code-point spans of the raw message, in order, and
    ``values`` their contributions; ``tokens`` the contribution of each normalised token.
    """

    words: list[tuple[int, int]]
    values: np.ndarray
    tokens: np.ndarray
    unplaced: float
    intercept: float
    decision: float


class Explainer:
    """A fitted pipeline's decision on a message, folded onto the message's words."""

    def __init__(self, pipeline: Any, name: str | None = None) -> None:
        if not hasattr(pipeline, "steps"):
            raise ExplanationUnavailable(
                f"explanations are not available for {name or type(pipeline).__name__} "
                "(not a Pipeline of features and a classifier)"
            )
        self.linear = linear_form(pipeline[-1], name)
        self.parts = feature_parts(pipeline, name)
        width = sum(len(p.vectoriser.vocabulary_) for p in self.parts)
        if width != len(self.linear.coef):
            raise ExplanationUnavailable(
                f"explanations are not available for {name or 'this model'}: "
                f"{width} features for {len(self.linear.coef)} weights"
            )
        self._analyzers = [p.vectoriser.build_analyzer() for p in self.parts]

    def contributions(self, X: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each row of the (CSR) TF-IDF matrix: its feature indices and their
        contributions ``x_i * w_i``."""
        X = X.tocsr()
        out = []
        for row in range(X.shape[0]):
            start, end = X.indptr[row], X.indptr[row + 1]
            indices = X.indices[start:end]
            out.append((indices, X.data[start:end] * self.linear.coef[indices]))
        return out

    def decisions(self, X: Any) -> np.ndarray:
        """``X · coef + intercept`` of each row."""
        return np.asarray(X @ self.linear.coef).reshape(-1) + self.linear.intercept

    def fold(self, X: Any, spans: list[TokenSpans]) -> list[Folded]:
        """Each row of ``X`` folded onto the raw words of its message (``spans``, one
        ``TokenSpans`` per row, of the very tokens ``X`` was made from)."""
        decisions = self.decisions(X)
        scratch = np.zeros(len(self.linear.coef))
        out = []
        for (indices, values), where, decision in zip(
            self.contributions(X), spans, decisions, strict=True
        ):
            scratch[indices] = values
            out.append(self._fold_one(scratch, indices, where, float(decision)))
            scratch[indices] = 0.0
        return out

    def explain(self, X: Any, k: int, spans: list[TokenSpans]) -> list[dict[str, Any]]:
        """The ``k`` words that push each row of ``X`` most towards spam and towards ham.

        Each word: ``text`` (``message[start:end]``), ``start``, ``end`` (code points) and
        ``contribution``. ``decision == intercept + sum of the listed + rest``, and ``rest``
        is the sum of the words not listed plus ``unplaced``.
        """
        if not 1 <= k <= MAX_EXPLAIN:
            raise UserError(f"explain={k} is out of range; use 1 to {MAX_EXPLAIN}")
        return [
            _explanation(folded, where.raw, k)
            for folded, where in zip(self.fold(X, spans), spans, strict=True)
        ]

    def _fold_one(
        self, contribution: np.ndarray, present: np.ndarray, where: TokenSpans, decision: float
    ) -> Folded:
        tokens = where.tokens
        # Each occurrence's pieces (one per token it covers): feature, token, share.
        features: list[np.ndarray] = []
        positions: list[np.ndarray] = []
        shares: list[np.ndarray] = []
        occurrences: list[np.ndarray] = []  # one feature index per occurrence
        for part, analyzer in zip(self.parts, self._analyzers, strict=True):
            vocabulary, offset = part.vectoriser.vocabulary_, part.offset
            if part.analyzer == "char_wb":
                # char_wb cuts each token alone, padded: its n-grams are those of the token.
                per_token: dict[str, np.ndarray] = {}
                for token in where.where:
                    found = [vocabulary.get(g) for g in analyzer(token)]
                    per_token[token] = np.array(
                        [offset + f for f in found if f is not None], dtype=np.int64
                    )
                found_at = [per_token[t] for t in tokens]
                lengths = np.fromiter(map(len, found_at), dtype=np.int64, count=len(tokens))
                feature = np.concatenate([np.empty(0, np.int64), *found_at])
                features.append(feature)
                positions.append(np.repeat(np.arange(len(tokens)), lengths))
                shares.append(np.ones(len(feature)))
                occurrences.append(feature)
            elif _word_tokens(part.vectoriser, tokens) == tokens:
                low, high = part.vectoriser.ngram_range
                for n in range(low, min(high, len(tokens)) + 1):
                    starts = np.arange(len(tokens) - n + 1)
                    found = np.array(
                        [vocabulary.get(" ".join(tokens[i : i + n]), -1) for i in starts],
                        dtype=np.int64,
                    )
                    hit = found >= 0
                    feature, starts = found[hit] + offset, starts[hit]
                    occurrences.append(feature)
                    for j in range(n):
                        features.append(feature)
                        positions.append(starts + j)
                        shares.append(np.full(len(feature), 1.0 / n))
        feature = np.concatenate([np.empty(0, np.int64), *features])
        count = np.bincount(
            np.concatenate([np.empty(0, np.int64), *occurrences]), minlength=len(contribution)
        )
        # Every feature in ``feature`` was found at least once: count[feature] >= 1.
        piece = contribution[feature] * np.concatenate([np.empty(0), *shares]) / count[feature]
        position = np.concatenate([np.empty(0, np.int64), *positions])
        per_token = np.bincount(position, weights=piece, minlength=len(tokens))
        # Features found in X but not retraced here, and tokens with no place in the message.
        unplaced = float(contribution[present[count[present] == 0]].sum())
        word_of, words = raw_words(where)
        placed = word_of >= 0
        unplaced += float(per_token[~placed].sum())
        values = np.bincount(word_of[placed], weights=per_token[placed], minlength=len(words))
        return Folded(words, values, per_token, unplaced, self.linear.intercept, decision)


def _word_tokens(vectoriser: Any, tokens: list[str]) -> list[str]:
    """The tokens a word vectoriser cuts the normalised text into (stop words removed)."""
    found = vectoriser.build_tokenizer()(vectoriser.build_preprocessor()(" ".join(tokens)))
    stop = vectoriser.get_stop_words()
    return [t for t in found if t not in stop] if stop else found


def _explanation(folded: Folded, raw: str, k: int) -> dict[str, Any]:
    """The ``k`` largest words each way of ``folded`` (ties: in message order)."""
    values = folded.values
    order = np.arange(len(values))
    spam = [i for i in np.lexsort((order, -values))[:k] if values[i] > 0]
    ham = [i for i in np.lexsort((order, values))[:k] if values[i] < 0]
    listed = np.zeros(len(values), dtype=bool)
    listed[spam + ham] = True
    return {
        "spam": [_item(folded, raw, i) for i in spam],
        "ham": [_item(folded, raw, i) for i in ham],
        "intercept": folded.intercept,
        "decision": folded.decision,
        "rest": float(values[~listed].sum()) + folded.unplaced,
        "unplaced": folded.unplaced,
    }


def _item(folded: Folded, raw: str, i: int) -> dict[str, Any]:
    start, end = folded.words[i]
    return {
        "text": raw[start:end],
        "start": start,
        "end": end,
        "contribution": float(folded.values[i]),
    }
