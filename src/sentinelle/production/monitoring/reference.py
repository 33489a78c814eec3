"""The reference profile (``models/reference.json``), written by the evaluate stage.

What production traffic is compared with: the spam scores of the test split (a
sorted sample of at most ``SAMPLE_SIZE`` quantiles) and the share flagged at the
model's threshold; the text descriptors of the training messages (a quantile sample
of their lengths, the share of each yes/no descriptor); the share of word n-grams
the vocabulary does not hold, on the test split (held out, as new traffic is); and
the label-free (confidence-based) estimate of precision and recall on the test
split beside the real ones. Descriptors and unseen n-grams are computed on a seeded
sample of at most ``MAX_DESCRIBED`` messages (plenty for quantiles and shares, and a
fraction of a second at any corpus size). Rounded to 6 decimals: the same inputs give
the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentinelle import io, paths
from sentinelle.errors import UserError
from sentinelle.modeling.pipeline import vectorisers
from sentinelle.production.monitoring.descriptors import FLAGS, describe, unseen_shares

REFERENCE_PATH = paths.REFERENCE
SAMPLE_SIZE = 2000
MAX_DESCRIBED = 20_000
FORMAT = 1
KEYS = ("format", "model_version", "threshold", "scores", "descriptors", "unseen_ngrams")


def _r(x: float) -> float:
    return round(float(x), 6)


def quantile_sample(values: np.ndarray, size: int = SAMPLE_SIZE) -> list[float]:
    """All values sorted when there are at most ``size``, else ``size`` evenly spaced
    quantiles: a small stand-in for the distribution."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    if len(values) > size:
        values = np.quantile(values, np.linspace(0, 1, size))
    return [_r(v) for v in values]


def sample(texts: Sequence[str], seed: int, size: int = MAX_DESCRIBED) -> list[str]:
    """All texts when there are at most ``size``, else a seeded sample of ``size`` (in order)."""
    if len(texts) <= size:
        return list(texts)
    keep = np.sort(np.random.default_rng(seed).choice(len(texts), size, replace=False))
    return [texts[i] for i in keep]


def ngram_checker(model: Any) -> tuple[Callable[[str], list[str]], set[str]]:
    """The analyzer and vocabulary of the model's word vectoriser (else its first one)."""
    found = vectorisers(model)
    vec = next((v for v in found if v.analyzer == "word"), found[0])
    return vec.build_analyzer(), set(vec.vocabulary_)


def estimated_performance(scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision and recall implied by calibrated scores (confidence-based, as NannyML's CBPE):
    a message scored p is spam with probability p, so the expected true positives are the sum
    of p over the flagged, false positives the sum of 1 - p, false negatives the sum of p over
    the others."""
    scores = np.asarray(scores, dtype=np.float64)
    flagged = scores >= threshold
    tp, fp, fn = scores[flagged].sum(), (1 - scores[flagged]).sum(), scores[~flagged].sum()
    return {
        "precision": _r(tp / (tp + fp)) if tp + fp > 0 else 0.0,
        "recall": _r(tp / (tp + fn)) if tp + fn > 0 else 0.0,
        "expected_spam_share": _r(scores.mean()) if len(scores) else 0.0,
    }


def real_performance(is_spam: np.ndarray, flagged: np.ndarray) -> dict[str, float | int]:
    """Precision, recall and ham false-positive rate from labels."""
    is_spam, flagged = np.asarray(is_spam, bool), np.asarray(flagged, bool)
    tp, fp = int((is_spam & flagged).sum()), int((~is_spam & flagged).sum())
    fn, n_ham = int((is_spam & ~flagged).sum()), int((~is_spam).sum())
    return {
        "precision": _r(tp / (tp + fp)) if tp + fp else 0.0,
        "recall": _r(tp / (tp + fn)) if tp + fn else 0.0,
        "ham_fpr": _r(fp / n_ham) if n_ham else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "n_ham": n_ham,
        "n_spam": int(is_spam.sum()),
    }


def build(
    model: Any,
    metadata: dict[str, Any],
    test_scores: np.ndarray,
    test_normalised: Sequence[str],
    test_is_spam: np.ndarray,
    train_messages: Sequence[str],
    seed: int,
) -> dict[str, Any]:
    """The reference profile of a trained model (see the module docstring)."""
    threshold = float(metadata["threshold"])
    analyzer, vocabulary = ngram_checker(model)
    test_normalised = sample(test_normalised, seed)
    unseen = unseen_shares(test_normalised, analyzer, vocabulary)
    train_messages = sample(train_messages, seed)
    desc = describe(train_messages)
    flagged = np.asarray(test_scores) >= threshold
    return {
        "format": FORMAT,
        "model_version": metadata["model_version"],
        "threshold": _r(threshold),
        "scores": {
            "n": len(test_scores),
            "sample": quantile_sample(test_scores),
            "flagged_rate": _r(flagged.mean()),
            "estimated": estimated_performance(test_scores, threshold),
            "actual": real_performance(test_is_spam, flagged),
        },
        "descriptors": {
            "n": len(train_messages),
            "length": quantile_sample(desc["length"]),
            **{name: _r(desc[name].mean()) for name in FLAGS},
        },
        "unseen_ngrams": {"n": len(test_normalised), "mean": _r(unseen.mean())},
    }


def load(path: Path = REFERENCE_PATH) -> dict[str, Any]:
    """Read a reference profile; a missing, unreadable or foreign file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: reference profile not found (run `dvc repro` or `dvc pull`)")
    try:
        ref = io.read_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"{path}: not a reference profile (cannot read it as JSON: {exc})"
        ) from None
    if not isinstance(ref, dict):
        raise UserError(f"{path}: not a reference profile (a JSON object is expected)")
    missing = [k for k in KEYS if k not in ref]
    if missing or ref.get("format") != FORMAT:
        raise UserError(
            f"{path}: not a reference profile of format {FORMAT} "
            f"(missing {', '.join(missing) or 'nothing'}, format {ref.get('format')!r})"
        )
    return ref
