"""A leak-free split: stratified, with near-duplicates on one side, and the check that it is."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sentinelle.data.cleaning import first_appearance_codes
from sentinelle.errors import UserError
from sentinelle.text.canonical import canonical, canonical_digests


def check_sizes(frame: pd.DataFrame, where: str, test_size: float, min_rows: int) -> None:
    """Refuse too few messages, or a class too small for the stratified split."""
    counts = {label: int((frame["label"] == label).sum()) for label in ("ham", "spam")}
    shown = f"ham {counts['ham']}, spam {counts['spam']}"
    if len(frame) < min_rows:
        raise UserError(
            f"{where}: only {len(frame)} usable message(s) after cleaning ({shown}); "
            f"ingest.min_rows = {min_rows} are needed"
        )
    need = next(
        n for n in range(2, 10_000) if round(n * test_size) >= 1 and n - round(n * test_size) >= 1
    )
    for label, n in counts.items():
        if n < need:
            raise UserError(
                f"{where}: {'only one class' if n == 0 else f'too few {label} messages'} "
                f"after cleaning ({shown}); the stratified split with ingest.test_size = "
                f"{test_size:g} needs at least {need} of each class"
            )


def split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/test split that keeps near-duplicates together.

    Messages with the same ``canonical`` form (e.g. the same spam template with
    another phone number) form a group, and a group goes wholly to one side, so
    the test set never holds a message the model saw in all but name. Groups are
    shuffled per class with ``seed`` and moved to test, skipping any that would
    overshoot, until the class has ``round(n * test_size)`` test messages. Row
    order within each side is the original order, so the output depends only on
    the input and the params.
    """
    # Grouped by a 128-bit digest of each canonical form (16 bytes, not the form itself, whose
    # copies would outgrow memory at 10M messages): the same groups, numbered the same, unless
    # two of the forms collide, which at 10M messages has a chance of about 1e-25.
    group = first_appearance_codes(canonical_digests(frame["text"].array))
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
    # The near-duplicate group travels with each message (train keeps a group in one CV fold).
    frame = frame.assign(group=group.astype(np.int64))
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
    """Fail if any canonical text is in both splits (by the ``group`` column, if there is one)."""
    if "group" in train and "group" in test:
        common = np.intersect1d(train["group"].to_numpy(), test["group"].to_numpy())
        if len(common) == 0:
            return
        train = train[train["group"].isin(common)]
    shared = set(train["text"].map(canonical)) & set(test["text"].map(canonical))
    if shared:
        example = sorted(shared)[0]
        raise AssertionError(f"{len(shared)} canonical texts are in both splits, e.g. {example!r}")
