"""Metrics of a spam classifier: operating point, threshold metrics, intervals.

Conventions: ``y_true`` is 1 for spam and 0 for ham; a message is flagged as spam
when its score is ``>= threshold``; "ham FPR" is the share of ham flagged.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics
from sklearn.metrics import roc_curve

# Where "spam recall at a ham FPR target" is read off the ROC curve.
LOW_FPR = 0.001


def choose_threshold(y_true: np.ndarray, scores: np.ndarray, max_ham_fpr: float) -> float:
    """The threshold that catches the most spam while flagging at most ``max_ham_fpr`` of ham.

    At most ``floor(max_ham_fpr * n_ham)`` ham messages may score at or above it. It
    is placed halfway between the highest ham score that must stay below and the
    next higher score, so that a model refitted on slightly more data keeps a margin.
    """
    y_true = np.asarray(y_true, dtype=int)
    scores = np.asarray(scores, dtype=np.float64)
    ham = np.sort(scores[y_true == 0])[::-1]
    if len(ham) == 0:
        raise ValueError("cannot choose a threshold without ham messages")
    allowed = math.floor(max_ham_fpr * len(ham) + 1e-9)
    if allowed >= len(ham):
        return float(scores.min())
    below = ham[allowed]  # the highest ham score that must not be flagged
    above = scores[scores > below]
    if len(above) == 0:
        return float(np.nextafter(below, np.inf))
    return float((below + above.min()) / 2)


def _rate(errors: float, n: float) -> float:
    return errors / n if n else 0.0


def lam(ham_errors: int, n_ham: int, spam_errors: int, n_spam: int) -> float:
    """Logistic average misclassification (TREC spam track), as a fraction.

    ``logit^-1((logit(hm) + logit(sm)) / 2)`` with ``hm``/``sm`` the ham and spam
    misclassification rates, each computed as ``(errors + 0.5) / (n + 1)`` so that a
    zero error count stays finite.
    """
    hm = (ham_errors + 0.5) / (n_ham + 1)
    sm = (spam_errors + 0.5) / (n_spam + 1)
    logit = (math.log(hm / (1 - hm)) + math.log(sm / (1 - sm))) / 2
    return 1 / (1 + math.exp(-logit))


def recall_at_fpr(y_true: np.ndarray, scores: np.ndarray, max_fpr: float = LOW_FPR) -> float:
    """The highest spam recall of any threshold whose ham FPR is <= ``max_fpr`` (ROC curve)."""
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def threshold_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | int]:
    """Accuracy, precision, spam recall, F1, MCC, ham FPR, lam and the confusion counts."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    tp = int(((y_true == 1) & (y_pred == 1)).sum())
    fp = int(((y_true == 0) & (y_pred == 1)).sum())
    tn = int(((y_true == 0) & (y_pred == 0)).sum())
    fn = int(((y_true == 1) & (y_pred == 0)).sum())
    precision = _rate(tp, tp + fp)
    recall = _rate(tp, tp + fn)
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "accuracy": _rate(tp + tn, len(y_true)),
        "precision": precision,
        "recall": recall,
        "f1": _rate(2 * precision * recall, precision + recall),
        "mcc": (tp * tn - fp * fn) / denominator if denominator else 0.0,
        "ham_fpr": _rate(fp, fp + tn),
        "lam_pct": 100 * lam(fp, fp + tn, fn, tp + fn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "n_ham": fp + tn,
        "n_spam": tp + fn,
    }


def ranking_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Threshold-free metrics: ROC AUC, 1-ROCA %, average precision, recall at ham FPR <= 0.1 %."""
    auc = float(metrics.roc_auc_score(y_true, scores))
    return {
        "roc_auc": auc,
        "one_minus_roca_pct": 100 * (1 - auc),
        "average_precision": float(metrics.average_precision_score(y_true, scores)),
        "recall_at_fpr_0_1pct": recall_at_fpr(y_true, scores, LOW_FPR),
    }


def classification_metrics(
    y_true: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """Threshold metrics at ``threshold`` plus the ranking metrics."""
    y_pred = (np.asarray(scores) >= threshold).astype(int)
    return {**threshold_metrics(y_true, y_pred), **ranking_metrics(y_true, scores)}


def bootstrap_intervals(
    y_true: np.ndarray, y_pred: np.ndarray, n: int, seed: int, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of MCC and spam recall (``n`` seeded resamples of messages).

    Both depend only on a resample's confusion counts, and resampling N messages
    with replacement puts a multinomial(N, cell shares) number of them in each
    confusion cell, so the counts are drawn directly: the same distribution as
    resampling messages, in O(n) memory instead of an (n, N) matrix of indices.
    """
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    cells = np.array(
        [
            np.sum(y_true & y_pred),
            np.sum(~y_true & y_pred),
            np.sum(~y_true & ~y_pred),
            np.sum(y_true & ~y_pred),
        ]
    )
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(y_true), cells / max(len(y_true), 1), size=n).astype(np.float64)
    tp, fp, tn, fn = draws.T
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        mcc = np.where(denominator > 0, (tp * tn - fp * fn) / denominator, 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {
        "mcc": tuple(float(v) for v in np.percentile(mcc, q)),
        "recall": tuple(float(v) for v in np.percentile(recall, q)),
    }
