"""Feedback into the training data (``ingest.feedback``): reported verdicts from the
feedback store (``sentinelle.feedback_store``) merged into the training split, under rules that keep
any one reporter from moving the model.

A *reporter* is a record's ``reporter`` (the API token's name); records without one (older
files, `feedback add` without ``--reporter``) are the one reporter ``(unnamed)``, which no one
can be held to: it neither corroborates nor is corroborated. A *message* is a canonical form
(``text.canonical``): near-duplicates (other numbers, links, spacing, case, obfuscation) are
one message. The operator's decisions (``feedback/trust.yaml``, ``sentinelle.data.trust``)
name trusted reporters and released reports.

The rules, in order. Each record lands in one count of its reporter's entry in the data
report (``too_long``, ``in_test_split``, ``repeats``, ``unchanged``, ``trusted``, ``released``,
``corroborated``, ``quarantined``, ``capped``):

1. **Refused**: a text longer than ``ingest.max_chars`` (``too_long``), or a message in the test
   split (``in_test_split``): the test split is the source's alone, so test metrics stay
   comparable from one retrain to the next.
2. **One voice**: a reporter has one vote per message, their first report of it; the others are
   ``repeats``. A vote for the label the training split already gives the message changes
   nothing (``unchanged``).
3. **Trust**: a trusted reporter's vote (``trusted``), or a vote for a released text with its
   label (``released``), is merged as it is.
4. **Corroboration**: an untrusted vote is merged only when another reporter voted the same label
   for the same message, or, for a spam vote on a message the training split lacks, for a
   *similar* one (cosine of their word 1-2-gram sets at least ``ingest.feedback_similarity``):
   a scam family reported by several people. A ham vote, or one against the training split's
   label, needs the same message: ten spam texts labelled ham lift the threshold over them
   (docs/monitoring.md). Otherwise it is ``quarantined``: listed in the report (``sentinelle
   feedback quarantine``), never merged, until corroborated or released. The serving model's
   score plays no part: reports it agrees with poison too.
5. **Cap**: an untrusted reporter's corroborated votes are merged up to
   ``ingest.feedback_max_per_reporter``, in file order; the rest are ``capped``.
6. **Decision**: a message's merged votes decide by majority, trusted and released votes alone
   when it has any; a tie refuses them all (``refused.tie``). A new message joins the training
   split as one row (its first reported text); for one the training split has,
   ``ingest.on_feedback_conflict`` says what the other label does: ``feedback`` (its rows take
   it, ``overridden``), ``drop`` (its rows leave, ``refused.conflict``), ``majority`` (the
   training split is one more vote; a tie drops).
7. **The class-balance guard**: when the merge would move the training split's spam share by
   more than ``ingest.max_feedback_shift``, the run stops with a one-line error.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from sentinelle import feedback_store
from sentinelle.data import sources
from sentinelle.data.trust import UNNAMED, Trust, reporter_key, text_sha256
from sentinelle.errors import UserError
from sentinelle.params import IngestParams
from sentinelle.text.canonical import canonical_many

__all__ = ["merge", "read", "summary_lines"]

NOTE = "feedback goes to the training split only; the test split is the source's"
EXCERPT = 120  # characters of a quarantined text shown in the report
_WORD = re.compile(r"\w+")
MERGED = ("trusted", "released", "corroborated")  # the statuses of the votes that count


@dataclass
class Vote:
    """One reporter's vote for one message (their first report of it)."""

    reporter: str
    form: str
    label: str
    text: str
    score: float | None
    order: int  # the record's place in the file
    ids: list[str] = field(default_factory=list)
    status: str = ""  # unchanged, trusted, released, corroborated, quarantined or capped
    reason: str = ""  # why it is quarantined


