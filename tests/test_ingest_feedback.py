"""`ingest.feedback`: reported verdicts merged into the training split only, the conflict
policies and the poisoning guard, through the real ingest stage."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ingest_support import messages, output_hashes, run_in_process, run_script, uci
from sentinelle import feedback


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.tsv").write_text(uci(messages(48, 12)))
    return tmp_path


def store(path: Path, *records: tuple[str, str]) -> Path:
    s = feedback.Store(path)
    for text, label in records:
        s.add(feedback.record(text, label))
    return path


def splits(work: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        pd.read_parquet(work / "data/raw/train.parquet"),
        pd.read_parquet(work / "data/raw/test.parquet"),
    )


def test_feedback_goes_to_train_only_and_wins_conflicts(work: Path) -> None:
    run_in_process(work, "data.tsv")
    train0, test0 = splits(work)
    in_train, in_test = train0["text"].iloc[0], test0["text"].iloc[0]
    fb = store(
        work / "fb.jsonl",
        ("Your parcel is held: pay the fee now", "spam"),
        ("Your parcel is held: pay the fee now", "spam"),  # one text, two votes
        (in_train, "spam" if train0["label"].iloc[0] == "ham" else "ham"),
        (in_test, "spam"),
        ("a tie", "spam"),
        ("a tie", "ham"),
    )
    report = run_in_process(work, "data.tsv", feedback=str(fb))
    train, test = splits(work)
    pd.testing.assert_frame_equal(test, test0)  # the test split is the source's alone
    assert report["feedback"] == {
        "source": str(fb),
        "records": 6,
        "texts": 4,
        "added": 1,
        "overridden": 1,
        "refused": {"in_test_split": 1, "tie": 2, "conflict": 0, "too_long": 0},
        "train_spam_share": report["feedback"]["train_spam_share"],
        "note": "feedback goes to the training split only; the test split is the source's",
    }
    assert len(train) == len(train0) + 1
    row = train[train["text"] == in_train]
    assert len(row) == 1 and row["label"].iloc[0] != train0["label"].iloc[0]
    assert train["label"].iloc[-1] == "spam" and train["group"].iloc[-1] > train0["group"].max()
    assert report["splits"]["train"]["rows"] == len(train)


@pytest.mark.parametrize(("policy", "kept"), [("drop", False), ("majority", True)])
def test_the_conflict_policies(work: Path, policy: str, kept: bool) -> None:
    run_in_process(work, "data.tsv")
    train0, _ = splits(work)
    text, label = train0["text"].iloc[0], train0["label"].iloc[0]
    other = "spam" if label == "ham" else "ham"
    fb = store(work / "fb.jsonl", (text, other))  # one report against the source: a tie
    report = run_in_process(work, "data.tsv", feedback=str(fb), on_feedback_conflict=policy)
    train, _ = splits(work)
    assert (text in set(train["text"])) is kept or policy == "majority"
    if policy == "drop":
        assert report["feedback"]["refused"]["conflict"] == 1
    else:  # majority: source 1 vote, feedback 1 vote: a tie drops the text
        assert text not in set(train["text"])
        fb = store(work / "fb.jsonl", (text, other))  # a second report: 2 against 1
        report = run_in_process(work, "data.tsv", feedback=str(fb), on_feedback_conflict=policy)
        train, _ = splits(work)
        assert train.loc[train["text"] == text, "label"].tolist() == [other]
        assert report["feedback"]["overridden"] == 1


def test_the_poisoning_guard_refuses_mass_reports(work: Path) -> None:
    run_in_process(work, "data.tsv")
    before = output_hashes(work)
    fb = store(
        work / "fb.jsonl", *[(f"totally normal message number {i}", "spam") for i in range(20)]
    )
    proc = run_script(work, "data.tsv", feedback=str(fb))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "the feedback would move the training split's spam share from 20.8% to" in proc.stderr
    assert "ingest.max_feedback_shift = 0.1" in proc.stderr
    assert output_hashes(work) == before  # nothing written
    assert run_script(work, "data.tsv", feedback=str(fb), max_feedback_shift=0.5).returncode == 0


def test_no_feedback_leaves_the_outputs_as_before(work: Path) -> None:
    run_in_process(work, "data.tsv")
    before = output_hashes(work)
    fb = store(work / "empty.jsonl")
    fb.write_bytes(b"")
    report = run_in_process(work, "data.tsv", feedback=str(fb))
    assert report["feedback"]["records"] == 0
    run_in_process(work, "data.tsv")
    assert output_hashes(work) == before
