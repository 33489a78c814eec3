"""Deduplication and the leak-free stratified split."""

from __future__ import annotations

import pandas as pd
import pytest

from sentinelle.data.split import assert_no_leakage, split
from sentinelle.errors import UserError
from sentinelle.text.canonical import canonical


def frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["label", "text"])


def corpus() -> pd.DataFrame:
    ham = [("ham", f"see you at {w} tonight") for w in "abcdefghijklmnopqrstuvwxyz"] * 1
    ham += [("ham", f"ok lar {chr(97 + i % 26)}{chr(97 + i // 26)} then") for i in range(120)]
    # One spam template with different phone numbers: one canonical group of 10.
    spam = [("spam", f"WIN now! call 0906170{1000 + i}") for i in range(10)]
    spam += [("spam", f"free entry {chr(97 + i)}{chr(98 + i)} txt {i}") for i in range(20)]
    return frame(ham + spam)


def test_split_is_stratified_seeded_and_keeps_groups_together() -> None:
    data = corpus()
    train, test = split(data, test_size=0.2, seed=7)
    assert len(train) + len(test) == len(data)
    assert (test["label"] == "ham").sum() == round(146 * 0.2)
    assert (test["label"] == "spam").sum() == round(30 * 0.2)
    group = {canonical(t) for t in data["text"] if t.startswith("WIN")}
    assert len(group) == 1
    sides = {
        ("train" if t in set(train["text"]) else "test")
        for t in data["text"]
        if t.startswith("WIN")
    }
    assert len(sides) == 1  # the whole template went to one side
    again_train, _ = split(data, test_size=0.2, seed=7)
    pd.testing.assert_frame_equal(train, again_train)
    other_train, _ = split(data, test_size=0.2, seed=8)
    assert set(other_train["text"]) != set(train["text"])


def test_split_refuses_a_class_too_small_for_both_sides() -> None:
    data = frame([("ham", f"hello {chr(97 + i)}") for i in range(20)] + [("spam", "win a prize")])
    with pytest.raises(UserError, match="split has no spam messages"):
        split(data, test_size=0.2, seed=1)


def test_leakage_guard_catches_near_duplicates() -> None:
    with pytest.raises(AssertionError, match="1 canonical texts are in both splits"):
        assert_no_leakage(
            frame([("spam", "Call 0906 1234567")]), frame([("spam", "call 07911123456")])
        )