def read(p: IngestParams) -> feedback_store.Parsed:
    """The feedback records at ``p.feedback`` (a path, http(s):// URL or s3:// object); a bad
    or torn line is skipped, counted and logged."""
    assert p.feedback is not None
    fetched = sources.fetch(dataclasses.replace(p, source=p.feedback, sha256=None, member=None))
    parsed = feedback_store.scan(fetched.data, fetched.where)
    parsed.warn(fetched.where)
    return parsed


def merge(
    train: pd.DataFrame,
    test: pd.DataFrame,
    parsed: feedback_store.Parsed,
    p: IngestParams,
    trust: Trust,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The training split with the feedback merged in, and the report's ``feedback`` entry."""
    records = parsed.records
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    votes = _votes(records, set(canonical_many(test["text"])) if records else set(), p, counts)
    # The training rows of each message voted for, and the labels the training split gives it.
    voted = {v.form for v in votes}
    rows_of: dict[str, list[int]] = defaultdict(list)
    for i, form in enumerate(canonical_many(train["text"]) if votes else []):
        if form in voted:
            rows_of[form].append(i)
    labels = train["label"].to_numpy(dtype=object)
    source = {form: set(labels[rows]) for form, rows in rows_of.items()}
    _judge(votes, source, trust, p)
    _cap(votes, p.feedback_max_per_reporter)
    outcome: Counter[str] = Counter()
    merged = _apply(train, rows_of, source, _decide(votes, outcome), p, outcome)
    before = float((train["label"] == "spam").mean())
    after = float((merged["label"] == "spam").mean())
    if abs(after - before) > p.max_feedback_shift:
        raise UserError(
            f"{p.feedback}: the feedback would move the training split's spam share from "
            f"{before:.1%} to {after:.1%}, more than ingest.max_feedback_shift = "
            f"{p.max_feedback_shift:g} allows (mass reports?); check the file, or raise the "
            "limit if the shift is real"
        )
    return merged, _report(parsed, votes, counts, trust, outcome, before, after, p)


def _votes(
    records: list[feedback_store.Record],
    test_forms: set[str],
    p: IngestParams,
    counts: dict[str, Counter[str]],
) -> list[Vote]:
    """Rules 1 and 2: the votes, in file order, after the refusals and the repeats."""
    votes: dict[tuple[str, str], Vote] = {}
    for order, (rec, form) in enumerate(
        zip(records, canonical_many([r.text for r in records]), strict=True)
    ):
        who = reporter_key(rec.reporter)
        counts[who]["records"] += 1
        if len(rec.text) > p.max_chars:
            counts[who]["too_long"] += 1
        elif form in test_forms:
            counts[who]["in_test_split"] += 1
        elif (who, form) in votes:
            counts[who]["repeats"] += 1
            if rec.id is not None:
                votes[who, form].ids.append(rec.id)
        else:
            votes[who, form] = Vote(who, form, rec.label, rec.text, rec.score, order)
            if rec.id is not None:
                votes[who, form].ids.append(rec.id)
    return list(votes.values())


def _judge(votes: list[Vote], source: dict[str, set[str]], trust: Trust, p: IngestParams) -> None:
    """Rules 2-4: unchanged, trusted, released, corroborated or quarantined."""
    named = [v for v in votes if v.reporter != UNNAMED]  # no one can be held to the others
    voters: dict[tuple[str, str], set[str]] = defaultdict(set)  # (message, label) -> reporters
    for v in named:
        voters[v.form, v.label].add(v.reporter)
    family = _family_corroborated(
        [v for v in named if v.label == "spam"],
        lambda v: v.form not in source,
        p.feedback_similarity,
    )
    for v in votes:
        if source.get(v.form) == {v.label}:
            v.status = "unchanged"
        elif v.reporter in trust.trusted:
            v.status = "trusted"
        elif (text_sha256(v.text), v.label) in trust.released:
            v.status = "released"
        elif v.reporter != UNNAMED and (len(voters[v.form, v.label]) > 1 or v.order in family):
            v.status = "corroborated"
        else:
            v.status = "quarantined"
            v.reason = _why_quarantined(v, source)


def _why_quarantined(v: Vote, source: dict[str, set[str]]) -> str:
    if v.reporter == UNNAMED:
        return "no reporter named"
    if v.form in source:
        return "against the training split's label; no other reporter agrees"
    if v.label == "ham":
        return "no other reporter reported it"
    return "no other reporter reported it or a similar spam"


def _grams(form: str) -> set[str]:
    words = _WORD.findall(form)
    return {*words, *(f"{a} {b}" for a, b in pairwise(words))}


def _family_corroborated(
    spam: list[Vote], eligible: Callable[[Vote], bool], threshold: float
) -> set[int]:
    """``order`` of each eligible spam vote that another reporter's spam vote is similar to:
    cosine of the two messages' word 1-2-gram sets at least ``threshold``."""
    if len(spam) < 2:
        return set()
    from scipy import sparse  # here: every other ingest run would pay its import (performance.md)

    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, v in enumerate(spam):
        for gram in _grams(v.form):
            rows.append(i)
            cols.append(vocab.setdefault(gram, len(vocab)))
    x = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(spam), len(vocab)))
    sizes = np.asarray(x.sum(axis=1)).ravel()
    x = sparse.diags(1 / np.sqrt(np.maximum(sizes, 1))) @ x
    owner = np.unique([v.reporter for v in spam], return_inverse=True)[1]
    wanted = np.array([i for i, v in enumerate(spam) if eligible(v)], dtype=np.int64)
    out: set[int] = set()
    for start in range(0, len(wanted), 256):  # 256 rows at a time bound the product's memory
        chunk = wanted[start : start + 256]
        sims = (x[chunk] @ x.T).tocoo()
        hit = (sims.data >= threshold - 1e-9) & (owner[chunk[sims.row]] != owner[sims.col])
        out.update(spam[i].order for i in chunk[np.unique(sims.row[hit])])
    return out


