"""`sentinelle monitor` against the reference profile of the default pipeline's model.

Measured on batches of held-out messages: 20 clean batches of 1,000 messages resampled
(seeded) from the test split, which the model never trained on, raise at most one false
alarm; a batch with three times the spam share, a batch whose spam is obfuscated (leet,
look-alike letters, invisible characters, dotted letters) and a batch of e-mail-like long
texts each raise the alarm. The checks run in-process on the batches (seconds); the
command's exit codes and outputs are checked on one batch of each kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import sh
from sentinelle.experiments import plots_report
from sentinelle.params import load
from sentinelle.production.monitor import Rows, profile
from sentinelle.production.monitoring import drift, reference
from sentinelle.serving.scorer import Scorer
from sentinelle.text.obfuscation import obfuscate_many

pytestmark = pytest.mark.e2e

BATCH = 1000
CLEAN_BATCHES = 20
SEED = 17

SUBJECTS = [
    "Quarterly budget review",
    "Minutes of Tuesday's meeting",
    "Project timeline update",
    "Invoice 4471 for October",
    "Re: contract renewal",
    "Agenda for the offsite",
]
SENTENCES = [
    "Please find attached the revised figures for the third quarter, including the adjustments "
    "requested by the finance committee.",
    "As discussed during our call, the procurement team will circulate the updated vendor "
    "assessment before the end of the week.",
    "I would appreciate it if you could review section four of the draft and send your comments "
    "to the whole distribution list.",
    "The steering group agreed to postpone the migration until the infrastructure audit has "
    "been completed and signed off.",
    "Kindly note that the deadline for submitting expense reports has been moved to the "
    "fifteenth of next month.",
    "Our legal department has raised a number of questions regarding the indemnification "
    "clauses in the master services agreement.",
    "Attendance at the onboarding workshop is mandatory for all new members of the "
    "engineering and operations departments.",
    "The facilities team reminds everyone that the parking garage will be closed for "
    "maintenance over the weekend.",
]


def email_like(n: int, rng: np.random.Generator) -> list[str]:
    """Long, formal, multi-paragraph texts: another domain than SMS."""
    out = []
    for _ in range(n):
        body = " ".join(SENTENCES[i] for i in rng.choice(len(SENTENCES), 5, replace=False))
        out.append(
            f"Subject: {SUBJECTS[int(rng.integers(len(SUBJECTS)))]}\n\nDear colleagues,\n\n"
            f"{body}\n\nBest regards,\nJ. Martin\nHead of Operations"
        )
    return out


def batches(test: pd.DataFrame) -> dict[str, tuple[list[str], list[bool]]]:
    """The clean batches and one batch of each drift kind, from the held-out test split."""
    rng = np.random.default_rng(SEED)
    ham = test[test["label"] == "ham"]["message"].tolist()
    spam = test[test["label"] == "spam"]["message"].tolist()
    share = len(spam) / len(test)

    def mix(spam_share: float, spam_texts: list[str] | None = None) -> tuple[list[str], list[bool]]:
        n_spam = round(BATCH * spam_share)
        pool = spam_texts or spam
        texts = [ham[i] for i in rng.integers(0, len(ham), BATCH - n_spam)]
        texts += [pool[i] for i in rng.integers(0, len(pool), n_spam)]
        labels = [False] * (BATCH - n_spam) + [True] * n_spam
        order = rng.permutation(BATCH)
        return [texts[i] for i in order], [labels[i] for i in order]

    out = {}
    messages, labels = test["message"].tolist(), (test["label"] == "spam").tolist()
    for k in range(CLEAN_BATCHES):
        idx = rng.integers(0, len(test), BATCH)
        out[f"clean-{k:02d}"] = [messages[i] for i in idx], [labels[i] for i in idx]
    out["spam-x3"] = mix(3 * share)
    out["obfuscated-spam"] = mix(share, obfuscate_many(spam, SEED, rate=0.5))
    out["email"] = email_like(BATCH, rng), [False] * BATCH
    return out


@pytest.fixture(scope="module")
def measured(reproduced: Path) -> dict[str, list[drift.Check]]:
    scorer = Scorer.load(reproduced / "models/model.skops")
    ref = reference.load(reproduced / "models/reference.json")
    p = load(reproduced / "params.yaml").monitor
    test = pd.read_parquet(reproduced / "data/processed/test.parquet")
    results = {}
    for name, (texts, labels) in batches(test).items():
        batch = profile(Rows(texts, None, labels, set()), scorer)
        results[name] = drift.run_checks(ref, batch, p)
    return results


def failed(checks: list[drift.Check]) -> list[str]:
    return [c.name for c in checks if not c.passed]


def test_clean_batches_raise_at_most_one_false_alarm(measured: dict) -> None:
    alarms = {n: failed(c) for n, c in measured.items() if n.startswith("clean-") and failed(c)}
    assert len([n for n in measured if n.startswith("clean-")]) == CLEAN_BATCHES
    assert len(alarms) <= 1, alarms


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("spam-x3", {"score_psi", "score_ks", "flagged_rate"}),
        ("obfuscated-spam", {"descriptor_psi/has_lookalike"}),
        ("email", {"descriptor_psi/length", "unseen_ngrams"}),
    ],
)
def test_each_drift_kind_raises_the_alarm(measured: dict, kind: str, expected: set) -> None:
    assert expected <= set(failed(measured[kind])), [c.line() for c in measured[kind]]


def write_jsonl(path: Path, texts: list[str], labels: list[bool] | None = None) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            row = {"text": text}
            if labels is not None:
                row["label"] = "spam" if labels[i] else "ham"
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.mark.slow  # six `sentinelle` runs; the checks themselves run in-process above
def test_exit_codes_outputs_and_report(reproduced: Path, tmp_path: Path) -> None:
    test = pd.read_parquet(reproduced / "data/processed/test.parquet")
    made = batches(test)
    clean = write_jsonl(tmp_path / "clean.jsonl", *made["clean-00"])
    proc = sh("sentinelle", "monitor", clean, "-o", tmp_path / "clean", cwd=reproduced, check=False)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "clean/monitor.json").read_text())
    assert summary["drift"] is False and summary["messages"] == BATCH
    assert summary["actual"]["n_spam"] + summary["actual"]["n_ham"] == BATCH
    metrics = json.loads((tmp_path / "clean/dvclive/metrics.json").read_text())
    assert metrics["drift"] == 0 and metrics["checks"]["score_psi"] < 0.2
    page = (tmp_path / "clean/report.html").read_text()
    assert "no drift: every check passed" in page and "data:image/png;base64," in page

    # Scored once with `sentinelle score`, monitored without rescoring: the same figures.
    scored = tmp_path / "scored.jsonl"
    sh("sentinelle", "score", clean, "-o", scored, "--no-progress", cwd=reproduced)
    again = sh("sentinelle", "monitor", scored, "-o", tmp_path / "again", cwd=reproduced)
    assert "scores read from the input" in again.stderr
    other = json.loads((tmp_path / "again/monitor.json").read_text())
    assert other["rescored"] is False and other["flagged_rate"] == summary["flagged_rate"]

    for kind in ("spam-x3", "obfuscated-spam", "email"):
        path = write_jsonl(tmp_path / f"{kind}.jsonl", made[kind][0])
        proc = sh("sentinelle", "monitor", path, "-o", tmp_path / kind, cwd=reproduced, check=False)
        assert proc.returncode == 1, proc.stderr
        lines = [x for x in proc.stderr.splitlines() if x.startswith("sentinelle monitor: drift: ")]
        assert lines and len(lines) == len(
            json.loads((tmp_path / kind / "monitor.json").read_text())["failed"]
        )


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("", [], "empty batch: no messages to monitor"),
        ("message,label\nhello,ham\n", [], "no column 'text' in the header"),
        (None, [], "cannot read input"),
        ('{"text": "hi", "label": "maybe"}\n', [], "label 'maybe' is not a label"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    reproduced: Path, tmp_path: Path, content: str | None, args: list[str], message: str
) -> None:
    suffix = ".csv" if content and content.startswith("message") else ".jsonl"
    path = tmp_path / f"batch{suffix}"
    if content is not None:
        path.write_text(content)
    proc = sh(
        "sentinelle", "monitor", path, "-o", tmp_path / "out", *args, cwd=reproduced, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_report_renders_in_headless_chromium(reproduced: Path, tmp_path: Path) -> None:
    if not plots_report.chromium():
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium)")
    from PIL import Image

    test = pd.read_parquet(reproduced / "data/processed/test.parquet")
    path = write_jsonl(tmp_path / "email.jsonl", batches(test)["email"][0])
    sh("sentinelle", "monitor", path, "-o", tmp_path / "out", cwd=reproduced, check=False)
    page = tmp_path / "out/report.html"
    dom = plots_report._browser(page, "--dump-dom").stdout.decode("utf-8", "replace")
    assert 'id="verdict">drift: ' in dom and dom.count('<tr class="fail">') >= 3
    shot = tmp_path / "shot.png"
    plots_report._browser(page, f"--screenshot={shot}", "--window-size=1400,1600")
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.int16)
    # The charts' blue and orange bars: strongly coloured pixels (the table's are pastel).
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 100
    assert saturated.mean() > 0.005, saturated.mean()
