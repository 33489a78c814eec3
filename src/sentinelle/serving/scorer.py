"""``Scorer``: a model loaded with the safe loader, its metadata, and the normaliser it was
trained with.

The normaliser is built from ``params.preprocess`` in the metadata, so training
and inference share one normalisation code path. Used by ``sentinelle score``
(``batch.files``) and the HTTP API.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from sentinelle.modeling import operating_points
from sentinelle.modeling.calibration import calibrated_linear_scores
from sentinelle.modeling.explanations import Explainer
from sentinelle.modeling.inference import spam_scores
from sentinelle.modeling.metadata import MAX_BYTES as MAX_METADATA_BYTES
from sentinelle.modeling.persistence import MODEL_PATH, load_with_metadata
from sentinelle.modeling.spans import token_spans
from sentinelle.text.normaliser import Normaliser

# The API's default limits: the longest message and the largest batch of one request; the
# work budget of one scoring request (docs/serving.md: what it costs); scoring requests at
# once; the request line and headers; a reporter's reports (after a burst).
MAX_CHARS = 5000
MAX_BATCH = 1000
MAX_BATCH_CHARS = 200_000
MAX_EXPLAIN_WORK = 2_000_000
SCORING_JOBS = 2
MAX_HEADER_BYTES = 16 * 1024
FEEDBACK_RATE = "30/minute"
FEEDBACK_BURST = 10


class Scorer:
    """A loaded model with its metadata, threshold, version and normaliser."""

    def __init__(self, model: Any, metadata: dict[str, Any]) -> None:
        self.model = model
        self.metadata = metadata
        self.threshold = float(metadata["threshold"])
        self.version = str(metadata["model_version"])
        self.thresholds = operating_points.thresholds(metadata)  # name -> threshold
        self.normaliser = Normaliser(**metadata["params"]["preprocess"])
        # The pipeline's own feature step (CompactTfidfVectorizer counts n-grams per
        # distinct word, vectorised); the classifier may take a validation-free path.
        self.features = model[:-1].transform if hasattr(model, "steps") else None
        self.spam_index = list(model.classes_).index("spam")
        self.classifier = (
            calibrated_linear_scores(model[-1], self.spam_index)
            if self.features is not None
            else None
        )

    @classmethod
    def load(cls, model_path: Path = MODEL_PATH, metadata_path: Path | None = None) -> Scorer:
        """Load with the safe loader (allowlisted types, hash checked against the metadata)."""
        model, meta = load_with_metadata(
            Path(model_path), metadata_path_for(model_path, metadata_path)
        )
        return cls(model, meta)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Spam score in [0, 1] of each raw (not yet normalised) message."""
        normalised = [self.normaliser(t) for t in texts]
        # The model's inputs are lists of strings that we build ourselves: skip
        # scikit-learn's per-call validation, which costs more than the maths for
        # a single short message.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            if self.features is None:
                return spam_scores(self.model, normalised)
            return self._scores_of(self.features(normalised))

    def _scores_of(self, features: Any) -> np.ndarray:
        if self.classifier is not None:
            return self.classifier(features)
        return self.model[-1].predict_proba(features)[:, self.spam_index]

    @cached_property
    def explainer(self) -> Explainer:
        """Built on first use; raises ``ExplanationUnavailable`` for a model that cannot be
        explained."""
        return Explainer(
            self.model, self.metadata.get("params", {}).get("train", {}).get("classifier")
        )

    def explain(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Spam scores and the ``k`` top words each way of each raw message
        (``Explainer.explain``), from one feature matrix."""
        explainer = self.explainer
        spans = [token_spans(self.normaliser, t) for t in texts]
        normalised = [" ".join(where.tokens) for where in spans]  # what self.normaliser gives
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            features = self.features(normalised)
            scores = self._scores_of(features)
        return scores, explainer.explain(features, k, spans)

    def predict(
        self, texts: Sequence[str], threshold: float | None = None
    ) -> list[tuple[float, bool]]:
        """``(spam_score, is_spam)`` of each raw message, at ``threshold`` (default: the
        model's own)."""
        at = self.threshold if threshold is None else threshold
        return [(float(s), bool(s >= at)) for s in self.scores(texts)]

    def operating_point(self, name: str | None) -> tuple[str, float]:
        """The (name, threshold) of a named operating point; ``None`` is ``default``."""
        return operating_points.resolve(self.thresholds, name)

    def predict_explained(
        self, texts: Sequence[str], k: int, threshold: float | None = None
    ) -> list[tuple[float, bool, dict[str, Any]]]:
        """``(spam_score, is_spam, explanation)`` of each raw message (see ``explain``), at
        ``threshold`` (default: the model's own)."""
        at = self.threshold if threshold is None else threshold
        scores, explanations = self.explain(texts, k)
        return [(float(s), bool(s >= at), e) for s, e in zip(scores, explanations, strict=True)]


def evaluation_for(model_path: Path, version: str) -> dict[str, Any] | None:
    """The test headline ``evaluate`` wrote beside the model (``evaluation.json``), if it is
    there and describes this very model version."""
    path = Path(model_path).with_name("evaluation.json")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_METADATA_BYTES + 1)
        card = json.loads(data) if len(data) <= MAX_METADATA_BYTES else None
    except (OSError, ValueError, RecursionError):  # a damaged card is no card
        return None
    return card if isinstance(card, dict) and card.get("model_version") == version else None


def metadata_path_for(model_path: Path, metadata_path: Path | None = None) -> Path:
    """The metadata sidecar of a model file: ``model.skops`` -> ``model.json``."""
    return (
        Path(metadata_path) if metadata_path is not None else Path(model_path).with_suffix(".json")
    )
