"""`ingest.feedback`: the rules that merge reported verdicts into the training split only,
so that no one reporter can move the model (corroboration, one voice, caps, trust), the
conflict policies and the class-balance guard, through the real ingest stage; and the
operator's commands (`sentinelle feedback trust|release|quarantine`)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from cli_helper import sentinelle
from helpers import ROOT, env
from ingest_support import messages, output_hashes, run_in_process, run_script, uci
from sentinelle import feedback_store
from sentinelle.data import trust
from sentinelle.errors import UserError

PARCEL = [  # one scam family: similar texts, none a near-duplicate of another
    "Your parcel is held at the depot: pay the small customs fee now at parcel-help",
    "Your parcel is waiting at the depot, pay the customs fee today at parcel-help",
    "Parcel held at our depot: a small customs fee is due now, pay at parcel-help",
    "Your parcel could not be delivered: pay the small customs fee at parcel-help",
]
LUNCH = "Fancy lunch at the noodle bar tomorrow? my treat"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.tsv").write_text(uci(messages(48, 12)))
    return tmp_path


Report = tuple[str, str, str | None]  # text, label, reporter


def store(path: Path, *reports: Report, score: float | None = None) -> Path:
    s = feedback_store.Store(path)
    for i, (text, label, reporter) in enumerate(reports):
        s.add(feedback_store.record(text, label, f"r{i}", reporter=reporter, score=score))
    return path


def splits(work: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        pd.read_parquet(work / "data/raw/train.parquet"),
        pd.read_parquet(work / "data/raw/test.parquet"),
    )


def ingest(work: Path, *reports: Report, **params: Any) -> tuple[dict[str, Any], pd.DataFrame]:
    """Ingest with these reports (a fresh store); the report's feedback entry, the train split."""
    path = work / "feedback/feedback.jsonl"
    path.unlink(missing_ok=True)
    report = run_in_process(work, "data.tsv", feedback=str(store(path, *reports)), **params)
    return report["feedback"], splits(work)[0]


def label_of(train: pd.DataFrame, text: str) -> list[str]:
    return train.loc[train["text"] == text, "label"].tolist()


def flip(label: str) -> str:
    return "spam" if label == "ham" else "ham"


def status(fb: dict[str, Any], reporter: str) -> dict[str, int]:
    r = fb["reporters"][reporter]
    return {k: v for k, v in r.items() if v and k not in ("records", "trusted_reporter")}


def test_one_untrusted_reporter_alone_changes_nothing(work: Path) -> None:
    run_in_process(work, "data.tsv")
    train0, test0 = splits(work)
    text, label = train0["text"].iloc[0], train0["label"].iloc[0]
    before = output_hashes(work)
    fb, train = ingest(
        work,
        (text, flip(label), "mallory"),  # against the training split's label
        (LUNCH, "spam", "mallory"),  # a new message
        (PARCEL[0], "spam", "mallory"),
        ("Your account is fine, nothing to do", "ham", "mallory"),
        (test0["text"].iloc[0], flip(test0["label"].iloc[0]), "mallory"),  # the test split's
    )
    pd.testing.assert_frame_equal(train, train0)
    assert output_hashes(work)["data/raw/train.parquet"] == before["data/raw/train.parquet"]
    assert status(fb, "mallory") == {"quarantined": 4, "in_test_split": 1}
    assert (fb["added"], fb["overridden"], fb["quarantined"]) == (0, 0, 4)
    reasons = {q["text"]: q["reason"] for q in fb["quarantine"]}
    assert reasons == {
        text: "against the training split's label; no other reporter agrees",
        LUNCH: "no other reporter reported it or a similar spam",
        PARCEL[0]: "no other reporter reported it or a similar spam",
        "Your account is fine, nothing to do": "no other reporter reported it",
    }
    entry = fb["quarantine"][0]
    assert entry["sha256"] == trust.text_sha256(entry["text"]) and entry["ids"] == ["r0"]


