"""Metrics of a spam classifier at a decision threshold."""

from __future__ import annotations

import numpy as np


def classification_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Threshold and ranking metrics; ``y_true`` is 1 for spam, ``scores`` in [0, 1].

    A message is flagged as spam when its score is >= ``threshold``.
    """
    from sklearn import metrics

    y_true = np.asarray(y_true, dtype=int)
    y_pred = (np.asarray(scores) >= threshold).astype(int)
    tn, fp, fn, tp = metrics.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision": metrics.precision_score(y_true, y_pred, zero_division=0),
        "recall": metrics.recall_score(y_true, y_pred, zero_division=0),
        "f1": metrics.f1_score(y_true, y_pred, zero_division=0),
        "mcc": metrics.matthews_corrcoef(y_true, y_pred),
        "roc_auc": metrics.roc_auc_score(y_true, scores),
        "average_precision": metrics.average_precision_score(y_true, scores),
        "ham_fpr": fp / (fp + tn) if fp + tn else 0.0,
        "tp": int(tp),
        "fp": int(fp),
        "tn": int(tn),
        "fn": int(fn),
    }