def _cap(votes: list[Vote], cap: int) -> None:
    """Rule 5: each untrusted reporter's corroborated votes beyond ``cap`` are capped."""
    taken: Counter[str] = Counter()
    for v in sorted(votes, key=lambda v: v.order):
        if v.status == "corroborated":
            taken[v.reporter] += 1
            if taken[v.reporter] > cap:
                v.status = "capped"


def _decide(votes: list[Vote], outcome: Counter[str]) -> dict[str, tuple[list[Vote], Vote]]:
    """Rule 6: each message's deciding votes (trusted and released ones alone when it has
    any) and the winning vote (the first for the majority label); ties refused."""
    by_form: dict[str, list[Vote]] = defaultdict(list)
    for v in sorted(votes, key=lambda v: v.order):
        if v.status in MERGED:
            by_form[v.form].append(v)
    decided = {}
    for form, merged in by_form.items():
        deciding = [v for v in merged if v.status != "corroborated"] or merged
        ranked = Counter(v.label for v in deciding).most_common()
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            outcome["tie"] += len(merged)
            continue
        decided[form] = (deciding, next(v for v in deciding if v.label == ranked[0][0]))
    return decided


def _apply(
    train: pd.DataFrame,
    rows_of: dict[str, list[int]],
    source: dict[str, set[str]],
    decided: dict[str, tuple[list[Vote], Vote]],
    p: IngestParams,
    outcome: Counter[str],
) -> pd.DataFrame:
    """Rule 6's merge: new messages added, ``ingest.on_feedback_conflict`` for the others."""
    labels = train["label"].to_numpy(dtype=object).copy()
    keep = np.ones(len(train), dtype=bool)
    new: list[Vote] = []
    for form, (deciding, winner) in decided.items():
        if form not in rows_of:
            new.append(winner)
            continue
        rows, label, policy = rows_of[form], winner.label, p.on_feedback_conflict
        if policy == "majority":  # the training split's label is one more vote
            ranked = (Counter(v.label for v in deciding) + Counter(source[form])).most_common()
            policy = "drop" if len(ranked) > 1 and ranked[0][1] == ranked[1][1] else "feedback"
            label = ranked[0][0]
        if policy == "drop":
            keep[rows] = False
            outcome["conflict"] += len(deciding)
        elif source[form] != {label}:
            labels[rows] = label
            outcome["overridden"] += 1
    outcome["added"] = len(new)
    # Each new message is a near-duplicate group of its own, numbered after the existing ones.
    first = int(train["group"].max()) + 1 if len(train) else 0
    added = pd.DataFrame(
        {
            "text": [v.text for v in new],
            "label": [v.label for v in new],
            "group": np.arange(first, first + len(new), dtype=np.int64),
        }
    )
    # The split's own dtypes, so that a merge that changes nothing writes the same bytes.
    relabelled = train.assign(
        label=pd.Series(labels, index=train.index).astype(train["label"].dtype)
    )
    dtypes = train.dtypes.to_dict()
    return pd.concat([relabelled[keep], added.astype(dtypes)], ignore_index=True).astype(dtypes)


