"""The two copies of the SMS Spam Collection in ../shared ingest to the same distinct messages."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers import KAGGLE_FULL, UCI_FULL, needs_shared
from ingest_support import run_in_process

pytestmark = [pytest.mark.shared, needs_shared(UCI_FULL), needs_shared(KAGGLE_FULL)]


def ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path) -> tuple[dict, set[str]]:
    work = tmp_path / source.stem
    work.mkdir()
    monkeypatch.chdir(work)
    report = run_in_process(work, source)
    texts = {
        t
        for s in ("train", "test")
        for t in pd.read_parquet(work / f"data/raw/{s}.parquet")["text"]
    }
    return report, texts


def test_both_shared_files_give_the_same_distinct_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uci, uci_texts = ingest(tmp_path, monkeypatch, UCI_FULL)
    kaggle, kaggle_texts = ingest(tmp_path, monkeypatch, KAGGLE_FULL)
    assert (uci["format"], uci["encoding"], uci["rows_read"]) == ("uci", "utf-8", 5574)
    assert (kaggle["format"], kaggle["rows_read"]) == ("kaggle", 5572)
    assert uci["rows"] == 5171  # ../shared/README.md: 5,171 distinct texts
    assert abs(kaggle["rows"] - uci["rows"]) <= 5
    # Most texts are identical in both copies (4,614 of 5,171; the Kaggle copy has encoding
    # damage such as "å£" for "£" and quotes mangled by its CSV export).
    assert len(uci_texts & kaggle_texts) > 0.85 * len(uci_texts)
    for report in (uci, kaggle):
        spam = report["splits"]["train"]["spam"] + report["splits"]["test"]["spam"]
        assert 640 <= spam <= 660
        assert report["splits"]["test"]["rows"] == pytest.approx(0.2 * report["rows"], abs=5)
