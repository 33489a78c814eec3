"""Feedback into the training data (``ingest.feedback``): reported verdicts from the
feedback store (``sentinelle.feedback``), merged into the training split after the split.

- Feedback goes to the training split only: the test split is the source's alone, so test
  metrics stay comparable from one retrain to the next. A report whose canonical text is in
  the test split is not used (counted ``refused.in_test_split``), nor one longer than
  ``ingest.max_chars`` (``refused.too_long``).
- Several reports of one text are one vote each; their majority label is the feedback's
  label (a tie: the text's reports are refused, ``refused.tie``).
- A text already in the training split keeps one row: ``ingest.on_feedback_conflict`` says
  what a different label does: ``feedback`` (the report wins, counted ``overridden``),
  ``drop`` (the text leaves the training data, ``refused.conflict``), ``majority`` (the
  source row is one more vote; a tie drops the text).
- The poisoning guard: when the merge would move the training split's spam share by more
  than ``ingest.max_feedback_shift`` (mass reports), the run stops with a one-line error.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from sentinelle import feedback
from sentinelle.data import sources
from sentinelle.errors import UserError
from sentinelle.params import IngestParams
from sentinelle.text.canonical import canonical_many

NOTE = "feedback goes to the training split only; the test split is the source's"


def read(p: IngestParams) -> list[feedback.Record]:
    """The feedback records at ``p.feedback`` (a path, http(s):// URL or s3:// object)."""
    assert p.feedback is not None
    fetched = sources.fetch(dataclasses.replace(p, source=p.feedback, sha256=None, member=None))
    return feedback.parse(fetched.data, fetched.where)


def merge(
    train: pd.DataFrame, test: pd.DataFrame, records: list[feedback.Record], p: IngestParams
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The training split with the feedback merged in, and the report's ``feedback`` entry."""
    votes: dict[str, Counter[str]] = {}
    for rec in records:
        votes.setdefault(rec.text, Counter())[rec.label] += 1
    texts = list(votes)
    forms = canonical_many(texts) if texts else []
    in_test = set(canonical_many(test["text"])) if texts else set()
    refused = {"in_test_split": 0, "tie": 0, "conflict": 0, "too_long": 0}
    row_of = {t: i for i, t in enumerate(train["text"])}
    labels = train["label"].to_numpy(dtype=object).copy()
    keep = np.ones(len(train), dtype=bool)
    new_text: list[str] = []
    new_label: list[str] = []
    new_form: list[str] = []
    overridden = 0
    for text, form in zip(texts, forms, strict=True):
        count = votes[text]
        if len(text) > p.max_chars:
            refused["too_long"] += sum(count.values())
            continue
        if form in in_test:
            refused["in_test_split"] += sum(count.values())
            continue
        ranked = count.most_common()
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            refused["tie"] += sum(count.values())
            continue
        label = ranked[0][0]
        if text not in row_of:
            new_text.append(text)
            new_label.append(label)
            new_form.append(form)
            continue
        i = row_of[text]
        if labels[i] == label:
            continue  # the source agrees: nothing to change
        policy = p.on_feedback_conflict
        if policy == "majority":
            count = count + Counter({labels[i]: 1})
            ranked = count.most_common()
            policy = "drop" if ranked[0][1] == ranked[1][1] else "feedback"
            label = ranked[0][0]
        if policy == "drop":
            keep[i] = False
            refused["conflict"] += sum(votes[text].values())
        elif label != labels[i]:
            labels[i] = label
            overridden += 1
    # New texts join the near-duplicate group of a training text with the same canonical
    # form, else a new group of their own (numbered after the existing ones, in file order).
    group_of = dict(zip(canonical_many(train["text"]), train["group"], strict=True))
    next_group = int(train["group"].max()) + 1 if len(train) else 0
    groups = []
    for form in new_form:
        if form not in group_of:
            group_of[form] = next_group
            next_group += 1
        groups.append(group_of[form])
    merged = pd.concat(
        [
            train.assign(label=labels)[keep],
            pd.DataFrame(
                {"text": new_text, "label": new_label, "group": np.array(groups, dtype=np.int64)}
            ),
        ],
        ignore_index=True,
    )
    before = float((train["label"] == "spam").mean())
    after = float((merged["label"] == "spam").mean())
    if abs(after - before) > p.max_feedback_shift:
        raise UserError(
            f"{p.feedback}: the feedback would move the training split's spam share from "
            f"{before:.1%} to {after:.1%}, more than ingest.max_feedback_shift = "
            f"{p.max_feedback_shift:g} allows (mass reports?); check the file, or raise the "
            "limit if the shift is real"
        )
    report = {
        "source": p.feedback,
        "records": len(records),
        "texts": len(texts),
        "added": len(new_text),
        "overridden": overridden,
        "refused": refused,
        "train_spam_share": {"before": round(before, 6), "after": round(after, 6)},
        "note": NOTE,
    }
    return merged, report
