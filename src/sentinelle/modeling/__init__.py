"""The model: two engines that fit it (``sklearn_engine``, the specification; the ``fast``
package), the parts they share (classifiers, calibration, folds), operating points,
persistence (with the metadata's schema) and explanations."""

__all__ = [
    "calibration",
    "engines",
    "explanations",
    "fast",
    "fitted",
    "folds",
    "inference",
    "metadata",
    "operating_points",
    "persistence",
    "pipeline",
    "sklearn_engine",
    "spans",
]
