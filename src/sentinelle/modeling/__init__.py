"""The model: its pipeline, training, calibration, operating points, persistence (with
the metadata's schema) and explanations."""

__all__ = [
    "calibration",
    "explanations",
    "folds",
    "inference",
    "metadata",
    "operating_points",
    "persistence",
    "pipeline",
    "spans",
    "training",
]
