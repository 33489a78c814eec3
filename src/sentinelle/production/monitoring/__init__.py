"""Monitoring: the reference profile written at training time and the drift checks of
``sentinelle monitor`` (score, flagged-rate, text-descriptor and label-free performance)."""

__all__ = ["descriptors", "drift", "drift_page", "reference"]
