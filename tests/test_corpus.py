"""The synthetic benchmark corpus: unique, class ratio kept, deterministic."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from helpers import ROOT
from sentinelle.data.formats import parse
from sentinelle.data.sources import bundled_bytes, fetch
from sentinelle.params import load
from sentinelle_tools.benchmarks.corpus import generate, read_base, write_uci


def base(tmp_path: Path) -> dict[str, list[str]]:
    path = tmp_path / "base.tsv"
    path.write_bytes(bundled_bytes())
    return read_base(path)


def test_generated_messages_are_unique_labelled_and_keep_the_class_ratio(tmp_path: Path) -> None:
    b = base(tmp_path)
    rows = generate(b, 20000, seed=3)
    assert len(rows) == 20000
    assert len({text for _, text in rows}) == 20000
    spam_share = sum(label == "spam" for label, _ in rows) / len(rows)
    assert abs(spam_share - len(b["spam"]) / (len(b["spam"]) + len(b["ham"]))) < 0.001
    spam_words = {w for t in b["spam"] for w in t.split()}
    ham_words = {w for t in b["ham"] for w in t.split()}
    for label, text in rows[:200]:  # words come from the chain of their own class
        assert set(text.split()) <= (spam_words if label == "spam" else ham_words)


def test_same_seed_same_bytes_and_readable_by_ingest(tmp_path: Path) -> None:
    b = base(tmp_path)
    write_uci(generate(b, 3000, seed=1), tmp_path / "a.tsv")
    write_uci(generate(b, 3000, seed=1), tmp_path / "b.tsv")
    write_uci(generate(b, 3000, seed=2), tmp_path / "c.tsv")
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    assert (tmp_path / "a.tsv").read_bytes() != (tmp_path / "c.tsv").read_bytes()
    ingest = dataclasses.replace(load(ROOT / "params.yaml").ingest, source=str(tmp_path / "a.tsv"))
    parsed = parse(fetch(ingest), ingest)
    assert parsed.format == "uci"
    assert len(parsed.records.texts) == 3000
