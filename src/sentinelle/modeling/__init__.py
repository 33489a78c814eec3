"""The model: two engines that fit it (``sklearn_engine``, the specification; ``fast``),
its pipeline, calibration, operating points, persistence and explanations."""

__all__ = [
    "calibration",
    "engines",
    "explanations",
    "fast",
    "fitted",
    "folds",
    "inference",
    "operating_points",
    "persistence",
    "pipeline",
    "sklearn_engine",
    "spans",
    "training",
]
