"""The review of a change: its results read from git, the quality gate, and the PR report."""

__all__ = ["gate", "render", "report", "results"]