def _report(
    parsed: feedback_store.Parsed,
    votes: list[Vote],
    counts: dict[str, Counter[str]],
    trust: Trust,
    outcome: Counter[str],
    before: float,
    after: float,
    p: IngestParams,
) -> dict[str, Any]:
    """The data report's ``feedback`` entry: totals, one entry per reporter, the quarantine."""
    for v in votes:
        counts[v.reporter][v.status] += 1
    statuses = (*MERGED, "unchanged", "quarantined", "capped")
    reporters = {
        who: {
            "trusted_reporter": who in trust.trusted,
            **{k: c[k] for k in ("records", *statuses, "repeats", "in_test_split", "too_long")},
        }
        for who, c in sorted(counts.items())
    }
    total = {k: sum(r[k] for r in reporters.values()) for k in (*statuses, "repeats")}
    quarantine = [
        {
            "sha256": text_sha256(v.text),
            "label": v.label,
            "reporter": v.reporter,
            "ids": v.ids,
            "score": v.score,
            "reason": v.reason,
            "text": v.text[:EXCERPT],
        }
        for v in sorted(votes, key=lambda v: (v.reporter, v.order))
        if v.status == "quarantined"
    ]
    return {
        "source": p.feedback,
        "records": len(parsed.records),
        "skipped_lines": parsed.skipped,
        "problems": [{"line": s.line, "reason": s.reason} for s in parsed.problems],
        "messages": len({v.form for v in votes}),
        **total,
        "added": outcome["added"],
        "overridden": outcome["overridden"],
        "refused": {
            "in_test_split": sum(c["in_test_split"] for c in counts.values()),
            "too_long": sum(c["too_long"] for c in counts.values()),
            "tie": outcome["tie"],
            "conflict": outcome["conflict"],
        },
        "reporters": reporters,
        "quarantine": quarantine,
        "train_spam_share": {"before": round(before, 6), "after": round(after, 6)},
        "note": NOTE,
    }


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One log line per reporter: what became of their reports."""
    lines = []
    for who, r in report["reporters"].items():
        parts = [
            f"{r[k]} {name}"
            for k, name in (
                ("trusted", "merged (trusted)"),
                ("released", "merged (released)"),
                ("corroborated", "merged (corroborated)"),
                ("unchanged", "unchanged"),
                ("quarantined", "quarantined"),
                ("capped", "over the cap"),
                ("repeats", "repeats"),
                ("in_test_split", "refused (in the test split)"),
                ("too_long", "refused (too long)"),
            )
            if r[k]
        ]
        kind = "trusted" if r["trusted_reporter"] else "untrusted"
        lines.append(
            f"feedback from {who!r} ({kind}): {r['records']} records: {', '.join(parts) or 'none'}"
        )
    return lines