def test_another_reporter_corroborates_the_same_message(work: Path) -> None:
    run_in_process(work, "data.tsv")
    train0, _ = splits(work)
    text, label = train0["text"].iloc[0], train0["label"].iloc[0]
    fb, train = ingest(
        work,
        (text, flip(label), "ana"),
        (text.upper(), flip(label), "bo"),  # a near-duplicate is the same message
        ("Call 0800 123 456 to claim your 500 pound refund", "spam", "ana"),
        ("call 0800 999 000 to claim your 20 pound refund", "spam", "bo"),
        ("The meeting moved to room 4", "ham", "ana"),
        ("The meeting moved to room 5", "ham", "bo"),
    )
    assert status(fb, "ana") == status(fb, "bo") == {"corroborated": 3}
    assert label_of(train, text) == [flip(label)] and fb["overridden"] == 1
    assert label_of(train, "Call 0800 123 456 to claim your 500 pound refund") == ["spam"]
    assert label_of(train, "The meeting moved to room 4") == ["ham"]
    assert fb["added"] == 2 and len(train) == len(train0) + 2  # one row per message


def test_a_similar_spam_corroborates_a_family_but_not_ham_or_a_flip(work: Path) -> None:
    run_in_process(work, "data.tsv")
    train0, _ = splits(work)
    hams = train0.loc[train0["label"] == "ham", "text"].tolist()
    # Two training ham messages as similar as two of the family ("see you for X at Y later").
    a = hams[0]
    b = next(t for t in hams[1:] if t.split(" at ")[0] == a.split(" at ")[0])
    fb, train = ingest(
        work,
        *[(t, "spam", who) for t, who in zip(PARCEL, ["ana", "bo", "cy", "ana"], strict=True)],
        (LUNCH, "spam", "mallory"),  # not similar to any other report
        ("Your parcel is held at the depot, it is fine, no fee", "ham", "ana"),
        ("Your parcel is waiting at the depot, it is fine, no fee", "ham", "bo"),
        (a, "spam", "mallory"),
        (b, "spam", "cy"),
    )
    assert {who: status(fb, who) for who in ("ana", "bo", "cy", "mallory")} == {
        "ana": {"corroborated": 2, "quarantined": 1},
        "bo": {"corroborated": 1, "quarantined": 1},
        "cy": {"corroborated": 1, "quarantined": 1},
        "mallory": {"quarantined": 2},
    }
    assert all(label_of(train, t) == ["spam"] for t in PARCEL)
    assert {q["text"] for q in fb["quarantine"]} == {
        LUNCH,
        "Your parcel is held at the depot, it is fine, no fee",
        "Your parcel is waiting at the depot, it is fine, no fee",
        a,
        b,
    }
    assert label_of(train, a) == label_of(train, b) == ["ham"]
    # The similarity is a param: at 1, only the same message corroborates.
    fb, _ = ingest(
        work,
        *[(t, "spam", who) for t, who in zip(PARCEL, "abcd", strict=True)],
        feedback_similarity=1.0,
    )
    assert fb["quarantined"] == 4


def test_one_voice_per_reporter_and_message(work: Path) -> None:
    run_in_process(work, "data.tsv")
    variants = [f"Claim your {n} pound prize at 0900 {n:03d} 111" for n in range(1, 21)]
    fb, train = ingest(work, *[(t, "spam", "mallory") for t in variants])
    assert status(fb, "mallory") == {"quarantined": 1, "repeats": 19}
    fb, train = ingest(
        work, *[(t, "spam", "mallory") for t in variants], (variants[0], "spam", "ana")
    )
    assert status(fb, "mallory") == {"corroborated": 1, "repeats": 19}
    assert fb["added"] == 1 and label_of(train, variants[0]) == ["spam"]
    assert fb["quarantine"] == [] and fb["quarantined"] == 0


