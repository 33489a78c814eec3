"""Evaluation outputs of the pipeline: declared plots exist, render, and are strict JSON
(issue 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import sh

pytestmark = pytest.mark.e2e


def declared_plot_files(repo: Path) -> list[str]:
    """Every file that dvc.yaml declares as a plot: stage `plots:` outputs and top-level
    `plots:`."""
    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text())
    files = []
    for stage in dvc_yaml["stages"].values():
        for entry in stage.get("plots", []):
            files.append(entry if isinstance(entry, str) else next(iter(entry)))
    for entry in dvc_yaml.get("plots", []):
        if isinstance(entry, str):
            files.append(entry)
            continue
        [(_, spec)] = entry.items()
        files.extend(spec["y"].keys())
    return sorted(set(files))


def test_declared_plots_are_produced_as_strict_json_and_render(repo: Path) -> None:
    files = declared_plot_files(repo)
    assert len(files) >= 7  # ROC, PR, DET, calibration, confusion, threshold, top features
    for rel in files:
        path = repo / rel
        assert path.is_file() and path.stat().st_size > 0, rel
        if rel.endswith(".json"):
            # json.loads would accept Infinity/NaN; refuse them as strict parsers do.
            text = path.read_text()
            for constant in ("Infinity", "NaN"):
                assert constant not in text, f"{rel}: {constant} is not JSON"
            json.loads(text)
    out = sh("dvc", "plots", "show", "--json", cwd=repo).stdout
    shown = json.loads(out)
    assert not shown.get("errors"), shown.get("errors")
    rendered = {d["type"] for plots in shown["data"].values() for d in plots}
    assert {"vega", "image"} <= rendered
    html = sh("dvc", "plots", "show", "-o", "plots_html", cwd=repo)
    assert html.returncode == 0
    page = (repo / "plots_html" / "index.html").read_text()
    for title in (
        "ROC curve",
        "Precision-recall",
        "Detection error trade-off",
        "Calibration",
        "Confusion matrix",
        "Ham FPR and spam recall vs threshold",
    ):
        assert title in page, title
    assert "top_features.png" in page


def test_metrics_hold_the_operating_point_and_robustness(reproduced: Path) -> None:
    metrics = json.loads((reproduced / "dvclive/evaluate/details.json").read_text())
    meta = json.loads((reproduced / "models/model.json").read_text())
    assert metrics["threshold"] == round(meta["threshold"], 6)
    assert 0 < meta["threshold"] < 1 and meta["max_ham_fpr"] == 0.001
    assert metrics["default_threshold"]["threshold"] == 0.5
    assert metrics["n_ham"] == metrics["fp"] + metrics["tn"]
    assert metrics["ci95"]["mcc_low"] <= metrics["mcc"] <= metrics["ci95"]["mcc_high"]
    assert metrics["obfuscated"]["recall_drop_points"] <= 5
    errors = (reproduced / "dvclive/evaluate/errors.tsv").read_text().splitlines()
    assert errors[0] == "kind\tscore\tlabel\tmessage"
    assert len(errors) - 1 == metrics["fp"] + min(metrics["fn"], 20)
