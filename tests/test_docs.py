"""The figures README.md and docs/ quote from the default pipeline are its current outputs.

They are read from what git holds (`dvclive/evaluate/metrics.json`, the confusion matrix's
plot data), so a fresh clone checks them; the few only in DVC outputs
(`dvclive/evaluate/details.json`, `data/report.json`) are checked too when those are present
(after `dvc repro` or `dvc pull`). A change of the model that moves a figure fails here until
the docs say the new one.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
DETAILS = ROOT / "dvclive/evaluate/details.json"
REPORT = ROOT / "data/report.json"


@dataclass(frozen=True)
class Headline:
    """The default pipeline's test-split figures, from its committed outputs."""

    threshold: float
    recall: float
    precision: float
    mcc: float
    roc_auc: float
    obfuscated_recall: float
    n_ham: int
    n_spam: int
    fp: int

    @property
    def f1(self) -> float:
        return 2 * self.precision * self.recall / (self.precision + self.recall)


@pytest.fixture(scope="module")
def headline() -> Headline:
    metrics = json.loads((ROOT / "dvclive/evaluate/metrics.json").read_text())
    rows = json.loads((ROOT / "dvclive/evaluate/plots/sklearn/confusion_matrix.json").read_text())
    counts = Counter((r["actual"], r["predicted"]) for r in rows)
    n_ham = counts["ham", "ham"] + counts["ham", "spam"]
    n_spam = counts["spam", "spam"] + counts["spam", "ham"]
    h = Headline(
        threshold=metrics["threshold"],
        recall=metrics["recall"],
        precision=metrics["precision"],
        mcc=metrics["mcc"],
        roc_auc=metrics["roc_auc"],
        obfuscated_recall=metrics["obfuscated"]["recall"],
        n_ham=n_ham,
        n_spam=n_spam,
        fp=counts["ham", "spam"],
    )
    # the two committed files agree
    assert h.fp / n_ham == pytest.approx(metrics["ham_fpr"], abs=1e-6)
    assert counts["spam", "spam"] / n_spam == pytest.approx(h.recall, abs=1e-6)
    return h


def _line(path: Path, start: str) -> str:
    found = [x for x in path.read_text(encoding="utf-8").splitlines() if x.startswith(start)]
    assert len(found) == 1, f"{path.name}: {len(found)} lines start with {start!r}"
    return found[0]


def test_readme_results_row_is_the_committed_run(headline: Headline) -> None:
    h = headline
    row = _line(README, "| bundled subset (default `dvc repro`) |")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:] == [
        f"{h.n_ham} / {h.n_spam}",
        f"{h.threshold:.3f}",
        f"{h.recall:.3f}",
        f"{h.fp} of {h.n_ham}",
        f"{h.mcc:.3f}",
        f"{h.f1:.3f}",
        f"{100 * (1 - h.roc_auc):.2f}",
    ], row
    if REPORT.is_file():
        report = json.loads(REPORT.read_text())
        assert cells[1] == f"{report['rows']:,}", row


def test_readme_obfuscation_drop_is_the_committed_one(headline: Headline) -> None:
    drop = 100 * (headline.recall - headline.obfuscated_recall)
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert f"on the bundled subset drops by {drop:.1f} points" in text


def test_model_quality_quotes_the_evaluate_log_line(headline: Headline) -> None:
    h = headline
    quoted = (
        f"`test at threshold {h.threshold:.4f}: spam recall {h.recall:.4f}, ham flagged "
        f"{h.fp} of {h.n_ham} (FPR {100 * h.fp / h.n_ham:.4f}%), precision {h.precision:.4f}, "
        f"F1 {h.f1:.4f}, MCC {h.mcc:.4f}"
    )
    line = _line(DOCS / "model-quality.md", "`test at threshold ")
    assert line.startswith(quoted), line
    if DETAILS.is_file():
        ci = json.loads(DETAILS.read_text())["ci95"]
        assert f"[95% CI {ci['mcc_low']:.4f}-{ci['mcc_high']:.4f}]" in line


def test_serving_operating_point_table_has_the_committed_default(headline: Headline) -> None:
    h = headline
    row = _line(DOCS / "serving.md", "| `default` | 0.1 % |")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:] == [
        f"{h.threshold:.3f}",
        f"{h.recall:.3f}",
        f"{h.fp} of {h.n_ham}",
        f"{h.precision:.3f}",
    ], row


def test_experiments_baseline_row_is_the_committed_run(headline: Headline) -> None:
    h = headline
    row = _line(DOCS / "experiments.md", "| **baseline** (bundled subset) |")
    cells = [c.strip() for c in row.strip("|").split("|")]
    # experiment, features, classifier, recall, mcc, threshold, precision, ham_fpr, roc_auc
    assert cells[3:] == [
        f"{v:.4f}" for v in (h.recall, h.mcc, h.threshold, h.precision, h.fp / h.n_ham, h.roc_auc)
    ], row