def test_the_cap_on_an_untrusted_reporter(work: Path) -> None:
    run_in_process(work, "data.tsv")
    texts = [f"Reply {w} to win a {p} voucher" for w in ("YES", "GO", "WIN") for p in "abc"]
    reports = [(t, "spam", who) for t in texts for who in ("ana", "bo")]
    fb, train = ingest(work, *reports, feedback_max_per_reporter=4, max_feedback_shift=0.5)
    assert status(fb, "ana") == status(fb, "bo") == {"corroborated": 4, "capped": 5}
    assert fb["added"] == 4 and fb["capped"] == 10  # in file order: the first four
    assert all(label_of(train, t) == ["spam"] for t in texts[:4])
    (work / "feedback/trust.yaml").write_text("trusted: [ana]\n")
    fb, train = ingest(work, *reports, feedback_max_per_reporter=4, max_feedback_shift=0.5)
    assert status(fb, "ana") == {"trusted": 9} and fb["added"] == 9


def test_trusted_and_released_reports(work: Path) -> None:
    run_in_process(work, "data.tsv")
    train0, _ = splits(work)
    text, label = train0["text"].iloc[0], train0["label"].iloc[0]
    reports = [
        (text, flip(label), "desk"),
        (PARCEL[0], "spam", "desk"),
        (LUNCH, "spam", "mallory"),
        (LUNCH, "ham", "desk2"),
        (PARCEL[1], "ham", None),
        ("a tie", "spam", "desk"),
        ("a tie", "ham", "desk2"),
    ]
    fb, train = ingest(work, *reports)
    assert fb["quarantined"] == 7 and fb["reporters"]["(unnamed)"]["quarantined"] == 1
    reason = {q["text"]: q["reason"] for q in fb["quarantine"]}[PARCEL[1]]
    assert reason == "no reporter named"
    decisions = trust.Trust(
        frozenset({"desk", "desk2"}), frozenset({(trust.text_sha256(PARCEL[1]), "ham")})
    )
    trust.save(decisions)
    assert trust.load() == decisions
    fb, train = ingest(work, *reports)
    assert label_of(train, text) == [flip(label)] and label_of(train, PARCEL[0]) == ["spam"]
    assert label_of(train, LUNCH) == ["ham"]  # a trusted vote decides; mallory's is not one
    assert label_of(train, PARCEL[1]) == ["ham"]  # released with its label
    assert label_of(train, "a tie") == [] and fb["refused"]["tie"] == 2
    assert status(fb, "mallory") == {"quarantined": 1}
    assert status(fb, "(unnamed)") == {"released": 1}
    assert fb["reporters"]["desk"]["trusted_reporter"] is True
    # A release holds for its label only; trusting "(unnamed)" trusts records without reporter.
    trust.save(trust.Trust(released=frozenset({(trust.text_sha256(PARCEL[1]), "spam")})))
    assert status(ingest(work, *reports)[0], "(unnamed)") == {"quarantined": 1}
    trust.save(trust.Trust(trusted=frozenset({trust.UNNAMED})))
    assert status(ingest(work, *reports)[0], "(unnamed)") == {"trusted": 1}


@pytest.mark.parametrize(("policy", "kept"), [("drop", False), ("majority", True)])
def test_the_conflict_policies(work: Path, policy: str, kept: bool) -> None:
    run_in_process(work, "data.tsv")
    train0, _ = splits(work)
    text, label = train0["text"].iloc[0], train0["label"].iloc[0]
    (work / "feedback").mkdir()
    (work / "feedback/trust.yaml").write_text("trusted: [desk, desk2]\n")
    fb, train = ingest(work, (text, flip(label), "desk"), on_feedback_conflict=policy)
    assert text not in set(train["text"])  # drop; majority: 1 vote against 1, a tie drops
    fb, train = ingest(
        work, (text, flip(label), "desk"), (text, flip(label), "desk2"), on_feedback_conflict=policy
    )
    assert label_of(train, text) == ([flip(label)] if kept else [])
    assert (fb["refused"]["conflict"], fb["overridden"]) == ((0, 1) if kept else (2, 0))


