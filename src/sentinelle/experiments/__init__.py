"""Experiment plans: named sets of ``dvc exp`` runs, run, compared and
reported (``python src/experiments.py``)."""

__all__ = ["command_line", "comparison", "plans", "plots_report", "runner"]
