"""The gate's rules one by one, and the report's pieces, on the project's committed results."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
from PIL import Image

from helpers import ROOT
from sentinelle.errors import UserError
from sentinelle.params import load
from sentinelle.production.review import gate, render, report, results
from sentinelle.production.review.results import EVALUATE, Revision

RULES = load(ROOT / "params.yaml").gate
COMMITTED = results.load(ROOT, Revision(results.WORKSPACE, None))  # dvclive/ is committed
RECALL = COMMITTED.evaluate["recall"]
MCC = COMMITTED.evaluate["mcc"]


def with_evaluate(res: results.Results, **changes: float) -> results.Results:
    metrics = copy.deepcopy(res.metrics)
    metrics[EVALUATE].update(changes)
    return dataclasses.replace(res, metrics=metrics)


def failed(verdict: gate.Verdict) -> list[str]:
    return [c.rule for c in verdict.failed]


def test_the_committed_model_passes_every_rule_against_itself() -> None:
    verdict = gate.evaluate(RULES, COMMITTED, COMMITTED)
    assert verdict.passed, verdict.summary()
    by_rule = {c.rule: c for c in verdict.checks}
    assert by_rule["gate.min_recall"].value == pytest.approx(RECALL)
    assert by_rule["gate.max_ham_fpr"].note == "2 of 795 ham flagged"
    assert by_rule["gate.max_recall_drop"].value == 0
    assert by_rule["gate.max_model_mb"].value == pytest.approx(COMMITTED.model_bytes / 1e6)
    assert by_rule["gate.min_throughput"].passed is None  # null: not measured
    assert verdict.summary() == "PASS: 5 of 6 rules passed, 1 not checked"


@pytest.mark.parametrize(
    ("rules", "target", "baseline", "throughput", "rule"),
    [
        ({"min_recall": round(RECALL + 0.01, 4)}, {}, {}, None, "gate.min_recall"),
        ({"max_ham_fpr": 0.002}, {}, {}, None, "gate.max_ham_fpr"),  # 2 of 795 is 0.0025
        ({}, {}, {"recall": RECALL + 0.03}, None, "gate.max_recall_drop"),
        ({}, {}, {"mcc": MCC + 0.03}, None, "gate.max_mcc_drop"),
        ({"max_model_mb": 0.1}, {}, {}, None, "gate.max_model_mb"),
        ({"min_throughput": 5000.0}, {}, {}, 4999.0, "gate.min_throughput"),
    ],
)
def test_each_rule_fails_alone(rules, target, baseline, throughput, rule) -> None:
    verdict = gate.evaluate(
        dataclasses.replace(RULES, **rules),
        with_evaluate(COMMITTED, **target),
        with_evaluate(COMMITTED, **baseline),
        throughput,
    )
    assert failed(verdict) == [rule]
    assert verdict.summary().startswith(f"FAIL: 1 of 6 rules failed ({rule})")
    line = next(c.line() for c in verdict.checks if c.rule == rule)
    assert line.startswith(f"FAIL  {rule}")


def test_a_drop_exactly_at_the_limit_passes() -> None:
    base = with_evaluate(COMMITTED, recall=round(RECALL + RULES.max_recall_drop, 6))
    check = gate.evaluate(RULES, COMMITTED, base).checks[2]
    assert (check.rule, check.passed, check.value) == ("gate.max_recall_drop", True, 0.02)


def test_without_a_baseline_the_drop_rules_are_not_checked() -> None:
    verdict = gate.evaluate(RULES, COMMITTED)
    skipped = [c.rule for c in verdict.checks if c.passed is None]
    assert skipped == ["gate.max_recall_drop", "gate.max_mcc_drop", "gate.min_throughput"]


def test_missing_metrics_are_bad_input_not_a_pass() -> None:
    metrics = copy.deepcopy(COMMITTED.metrics)
    del metrics[EVALUATE]["ham_fpr"]
    with pytest.raises(UserError, match=r"dvclive/evaluate/metrics.json has no 'ham_fpr'"):
        gate.evaluate(RULES, dataclasses.replace(COMMITTED, metrics=metrics))
    with pytest.raises(UserError, match=r"dvc\.lock has no models/model\.skops"):
        gate.evaluate(RULES, dataclasses.replace(COMMITTED, model_bytes=None))


def test_changes_say_which_way_is_better() -> None:
    assert report.change("recall", 0.9, 0.8) == "-0.1000 ▼ worse"
    assert report.change("ci95.mcc_low", 0.9, 0.95) == "+0.0500 ▲ better"
    assert report.change("fp", 2, 5) == "+3 ▲ worse"
    assert report.change("threshold", 0.6, 0.7) == "+0.1000 ▲"  # neither better nor worse
    assert report.change("mcc", 0.9, 0.9) == "="
    assert report.change("mcc", None, 0.9) == ""


def ink(png: Path) -> float:
    with Image.open(png) as img:
        hist = img.convert("L").histogram()
        return 1 - sum(hist[245:]) / (img.width * img.height)


@pytest.mark.parametrize("name", list(results.PLOT_FILES))
def test_every_plot_renders_non_blank_and_reproducibly(name: str, tmp_path: Path) -> None:
    rows = COMMITTED.plots[name]
    a = render.draw(tmp_path / "a.png", name, rows, "main", 0.6)
    b = render.draw(tmp_path / "b.png", name, rows, "main", 0.6)
    ref = render.draw(tmp_path / "ref.png", name, rows, "main", 0.6, ("base", rows[::2]))
    assert a.read_bytes() == b.read_bytes()  # no timestamp or software tag
    assert ref.read_bytes() != a.read_bytes() or name == "confusion"
    assert 0.02 < ink(a) < 0.6
    with Image.open(a) as img:
        assert img.size == (340, 300)
