"""``sentinelle monitor``: compare a batch of messages with the model's reference profile.

The batch is any file ``sentinelle score`` reads (CSV, TSV, JSON Lines, plain text).
With a ``spam_score`` column it is taken as already scored by the same model (its
``model_version`` column, when present, must be the reference's) and not rescored;
with a ``label`` column (spam/ham) the real precision, recall and ham FPR are reported
too. Writes ``DIR/monitor.json`` (every figure), ``DIR/report.html`` (a page a person
reads) and DVCLive metrics and plots in ``DIR/dvclive``. Exit code 0: no drift; 1: drift
(one line per failed check on stderr); 2: bad input.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentinelle import io
from sentinelle.errors import UserError
from sentinelle.params import MonitorParams
from sentinelle.production.monitoring import drift, drift_page, reference
from sentinelle.production.monitoring.descriptors import FLAGS, describe, unseen_shares
from sentinelle.serving.rows import Reader, column_value, detect_format, is_spam_label
from sentinelle.serving.scorer import Scorer

log = logging.getLogger("sentinelle")


@dataclass
class Rows:
    texts: list[str]
    scores: list[float] | None
    labels: list[bool] | None
    versions: set[str]


def read_rows(
    path: Path, fmt: str | None, text_column: str, label_column: str, encoding: str
) -> Rows:
    """Every row of the batch: text, and its score and label when the batch has them."""
    name = str(path)
    in_fmt = detect_format(path, fmt, default="txt")
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UserError(f"{path}: cannot read input: {exc.strerror}") from None
    out = Rows([], [], [], set())
    with fh:
        reader = Reader(fh, in_fmt, text_column, encoding, name)
        for row, line, record, text, problem in reader.rows():
            if problem is not None:
                raise UserError(f"{name}: row {row} (line {line}): {problem}")
            out.texts.append(text)  # type: ignore[arg-type]
            score = column_value(record, reader.header, "spam_score")
            label = column_value(record, reader.header, label_column)
            version = column_value(record, reader.header, "model_version")
            if version is not None:
                out.versions.add(str(version))
            if out.scores is not None and score is not None:
                try:
                    value = float(score)
                except (TypeError, ValueError):
                    value = math.nan
                if not 0 <= value <= 1:
                    raise UserError(
                        f"{name}: row {row} (line {line}): spam_score {score!r} is not a number "
                        "in [0, 1]"
                    )
                out.scores.append(value)
            elif score is None:
                out.scores = None
            if out.labels is not None and label is not None:
                spam = is_spam_label(label)
                if spam is None:
                    raise UserError(
                        f"{name}: row {row} (line {line}): {label_column} {label!r} is not a "
                        "label; allowed: spam, ham (or 1/0, true/false)"
                    )
                out.labels.append(spam)
            elif label is None:
                out.labels = None
    if not out.texts:
        raise UserError(f"{name}: empty batch: no messages to monitor")
    return out


def profile(rows: Rows, scorer: Scorer) -> drift.Batch:
    """Scores (the batch's own, else the model's), descriptors and unseen n-gram shares."""
    scores = (
        np.asarray(rows.scores, dtype=np.float64)
        if rows.scores is not None
        else scorer.scores(rows.texts)
    )
    analyzer, vocabulary = reference.ngram_checker(scorer.model)
    normalised = [scorer.normaliser(t) for t in rows.texts]
    return drift.Batch(
        scores=scores,
        descriptors=describe(rows.texts),
        unseen=unseen_shares(normalised, analyzer, vocabulary),
        is_spam=None if rows.labels is None else np.asarray(rows.labels, dtype=bool),
    )


def log_live(out: Path, ref: dict[str, Any], batch: drift.Batch, summary: dict[str, Any]) -> None:
    """Metrics and plots for `dvc metrics show` / `dvc plots show` in ``out``."""
    from dvclive import Live

    edges = np.linspace(0, 1, 11)
    ref_hist = np.histogram(ref["scores"]["sample"], edges)[0] / len(ref["scores"]["sample"])
    batch_hist = np.histogram(batch.scores, edges)[0] / len(batch.scores)
    with Live(str(out), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        live.log_metric("drift", int(summary["drift"]), plot=False)
        live.log_metric("messages", summary["messages"], plot=False)
        for name, check in summary["checks"].items():
            live.log_metric(f"checks/{name}", check["value"], plot=False)
            live.log_metric(f"passed/{name}", int(check["passed"]), plot=False)
        for name, value in summary["estimated"].items():
            live.log_metric(f"estimated/{name}", value, plot=False)
        for name, value in summary.get("actual", {}).items():
            live.log_metric(f"actual/{name}", value, plot=False)
        live.log_plot(
            "scores",
            [
                {
                    "bin": f"{lo:.1f}-{hi:.1f}",
                    "reference": round(float(r), 6),
                    "batch": round(float(b), 6),
                }
                for lo, hi, r, b in zip(edges[:-1], edges[1:], ref_hist, batch_hist, strict=True)
            ],
            x="bin",
            y=["reference", "batch"],
            template="linear",
            title="Spam scores: share of messages per bin",
        )
        live.log_plot(
            "descriptors",
            [
                {
                    "descriptor": f,
                    "reference": ref["descriptors"][f],
                    "batch": round(float(batch.descriptors[f].mean()), 6),
                }
                for f in FLAGS
            ],
            x="descriptor",
            y=["reference", "batch"],
            template="bar_horizontal",
            title="Share of messages with each descriptor",
        )


def monitor(
    source: Path,
    out: Path,
    *,
    scorer: Scorer,
    reference_path: Path,
    params: MonitorParams,
    fmt: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    encoding: str = "utf-8",
) -> tuple[dict[str, Any], list[drift.Check]]:
    """Run every check on the batch ``source`` and write the outputs into ``out``."""
    ref = reference.load(reference_path)
    if ref["model_version"] != scorer.version:
        raise UserError(
            f"{reference_path}: the reference profile is of model {ref['model_version']}, "
            f"not of the loaded {scorer.version}; use the reference.json written with it"
        )
    rows = read_rows(source, fmt, text_column, label_column, encoding)
    if rows.scores is not None and rows.versions - {scorer.version}:
        raise UserError(
            f"{source}: scored by {', '.join(sorted(rows.versions))}, not by the reference's "
            f"model {scorer.version}; drop the spam_score column to rescore"
        )
    batch = profile(rows, scorer)
    checks = drift.run_checks(ref, batch, params)
    summary = drift.summary(ref, batch, checks)
    summary["rescored"] = rows.scores is None
    io.write_json(out / "monitor.json", summary)
    log_live(out / "dvclive", ref, batch, summary)
    io.write_text(
        out / "report.html",
        drift_page.page(summary, checks, drift_page.charts(ref, batch), source.name),
    )
    return summary, checks
