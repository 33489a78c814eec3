"""The two engines of ``train.engine`` (issue 30): the same model from the specification
(``sklearn``) and from the ``fast`` engine; ``auto``'s cut-over; a misspelled engine."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT, SHARED, make_project, needs_shared, sh, write_params
from sentinelle.errors import UserError
from sentinelle.evaluation.metrics import choose_threshold, threshold_metrics
from sentinelle.modeling import engines, inference, persistence
from sentinelle.modeling.calibration import probability_threshold
from sentinelle.params import Params, load, parse, read
from sentinelle.serving.scorer import Scorer

# Most a spam score may differ between the engines. The fast engine's SVM solver stops at
# LinearSVC's default tolerance (1e-4), the specification's at 1e-5: two paths to the same
# optimum. Measured: at most 2.5e-6 on the bundled data, 6.5e-6 on the full collection.
SCORE_TOLERANCE = 1e-4


def prepared(repo: Path, source: Path | None = None) -> Params:
    """``repo``'s data ingested and preprocessed by the real stage scripts; its params."""
    data = read(repo / "params.yaml")
    if source is not None:
        data["ingest"]["source"] = str(source)
        write_params(repo / "params.yaml", data)
    stages = ["check_params", "ingest", "preprocess"]
    for stage in stages if source is not None else ["bundled_data", *stages]:
        sh("python", f"src/{stage}.py", cwd=repo)
    return load(repo / "params.yaml")


def compared(repo: Path, params: Params) -> dict[str, float]:
    """Both engines fitted on ``repo``'s training split and scored on its test split."""
    train = pd.read_parquet(repo / "data/processed/train.parquet")
    test = pd.read_parquet(repo / "data/processed/test.parquet")
    y, y_test = (train["label"] == "spam").to_numpy(), (test["label"] == "spam").to_numpy()
    scores, verdicts, mcc = {}, {}, {}
    for name, engine in engines.ENGINES.items():
        fitted = engine.fit(train, params)
        raw = choose_threshold(y, fitted.oof, params.train.max_ham_fpr)
        threshold = probability_threshold(fitted.model, raw)
        scores[name] = inference.spam_scores(fitted.model, test["text"].tolist())
        verdicts[name] = scores[name] >= threshold
        mcc[name] = threshold_metrics(y_test, verdicts[name])["mcc"]
    return {
        "differing": int((verdicts["fast"] != verdicts["sklearn"]).sum()),
        "mcc_difference": abs(mcc["fast"] - mcc["sklearn"]),
        "max_score_difference": float(np.abs(scores["fast"] - scores["sklearn"]).max()),
    }


def assert_equivalent(figures: dict[str, float]) -> None:
    assert figures["differing"] <= 1, figures
    assert figures["mcc_difference"] <= 0.005, figures
    assert figures["max_score_difference"] <= SCORE_TOLERANCE, figures


def test_the_engines_agree_on_the_bundled_data(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    assert_equivalent(compared(repo, prepared(repo)))


@pytest.mark.shared
@pytest.mark.slow
@needs_shared(SHARED / "sms_spam_collection.tsv")
def test_the_engines_agree_on_the_full_collection(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    assert_equivalent(compared(repo, prepared(repo, SHARED / "sms_spam_collection.tsv")))


def test_the_specification_saves_and_loads_as_the_fast_engine_does(tmp_path: Path) -> None:
    """A model of the sklearn engine goes through the same safe loader, byte-reproducibly."""
    texts = [f"win cash prize {i} now" for i in range(30)] + [
        f"see you at {i} for lunch" for i in range(60)
    ]
    labels = ["spam"] * 30 + ["ham"] * 60
    train = pd.DataFrame({"text": texts, "label": labels, "group": range(90)})
    params = load(ROOT / "params.yaml")
    model = engines.ENGINES["sklearn"].fit(train, params).model
    digests = {persistence.save(model, tmp_path / f"{i}.skops") for i in range(2)}
    assert len(digests) == 1
    sha256 = digests.pop()
    loaded = persistence.load(tmp_path / "0.skops", expected_sha256=sha256)
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))
    metadata = {
        "threshold": 0.5,
        "model_version": f"sentinelle-{sha256[:12]}",
        "params": {"preprocess": dataclasses.asdict(params.preprocess)},
    }
    scorer = Scorer(loaded, metadata)
    assert scorer.classifier is not None  # the calibrated linear model's direct path
    spam = list(model.classes_).index("spam")
    # Texts the normaliser leaves as they are: the scorer's scores are the model's.
    np.testing.assert_allclose(
        scorer.scores(texts), model.predict_proba(texts)[:, spam], rtol=0, atol=1e-12
    )


def test_auto_picks_the_fast_engine_from_the_documented_size() -> None:
    assert engines.pick("auto", engines.FAST_FROM)[0] == "fast"
    if engines.FAST_FROM > 0:
        assert engines.pick("auto", engines.FAST_FROM - 1)[0] == "sklearn"
    assert engines.pick("sklearn", 10**7)[0] == "sklearn"
    assert engines.pick("fast", 10)[0] == "fast"
    documented = (ROOT / "docs/performance.md").read_text()
    assert f"`FAST_FROM = {engines.FAST_FROM:_}`" in documented


def test_a_misspelled_engine_is_refused_in_one_line() -> None:
    data = copy.deepcopy(read(ROOT / "params.yaml"))
    data["train"]["engine"] = "fsat"
    with pytest.raises(UserError) as exc:
        parse(data)
    message = str(exc.value)
    assert "\n" not in message
    assert "train.engine" in message and "'fsat'" in message
    assert "auto" in message and "sklearn" in message and "fast" in message
