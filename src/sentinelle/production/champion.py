"""``sentinelle compare``: champion and challenger side by side on one labelled set.

Both models are loaded with the safe loader and score the same messages, each at its
own stored threshold; the same metrics (``sentinelle.evaluation.metrics``) are printed
side by side, then the messages on which their verdicts differ. Promotion itself is
decided by ``sentinelle gate`` (the pull-request report), not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentinelle.errors import UserError
from sentinelle.evaluation.metrics import classification_metrics
from sentinelle.serving.rows import column_value, labelled_rows, spam_label
from sentinelle.serving.scorer import Scorer

SHOWN = (
    "precision",
    "recall",
    "f1",
    "mcc",
    "ham_fpr",
    "fp",
    "fn",
    "roc_auc",
    "average_precision",
)
MAX_DISAGREEMENTS = 1000  # kept in the JSON output; the count is always exact


@dataclass
class Labelled:
    texts: list[str]
    is_spam: np.ndarray


def read_labelled(
    path: Path, fmt: str | None, text_column: str, label_column: str, encoding: str
) -> Labelled:
    """Texts and labels of a CSV / TSV / JSON Lines file; any bad row is a one-line error."""
    texts, labels = [], []
    for where, record, header, text in labelled_rows(path, fmt, text_column, encoding):
        value = column_value(record, header, label_column)
        texts.append(text)
        labels.append(spam_label(value, label_column, where))
    is_spam = np.asarray(labels, dtype=bool)
    if len(set(labels)) < 2:
        raise UserError(
            f"{path}: {len(labels)} labelled rows but not both classes; comparing needs "
            "spam and ham messages"
        )
    return Labelled(texts, is_spam)  # type: ignore[arg-type]


def _r(x: float) -> float | int:
    return x if isinstance(x, int) else round(float(x), 6)


def compare(champion: Scorer, challenger: Scorer, data: Labelled) -> dict[str, Any]:
    """Metrics of both models and the messages on which their verdicts differ."""
    y = data.is_spam.astype(int)
    out: dict[str, Any] = {"messages": len(y), "spam": int(y.sum())}
    scores = {}
    for role, s in (("champion", champion), ("challenger", challenger)):
        scores[role] = s.scores(data.texts)
        metrics = classification_metrics(y, scores[role], s.threshold)
        out[role] = {
            "model_version": s.version,
            "threshold": _r(s.threshold),
            **{k: _r(metrics[k]) for k in SHOWN},
        }
    a = scores["champion"] >= champion.threshold
    b = scores["challenger"] >= challenger.threshold
    differ = np.flatnonzero(a != b)
    differ = differ[
        np.argsort(-np.abs(scores["champion"] - scores["challenger"])[differ], kind="stable")
    ]
    out["disagreements"] = len(differ)
    out["disagreements_right"] = {
        "champion": int((a[differ] == data.is_spam[differ]).sum()),
        "challenger": int((b[differ] == data.is_spam[differ]).sum()),
    }
    out["disagreeing_messages"] = [
        {
            "row": int(i) + 1,
            "label": "spam" if data.is_spam[i] else "ham",
            "champion_score": _r(scores["champion"][i]),
            "challenger_score": _r(scores["challenger"][i]),
            "text": data.texts[i],
        }
        for i in differ[:MAX_DISAGREEMENTS]
    ]
    return out


def table(result: dict[str, Any], show: int) -> str:
    """The comparison as text: one metric a line, then the first ``show`` disagreements."""
    champ, chall = result["champion"], result["challenger"]
    lines = [
        f"{result['messages']} labelled messages ({result['spam']} spam)",
        f"{'':<18} {'champion':>24} {'challenger':>24}",
        f"{'model':<18} {champ['model_version']:>24} {chall['model_version']:>24}",
    ]
    for key in ("threshold", *SHOWN):
        x, y = champ[key], chall[key]
        fmt = "{:>24d}" if isinstance(x, int) else "{:>24.4f}"
        lines.append(f"{key:<18} {fmt.format(x)} {fmt.format(y)}")
    right = result["disagreements_right"]
    lines.append(
        f"verdicts differ on {result['disagreements']} messages: champion right on "
        f"{right['champion']}, challenger right on {right['challenger']}"
    )
    for d in result["disagreeing_messages"][:show]:
        text = d["text"].replace("\n", " ")
        lines.append(
            f"  row {d['row']} ({d['label']}): champion {d['champion_score']:.3f}, "
            f"challenger {d['challenger_score']:.3f}: {text[:80]}"
        )
    return "\n".join(lines) + "\n"
