"""``FittedModel``: what either engine (``train.engine``) hands the train stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.pipeline import Pipeline


@dataclass
class FittedModel:
    """A fitted model with what the train stage reports about it."""

    model: Pipeline  # features + classifier; saved by ``persistence.save``
    oof: np.ndarray  # raw out-of-fold spam scores (scale of ``pipeline.raw_scores``)
    train_scores: np.ndarray  # ``spam_scores`` of the training texts
    n_features: int
