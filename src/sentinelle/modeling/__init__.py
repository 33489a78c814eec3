"""The model: its pipeline, training, calibration, operating points, persistence
and explanations."""

__all__ = [
    "calibration",
    "explanations",
    "folds",
    "inference",
    "operating_points",
    "persistence",
    "pipeline",
    "spans",
    "training",
]
