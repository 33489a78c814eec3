"""One reporter cannot move the model (issue 28): whatever a single untrusted reporter
reports through the real server with its feedback token, after `dvc repro` spam recall and
MCC on the test split move by at most 0.02 and at most 1 of 50 fresh ordinary messages of the
attacked kind is flagged; what was refused or quarantined is counted in the data report,
with one log line naming the reporter.

On the code before this defence the same reports took spam recall from 0.93 to 0.00 (the
flip), to 0.04 (spam reported as ham), and flagged 50 of 50 fresh lunch messages
(docs/monitoring.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from helpers import sh
from poisoning import balanced_flip, feedback_server, figures, lunch, spam_as_ham, use_feedback

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # slow: a retrain per attack

Reports = list[tuple[str, str]]


def lunch_as_spam(train: pd.DataFrame, test: pd.DataFrame) -> Reports:
    return [(t, "spam") for t in lunch(300, 1)]


def tricks(train: pd.DataFrame, test: pd.DataFrame) -> Reports:
    """Near-duplicates of one text, the test split's texts, the training split's texts with
    their own labels, near-duplicates of training spam reported as ham."""
    near = [
        f"Lunch at {h}:{m:02d} at the canteen? my treat" for h in range(1, 13) for m in range(25)
    ]
    spam = train.loc[train["label"] == "spam", "text"]
    return (
        [(t, "spam") for t in near]
        + [
            (t, "spam" if y == "ham" else "ham")
            for t, y in test.head(100)[["text", "label"]].values
        ]
        + [(t, y) for t, y in train.head(100)[["text", "label"]].values]
        + [(t.upper(), "ham") for t in spam.head(100)]
    )


ATTACKS: dict[str, Callable[[pd.DataFrame, pd.DataFrame], Reports]] = {
    "flip-20pct": lambda train, test: balanced_flip(train, 0.2, 7),
    "lunch-as-spam": lunch_as_spam,
    "spam-as-ham": lambda train, test: spam_as_ham(train, 200, 7),
    "tricks": tricks,
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_one_reporter_cannot_move_the_model(repo: Path, tmp_path: Path, attack: str) -> None:
    before = figures(repo)
    train = pd.read_parquet(repo / "data/raw/train.parquet")
    test = pd.read_parquet(repo / "data/raw/test.parquet")
    reports = ATTACKS[attack](train, test)
    with feedback_server(repo, tmp_path, ["mallory"]) as post:
        post("mallory", reports)
    use_feedback(repo)
    proc = sh("dvc", "repro", cwd=repo)
    after = figures(repo)
    fb = json.loads((repo / "data/report.json").read_text())["feedback"]
    mallory = fb["reporters"]["mallory"]
    print(f"{attack}: {len(reports)} reports; {json.dumps(mallory)}; {before} -> {after}")
    assert abs(after["recall"] - before["recall"]) <= 0.02
    assert abs(after["mcc"] - before["mcc"]) <= 0.02
    assert after["lunch_flagged"] <= 1
    # Every report is counted, none merged.
    assert mallory["records"] == len(reports)
    assert mallory["trusted"] == mallory["corroborated"] == mallory["released"] == 0
    counted = ("quarantined", "unchanged", "repeats", "in_test_split", "too_long", "capped")
    assert sum(mallory[k] for k in counted) == len(reports)
    assert mallory["quarantined"] > 0 and fb["quarantined"] == mallory["quarantined"]
    assert len(fb["quarantine"]) == mallory["quarantined"]
    metrics = json.loads((repo / "dvclive/ingest/metrics.json").read_text())["feedback"]
    assert metrics["quarantined"] == mallory["quarantined"]
    assert metrics["refused"]["in_test_split"] == mallory["in_test_split"]
    log = proc.stdout + proc.stderr
    assert log.count("feedback from 'mallory' (untrusted):") == 1, log
