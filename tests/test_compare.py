"""`sentinelle compare`: two real (tiny) models on one labelled file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tiny_model
from helpers import sh
from sentinelle.serving.scorer import Scorer


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    low = tiny_model.make(tmp_path_factory.mktemp("low"), threshold=0.35)
    high = tiny_model.make(tmp_path_factory.mktemp("high"), threshold=0.99)  # flags almost nothing
    return low, high


def test_side_by_side_metrics_and_disagreements(models: tuple[Path, Path], tmp_path: Path) -> None:
    low, high = models
    data = tmp_path / "labelled.csv"
    rows = [(t, "spam") for t in tiny_model.SPAM] + [(t, "ham") for t in tiny_model.HAM]
    data.write_text("text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows))
    out = tmp_path / "comparison.json"
    proc = sh("sentinelle", "compare", low, high, "--data", data, "-o", out, cwd=tmp_path)
    result = json.loads(out.read_text())
    spam = Scorer.load(low).scores(tiny_model.SPAM)  # the same model: only thresholds differ
    ham = Scorer.load(low).scores(tiny_model.HAM)
    caught = (int((spam >= 0.35).sum()), int((spam >= 0.99).sum()))
    flagged = (int((ham >= 0.35).sum()), int((ham >= 0.99).sum()))
    assert result["champion"]["recall"] == round(caught[0] / 6, 6)
    assert result["challenger"]["recall"] == round(caught[1] / 6, 6)
    assert (result["champion"]["fp"], result["challenger"]["fp"]) == flagged
    assert result["champion"]["threshold"] == 0.35 and result["challenger"]["threshold"] == 0.99
    differ = caught[0] - caught[1] + flagged[0] - flagged[1]
    assert result["disagreements"] == differ > 0
    assert result["disagreements_right"] == {
        "champion": caught[0] - caught[1],
        "challenger": flagged[0] - flagged[1],
    }
    assert len(result["disagreeing_messages"]) == differ
    assert (
        "recall" in proc.stdout and f"verdicts differ on {result['disagreements']}" in proc.stdout
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text,label\nhi,ham\nyo,ham\n", "not both classes"),
        ("text,label\nhi,ham\nyo,perhaps\n", "row 2 (line 3): label 'perhaps' is not a label"),
        ("text,verdict\nhi,ham\n", "label None is not a label"),
    ],
)
def test_bad_data_is_one_line_exit_2(
    models: tuple[Path, Path], tmp_path: Path, content: str, message: str
) -> None:
    data = tmp_path / "data.csv"
    data.write_text(content)
    proc = sh("sentinelle", "compare", *models, "--data", data, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr
