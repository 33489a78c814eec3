"""Test-split metrics and plots (the evaluate stage)."""

__all__ = ["metrics", "plots"]
