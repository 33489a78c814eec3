"""The fast engine's linear SVM solver."""

__all__ = ["linear", "solver"]