def test_the_class_balance_guard_refuses_mass_reports(work: Path) -> None:
    run_in_process(work, "data.tsv")
    before = output_hashes(work)
    (work / "feedback").mkdir()
    (work / "feedback/trust.yaml").write_text("trusted: [desk]\n")
    fb = store(
        work / "fb.jsonl", *[(f"totally normal message {w}", "spam", "desk") for w in "abcdefghij"]
    )
    proc = run_script(work, "data.tsv", feedback=str(fb))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "the feedback would move the training split's spam share from 20.8% to" in proc.stderr
    assert "ingest.max_feedback_shift = 0.1" in proc.stderr
    assert output_hashes(work) == before  # nothing written
    assert run_script(work, "data.tsv", feedback=str(fb), max_feedback_shift=0.5).returncode == 0


def test_the_report_metrics_and_one_log_line_per_reporter(
    work: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sentinelle"):
        fb, _ = ingest(
            work,
            *[(t, "spam", "ana") for t in PARCEL[:2]],
            (PARCEL[2], "spam", "bo"),
            (LUNCH, "spam", "mallory"),
            (LUNCH.upper(), "spam", "mallory"),
        )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("feedback from")]
    assert lines == [
        "feedback from 'ana' (untrusted): 2 records: 2 merged (corroborated)",
        "feedback from 'bo' (untrusted): 1 records: 1 merged (corroborated)",
        "feedback from 'mallory' (untrusted): 2 records: 1 quarantined, 1 repeats",
    ]
    metrics = json.loads((work / "dvclive/ingest/metrics.json").read_text())["feedback"]
    assert metrics["quarantined"] == 1 and metrics["corroborated"] == 3
    assert metrics["repeats"] == 1 and metrics["capped"] == 0 and metrics["added"] == 3
    assert fb["messages"] == 4 and fb["records"] == 5


def test_a_bad_line_is_skipped_and_counted(work: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = store(work / "fb.jsonl", (PARCEL[0], "spam", "ana"), (PARCEL[1], "spam", "bo"))
    with path.open("ab") as fh:
        fh.write(b'{"text": "no label"}\n{"text": "torn", "lab')
    with caplog.at_level(logging.WARNING, logger="sentinelle"):
        fb = run_in_process(work, "data.tsv", feedback=str(path))["feedback"]
    assert (fb["records"], fb["skipped_lines"], fb["added"]) == (2, 2, 2)
    assert [p["line"] for p in fb["problems"]] == [3, 4]
    assert "label None is invalid" in fb["problems"][0]["reason"]
    assert "line 4 skipped: incomplete" in caplog.text


def test_ingest_imports_scipy_only_to_compare_spam_reports() -> None:
    code = "import sys, ingest; sys.exit('scipy' in sys.modules)"  # docs/performance.md
    proc = subprocess.run(
        [sys.executable, "-c", code], env={**env(), "PYTHONPATH": str(ROOT / "src")}
    )
    assert proc.returncode == 0


def test_no_feedback_leaves_the_outputs_as_before(work: Path) -> None:
    run_in_process(work, "data.tsv")
    before = output_hashes(work)
    fb = work / "empty.jsonl"
    fb.write_bytes(b"")
    report = run_in_process(work, "data.tsv", feedback=str(fb))
    assert report["feedback"]["records"] == 0
    run_in_process(work, "data.tsv")
    assert output_hashes(work) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("trusted: [a\n", "feedback/trust.yaml: not valid YAML:"),
        ("trustd: [a]\n", "feedback/trust.yaml: holds 'trustd'; allowed: a mapping of"),
        ("trusted: a\n", "feedback/trust.yaml: trusted = 'a' is invalid: must be a list"),
        (
            "released: [{sha256: abc, label: spam}]\n",
            "feedback/trust.yaml: released entry 1 = {'sha256': 'abc', 'label': 'spam'} is "
            "invalid: must be {sha256: <64 lower-case hex digits>, label: spam|ham}",
        ),
    ],
)
def test_a_bad_trust_file_is_a_one_line_error(work: Path, content: str, message: str) -> None:
    run_in_process(work, "data.tsv")
    before = output_hashes(work)
    (work / "feedback").mkdir()
    (work / "feedback/trust.yaml").write_text(content)
    with pytest.raises(UserError) as info:
        trust.load()
    assert str(info.value).startswith(message)
    fb = store(work / "fb.jsonl", (LUNCH, "spam", "ana"))
    proc = run_script(work, "data.tsv", feedback=str(fb))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr and output_hashes(work) == before


