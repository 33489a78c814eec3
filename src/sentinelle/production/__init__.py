"""The production loop around a served model: drift monitoring, the feedback users report,
champion against challenger, the model registry (GTO) and the review of a change (report, gate)."""

__all__ = ["champion", "commands", "feedback_import", "monitor", "monitoring", "registry", "review"]
