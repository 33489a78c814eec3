"""Cleaning and splitting labelled messages: deduplication and a leak-free split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sentinelle.errors import UserError
from sentinelle.text import canonical


@dataclass(frozen=True)
class Cleaned:
    frame: pd.DataFrame  # columns: text, label
    exact_duplicates: int  # rows dropped because text and label repeat an earlier row
    conflicting: int  # rows dropped because the same text carries both labels


def deduplicate(frame: pd.DataFrame) -> Cleaned:
    """Drop exact duplicate texts, keeping the first; drop texts labelled both ways."""
    labels_per_text = frame.groupby("text", sort=False)["label"].transform("nunique")
    conflicting = int((labels_per_text > 1).sum())
    kept = frame.loc[labels_per_text == 1]
    unique = kept.drop_duplicates(subset="text", keep="first")
    return Cleaned(
        frame=unique[["text", "label"]].reset_index(drop=True),
        exact_duplicates=len(kept) - len(unique),
        conflicting=conflicting,
    )


def split(
    frame: pd.DataFrame, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/test split that keeps near-duplicates together.

    Messages with the same ``canonical`` form (e.g. the same spam template with
    another phone number) form a group, and a group goes wholly to one side, so
    the test set never holds a message the model saw in all but name. Groups are
    shuffled per class with ``seed`` and moved to test, skipping any that would
    overshoot, until the class has ``round(n * test_size)`` test messages. Row order within each side is the
    original order, so the output depends only on the input and the params.
    """
    keys = frame["text"].map(canonical)
    group = pd.factorize(keys)[0]
    # A group is split by the label of its first message (a group whose messages
    # differ in label is rare, and must still go to one side as a whole).
    first = pd.Series(frame["label"].to_numpy()).groupby(group).first()
    sizes = np.bincount(group)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in sorted(first.unique()):
        groups = first.index[first == label].to_numpy()
        target = round(sizes[groups].sum() * test_size)
        taken = 0
        # Greedy fill in seeded random order: a group that would overshoot the
        # target is skipped, so the test share stays exact when groups are small.
        for g in groups[rng.permutation(len(groups))]:
            if taken + sizes[g] <= target:
                chosen.append(g)
                taken += sizes[g]
                if taken == target:
                    break
    is_test = np.isin(group, chosen)
    train, test = frame.loc[~is_test], frame.loc[is_test]
    for name, part in (("train", train), ("test", test)):
        counts = part["label"].value_counts()
        if counts.get("spam", 0) == 0 or counts.get("ham", 0) == 0:
            raise UserError(
                f"the {name} split has no {'spam' if counts.get('spam', 0) == 0 else 'ham'} "
                f"messages ({len(part)} rows); use more data or another ingest.test_size"
            )
    assert_no_leakage(train, test)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def assert_no_leakage(train: pd.DataFrame, test: pd.DataFrame) -> None:
    """Fail if any canonical text is in both splits."""
    shared = set(train["text"].map(canonical)) & set(test["text"].map(canonical))
    if shared:
        example = sorted(shared)[0]
        raise AssertionError(f"{len(shared)} canonical texts are in both splits, e.g. {example!r}")
