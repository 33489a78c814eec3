"""Named operating points: thresholds for other ham false-positive budgets.

``default`` is the model's own threshold (``train.max_ham_fpr``); ``train.operating_points``
names more budgets (e.g. ``strict``: 0.0001, ``lenient``: 0.01). The ``train`` stage chooses
each threshold from the same out-of-fold scores as the default one and stores it with its
cross-validated spam recall and ham FPR in ``models/model.json``; a request or a score run
picks one by name.
"""

from __future__ import annotations

from typing import Any

from sentinelle.errors import UserError

DEFAULT = "default"


def thresholds(metadata: dict[str, Any]) -> dict[str, float]:
    """``name -> threshold`` of a model's metadata; a model from before operating points has
    only ``default``."""
    points = metadata.get("operating_points") or {}
    out = {name: float(point["threshold"]) for name, point in points.items()}
    out.setdefault(DEFAULT, float(metadata["threshold"]))
    return out


def resolve(available: dict[str, float], name: str | None) -> tuple[str, float]:
    """The (name, threshold) of operating point ``name`` (``None`` = ``default``)."""
    name = DEFAULT if name is None else name
    if name not in available:
        raise UserError(
            f"unknown operating point {name!r}; allowed: {', '.join(sorted(available))}"
        )
    return name, available[name]
