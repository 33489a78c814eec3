"""`sentinelle score` on the model `dvc repro` trains: raw messages in, the evaluate stage's
verdicts out."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from cli_helper import sentinelle

pytestmark = pytest.mark.e2e


def test_scoring_raw_messages_reproduces_the_evaluate_stage(
    reproduced: Path, tmp_path: Path
) -> None:
    """Scoring the raw test split gives exactly evaluate's confusion matrix: same normaliser,
    same threshold."""
    raw = pd.read_parquet(reproduced / "data/raw/test.parquet")
    raw.to_csv(tmp_path / "test.csv", index=False)
    sentinelle(
        "score",
        tmp_path / "test.csv",
        "-o",
        tmp_path / "scored.csv",
        "--model",
        reproduced / "models/model.skops",
        "--chunk-size",
        "100",
        cwd=tmp_path,
    )
    rows = list(csv.DictReader((tmp_path / "scored.csv").open(newline="", encoding="utf-8")))
    assert [r["text"] for r in rows] == raw["text"].tolist()
    counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    for r in rows:
        spam, flagged = r["label"] == "spam", r["is_spam"] == "true"
        counts[("t" if spam == flagged else "f") + ("p" if flagged else "n")] += 1
    metrics = json.loads((reproduced / "dvclive/evaluate/details.json").read_text())
    assert counts == {k: metrics[k] for k in counts}
    assert (counts["tp"] + counts["tn"]) / len(rows) > 0.95


def test_scorer_scores_equal_the_pipelines_on_the_processed_text(reproduced: Path) -> None:
    """The scorer (normaliser + fast features) gives the trained pipeline's exact scores."""
    import numpy as np

    from sentinelle.modeling import inference
    from sentinelle.serving.scorer import Scorer

    scorer = Scorer.load(reproduced / "models/model.skops")
    processed = pd.read_parquet(reproduced / "data/processed/test.parquet")
    raw = processed["message"].tolist()  # the message as ingested, before preprocess
    assert scorer.normaliser.many(raw) == processed["text"].tolist()
    np.testing.assert_array_equal(
        scorer.scores(raw), inference.spam_scores(scorer.model, processed["text"])
    )


def test_explanations_add_up_on_the_whole_test_split(reproduced: Path) -> None:
    """Every message of the test split, folded onto its words: the words, the intercept and
    what has no word give the classifier's own decision function; every word is the text at
    its offsets."""
    import numpy as np

    from sentinelle.modeling.calibration import base_estimator
    from sentinelle.modeling.spans import token_spans
    from sentinelle.serving.scorer import Scorer

    scorer = Scorer.load(reproduced / "models/model.skops")
    raw = pd.read_parquet(reproduced / "data/processed/test.parquet")["message"].tolist()
    spans = [token_spans(scorer.normaliser, text) for text in raw]
    X = scorer.features([" ".join(where.tokens) for where in spans])
    decision = base_estimator(scorer.model[-1]).decision_function(X)
    folded = scorer.explainer.fold(X, spans)
    total = np.array([f.intercept + f.values.sum() + f.unplaced for f in folded])
    assert np.abs(total - decision).max() <= 1e-9
    assert all(f.unplaced == 0.0 for f in folded)  # the default preprocessing places all
    for text, f in zip(raw, folded, strict=True):
        assert all(text[a:b].strip() == text[a:b] != "" for a, b in f.words)
    scores, explained = scorer.explain(raw, 10)
    np.testing.assert_array_equal(scores, scorer.scores(raw))
    for text, why in zip(raw, explained, strict=True):
        assert all(text[i["start"] : i["end"]] == i["text"] for i in why["spam"] + why["ham"])
