"""Cross-validation folds that keep near-duplicates together (both engines use them)."""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import pandas as pd


def grouped_stratified_folds(
    labels: Any, groups: Any, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` ``(train_idx, test_idx)`` folds; each group wholly in one fold, classes balanced.

    A group counts for the label of its first message (as in ``data.split``).
    Per class, groups are shuffled with ``seed``, ordered largest first, and each is
    put in the fold that holds the fewest messages of that class so far. Linear in
    the number of messages (scikit-learn's StratifiedGroupKFold takes minutes for
    a million singleton groups) and as balanced as the group sizes allow.
    """
    labels = np.asarray(labels)
    group = pd.factorize(np.asarray(groups, dtype=object))[0]
    sizes = np.bincount(group)
    first = np.full(len(sizes), -1, dtype=np.int64)
    first[group[::-1]] = np.arange(len(group))[::-1]
    group_label = labels[first]
    rng = np.random.default_rng(seed)
    fold_of_group = np.empty(len(sizes), dtype=np.int64)
    for label in np.unique(group_label):
        members = np.flatnonzero(group_label == label)
        members = members[rng.permutation(len(members))]
        members = members[np.argsort(-sizes[members], kind="stable")]
        heap = [(0, f) for f in range(k)]
        for g, size in zip(members.tolist(), sizes[members].tolist(), strict=True):
            filled, f = heapq.heappop(heap)
            fold_of_group[g] = f
            heapq.heappush(heap, (filled + size, f))
    fold = fold_of_group[group]
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]