@pytest.mark.slow  # a dozen `sentinelle feedback` runs
def test_the_operator_commands(work: Path) -> None:
    proc = sentinelle("feedback", "quarantine", cwd=work, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "data/report.json: not found: run `dvc repro` with ingest.feedback set" in proc.stderr
    ingest(work, (LUNCH, "spam", "mallory"), (PARCEL[0], "spam", "ana"), (PARCEL[0], "ham", "bo"))
    out = sentinelle("feedback", "quarantine", cwd=work).stdout.splitlines()
    assert len(out) == 3  # sorted by reporter
    assert out[1] == (
        f"{trust.text_sha256(PARCEL[0])[:12]}  ham   bo  score -  id r2  "
        f"no other reporter reported it  {json.dumps(PARCEL[0])}"
    )
    assert (
        sentinelle("feedback", "quarantine", "--reporter", "mallory", cwd=work).stdout.count("\n")
        == 1
    )
    # An id names one report; a hash prefix names two here (one text, both labels).
    proc = sentinelle(
        "feedback", "release", trust.text_sha256(PARCEL[0])[:8], cwd=work, check=False
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "names 2 quarantined reports" in proc.stderr and "give more of the hash, or --label" in (
        proc.stderr
    )
    proc = sentinelle("feedback", "release", "r9", cwd=work, check=False)
    assert proc.returncode == 2 and "'r9': no quarantined report has this id" in proc.stderr
    release = sentinelle(
        "feedback", "release", trust.text_sha256(PARCEL[0])[:8], "--label", "spam", cwd=work
    )
    assert release.stdout.startswith(f"released: {trust.text_sha256(PARCEL[0])[:12]} (spam,")
    sentinelle("feedback", "trust", "bo", cwd=work)
    assert yaml.safe_load((work / "feedback/trust.yaml").read_text()) == {
        "trusted": ["bo"],
        "released": [{"sha256": trust.text_sha256(PARCEL[0]), "label": "spam"}],
    }
    fb, train = ingest(
        work, (LUNCH, "spam", "mallory"), (PARCEL[0], "spam", "ana"), (PARCEL[0], "ham", "bo")
    )
    # The released spam vote and trusted bo's ham vote tie: the message is refused.
    assert fb["refused"]["tie"] == 2 and label_of(train, PARCEL[0]) == []
    assert fb["quarantined"] == 1
    sentinelle("feedback", "trust", "--remove", "bo", cwd=work)
    sentinelle("feedback", "release", "--remove", trust.text_sha256(PARCEL[0])[:8], cwd=work)
    assert trust.load() == trust.Trust()
    proc = sentinelle("feedback", "trust", "--remove", "bo", cwd=work, check=False)
    assert proc.returncode == 2 and "feedback/trust.yaml: 'bo' is not trusted" in proc.stderr
    proc = sentinelle("feedback", "trust", "typo", cwd=work)
    assert "'typo' has no reports in data/report.json (a typo?)" in proc.stderr
    proc = sentinelle("feedback", "trust", "Not A Name", cwd=work, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "reporter 'Not A Name' is invalid: a token's name" in proc.stderr
