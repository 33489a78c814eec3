"""The feedback loop end to end: a spam family the model misses is reported by three
reporters, `dvc repro` with `ingest.feedback` retrains, and held-out messages of that family
are caught while ham false positives on the (unchanged) test split stay within the target,
with an attacker's reports in the same file left in quarantine. A lone reporter's reports
wait in quarantine until the operator trusts them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from helpers import sh
from poisoning import (
    HELD_OUT_NAMES,
    REPORTED_NAMES,
    STORE,
    balanced_flip,
    feedback_server,
    figures,
    lunch,
    recruiter_scams,
    use_feedback,
)
from sentinelle import params
from sentinelle.serving.scorer import Scorer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # slow: three retrains


def caught(repo: Path, texts: list[str]) -> int:
    scorer = Scorer.load(repo / "models/model.skops")
    return int((scorer.scores(texts) >= scorer.threshold).sum())


def test_reported_spam_family_is_learnt_by_the_next_model(repo: Path, tmp_path: Path) -> None:
    reported = recruiter_scams(REPORTED_NAMES, 30, 1)
    held_out = recruiter_scams(HELD_OUT_NAMES, 30, 2)
    assert not set(reported) & set(held_out)
    caught_before = caught(repo, held_out)
    assert caught_before <= 3, caught_before  # the model misses the family
    before = figures(repo)
    champion = tmp_path / "champion"
    champion.mkdir()
    for name in ("model.skops", "model.json"):
        shutil.copy(repo / "models" / name, champion / name)

    model = repo / "models/model.skops"
    # An attacker's reports in the same file: ordinary lunch messages as spam, a 5 % balanced
    # flip of the training labels, and the family itself as ham.
    train = pd.read_parquet(repo / "data/raw/train.parquet")
    attack = [(t, "spam") for t in lunch(100, 1)] + balanced_flip(train, 0.05, 7)
    attack += [(t, "ham") for t in reported]
    with feedback_server(repo, tmp_path, ["ana", "bo", "cy", "mallory"]) as post:
        post("mallory", attack[: len(attack) // 2])
        for i, who in enumerate(("ana", "bo", "cy")):  # 10 reports each
            post(who, [(t, "spam") for t in reported[i::3]])
        post("mallory", attack[len(attack) // 2 :])
    stored = [json.loads(line) for line in (repo / STORE).read_text().splitlines()]
    assert {r["reporter"] for r in stored} == {"ana", "bo", "cy", "mallory"}
    assert all(r["score"] is not None for r in stored)

    use_feedback(repo)
    sh("dvc", "repro", cwd=repo)
    fb = json.loads((repo / "data/report.json").read_text())["feedback"]
    assert {who: fb["reporters"][who]["corroborated"] for who in ("ana", "bo", "cy")} == {
        "ana": 10,
        "bo": 10,
        "cy": 10,
    }
    assert fb["added"] == 30 and fb["refused"]["in_test_split"] == 0
    mallory = fb["reporters"]["mallory"]
    assert mallory["quarantined"] + mallory["repeats"] == len(attack)
    caught_after = caught(repo, held_out)
    after = figures(repo)
    print(
        f"held-out family caught: {caught_before}/30 -> {caught_after}/30; {before} -> {after}; "
        f"threshold {Scorer.load(champion / 'model.skops').threshold:.4f} -> "
        f"{Scorer.load(model).threshold:.4f}"
    )
    assert caught_after >= 27, caught_after
    gate = params.read(repo / "params.yaml")["gate"]  # gate lives in settings.yaml
    assert after["ham_fpr"] <= gate["max_ham_fpr"] and after["fp"] <= before["fp"] + 1
    assert abs(after["recall"] - before["recall"]) <= 0.02
    assert after["lunch_flagged"] <= 1

    # Champion (before) and challenger (after) side by side on held-out family + test ham.
    labelled = tmp_path / "labelled.jsonl"
    test = pd.read_parquet(repo / "data/processed/test.parquet")
    rows = [{"text": t, "label": "spam"} for t in held_out]
    rows += [{"text": t, "label": "ham"} for t in test.loc[test["label"] == "ham", "message"]]
    labelled.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "comparison.json"
    sh(
        "sentinelle",
        "compare",
        champion / "model.skops",
        model,
        "--data",
        labelled,
        "-o",
        out,
        cwd=repo,
    )
    result = json.loads(out.read_text())
    assert result["champion"]["recall"] == round(caught_before / 30, 6)
    assert result["challenger"]["recall"] == round(caught_after / 30, 6)
    assert result["disagreements_right"]["challenger"] >= caught_after - caught_before


def test_an_operator_trusts_a_lone_reporter(repo: Path, tmp_path: Path) -> None:
    reported = recruiter_scams(REPORTED_NAMES, 10, 3)
    held_out = recruiter_scams(HELD_OUT_NAMES, 30, 2)
    with feedback_server(repo, tmp_path, ["desk"]) as post:
        post("desk", [(t, "spam") for t in reported])
    use_feedback(repo)
    sh("dvc", "repro", cwd=repo)
    fb = json.loads((repo / "data/report.json").read_text())["feedback"]
    assert fb["reporters"]["desk"]["quarantined"] == 10 and fb["added"] == 0
    listed = sh("sentinelle", "feedback", "quarantine", "--reporter", "desk", cwd=repo).stdout
    assert listed.count("\n") == 10 and "  spam  desk  score 0." in listed
    caught_before = caught(repo, held_out)

    sh("sentinelle", "feedback", "trust", "desk", cwd=repo)
    sh("git", "add", "feedback", cwd=repo)
    sh("git", "commit", "-q", "-m", "feedback: trust desk", cwd=repo)
    sh("dvc", "repro", cwd=repo)
    fb = json.loads((repo / "data/report.json").read_text())["feedback"]
    assert fb["reporters"]["desk"] == {**fb["reporters"]["desk"], "trusted": 10, "quarantined": 0}
    assert fb["added"] == 10
    caught_after = caught(repo, held_out)
    print(
        f"a lone trusted reporter's 10 reports: held-out family caught {caught_before}/30 -> "
        f"{caught_after}/30"
    )
    assert caught_after >= 20, caught_after
