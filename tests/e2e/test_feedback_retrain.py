"""The feedback loop end to end: a spam family the model misses is reported through the real
API server, `dvc repro` with `ingest.feedback` retrains, and held-out messages of that family
are caught while ham false positives on the (unchanged) test split stay within the target."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from helpers import sh
from sentinelle.serving import tokens
from sentinelle.serving.scorer import Scorer
from test_api import serve, stop, wait_for

pytestmark = pytest.mark.e2e

GREETINGS = ["Hi {name}", "Hello {name}", "Dear {name}", "Good day {name}"]
HOOKS = [
    "we saw your profile",
    "your CV was shared with us",
    "a recruiter recommended you",
    "we found your details online",
]
OFFERS = [
    "and have a part time role working from home",
    "for a remote job of a few hours a day",
    "for an online task job paying daily",
    "for flexible home based work",
]
PAY = [
    "earning {x} to {y} a day",
    "with daily pay of {x}-{y}",
    "paid {x} per day",
    "up to {y} daily",
]
CALLS = [
    "reply YES if interested",
    "message our HR on whatsapp",
    "reply to learn more",
    "ask our team on whatsapp how to begin",
]
REPORTED_NAMES = ["Anna", "Ben", "Chloe", "Dan", "Emma", "Finn", "Grace", "Harry"]
HELD_OUT_NAMES = ["Isla", "Jack", "Kate", "Liam", "Mia", "Noah", "Olivia", "Paul"]


def family(names: list[str], n: int, seed: int) -> list[str]:
    """``n`` distinct task-scam messages (a template this SMS collection has never seen)."""
    rng = np.random.default_rng(seed)
    out: set[str] = set()
    while len(out) < n:
        parts = [p[int(rng.integers(len(p)))] for p in (GREETINGS, HOOKS, OFFERS, PAY, CALLS)]
        x = int(rng.integers(3, 9)) * 10
        out.add(
            f"{parts[0]}, {parts[1]} {parts[2]}, {parts[3]}, {parts[4]}".format(
                name=names[int(rng.integers(len(names)))], x=x, y=x * 3
            )
        )
    return sorted(out)


def test_reported_spam_family_is_learnt_by_the_next_model(repo: Path, tmp_path: Path) -> None:
    reported, held_out = family(REPORTED_NAMES, 30, 1), family(HELD_OUT_NAMES, 30, 2)
    assert not set(reported) & set(held_out)
    before = Scorer.load(repo / "models/model.skops")
    caught_before = int((before.scores(held_out) >= before.threshold).sum())
    assert caught_before <= 3, caught_before  # the model misses the family
    metrics_before = json.loads((repo / "dvclive/evaluate/metrics.json").read_text())
    champion = tmp_path / "champion"
    champion.mkdir()
    for name in ("model.skops", "model.json"):
        shutil.copy(repo / "models" / name, champion / name)

    store, file = repo / "feedback/feedback.jsonl", tmp_path / "tokens.json"
    _, secret = tokens.add(file, "e2e", ("feedback",))
    log = tmp_path / "server.log"
    proc, url = serve(
        repo / "models/model.skops",
        log,
        "--feedback",
        str(store),
        "--tokens",
        str(file),
        "--feedback-burst",
        "30",  # the 30 reports at once, within one reporter's rate limit
    )
    try:
        wait_for(f"{url}/readyz", proc, log, 200)
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=url, timeout=30, headers=headers) as c:
            for i, text in enumerate(reported):
                body = {"text": text, "label": "spam", "id": f"r{i}", "source": "e2e"}
                assert c.post("/feedback", json=body).status_code == 201
            assert c.get("/feedback/stats").json() == {
                "total": 30,
                "by_label": {"ham": 0, "spam": 30},
                "skipped": 0,
                "problems": [],
            }
    finally:
        stop(proc)

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ingest"]["feedback"] = "feedback/feedback.jsonl"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("dvc", "repro", cwd=repo)
    report = json.loads((repo / "data/report.json").read_text())
    assert report["feedback"]["added"] == 30 and report["feedback"]["refused"]["in_test_split"] == 0
    after = Scorer.load(repo / "models/model.skops")
    caught_after = int((after.scores(held_out) >= after.threshold).sum())
    metrics_after = json.loads((repo / "dvclive/evaluate/metrics.json").read_text())
    print(
        f"held-out family caught: {caught_before}/30 -> {caught_after}/30; test ham flagged "
        f"{metrics_before['fp']} -> {metrics_after['fp']} of {metrics_after['n_ham']}; "
        f"spam recall {metrics_before['recall']} -> {metrics_after['recall']}; "
        f"threshold {before.threshold:.4f} -> {after.threshold:.4f}"
    )
    assert caught_after >= 27, caught_after

    # Champion (before) and challenger (after) side by side on held-out family + test ham.
    labelled = tmp_path / "labelled.jsonl"
    test = __import__("pandas").read_parquet(repo / "data/processed/test.parquet")
    rows = [{"text": t, "label": "spam"} for t in held_out]
    rows += [{"text": t, "label": "ham"} for t in test.loc[test["label"] == "ham", "message"]]
    labelled.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "comparison.json"
    proc = sh(
        "sentinelle",
        "compare",
        champion / "model.skops",
        repo / "models/model.skops",
        "--data",
        labelled,
        "-o",
        out,
        cwd=repo,
    )
    result = json.loads(out.read_text())
    print(proc.stdout)
    assert result["champion"]["recall"] == round(caught_before / 30, 6)
    assert result["challenger"]["recall"] == round(caught_after / 30, 6)
    assert result["disagreements_right"]["challenger"] >= caught_after - caught_before
    assert metrics_after["n_ham"] == metrics_before["n_ham"]  # the same test split
    assert metrics_after["fp"] <= metrics_before["fp"] + 1
    assert metrics_after["ham_fpr"] <= 0.005
