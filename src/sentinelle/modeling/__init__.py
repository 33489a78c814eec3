"""The model: two engines that fit it (``sklearn_engine``, the specification; ``fast``),
its pipeline, calibration, operating points, persistence (with the metadata's schema)
and explanations."""

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
    "training",
]
