"""The `sentinelle` commands of the production loop: report, gate, monitor, feedback, compare.

``add_commands`` registers them on the CLI's subparsers (``sentinelle.cli``); each command
imports what only it needs (scipy, matplotlib, scikit-learn's metrics: 0.6 to 2 s) when it runs,
so the other commands start without them (``python -X importtime`` shows the figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentinelle import feedback_store, io, paths
from sentinelle.data import trust
from sentinelle.errors import UserError
from sentinelle.params import DEFAULT_PARAMS
from sentinelle.params import load as load_params
from sentinelle.production.feedback_import import read_file
from sentinelle.production.review import gate, results
from sentinelle.serving import tokens
from sentinelle.serving.rows import FORMATS
from sentinelle.serving.scorer import Scorer

log = logging.getLogger("sentinelle")


def _throughput(target: str) -> float:
    """Messages per second scoring the raw test split with the workspace's model."""
    if target != "workspace":
        raise UserError(
            f"gate.min_throughput is measured with the workspace's model, not {target!r}: "
            "use --target workspace, or set gate.min_throughput: null"
        )
    split = paths.RAW / "test.parquet"
    if not split.is_file():
        raise UserError(f"{split}: not found (gate.min_throughput scores it): run `dvc repro`")
    texts = io.read_table(split, columns=["text"])["text"].tolist()
    scorer = Scorer.load(paths.MODEL)
    scorer.scores(texts[:100])  # warm-up
    batch = (texts * (1 + 5000 // max(1, len(texts))))[:5000]
    start = time.perf_counter()
    for i in range(0, len(batch), 1000):
        scorer.scores(batch[i : i + 1000])
    rate = len(batch) / (time.perf_counter() - start)
    log.info("scored %d messages of %s: %.0f messages/s", len(batch), split, rate)
    return rate


def _verdict(args: argparse.Namespace, need_baseline: bool) -> tuple[Any, Any, Any]:
    root = Path(".")
    rules = load_params(args.params).gate
    base = results.load(root, results.resolve(root, args.baseline)) if args.baseline else None
    if need_baseline and base is None:
        raise UserError("--baseline REF is required (a git revision such as main)")
    target = results.load(root, results.resolve(root, args.target))
    rate = _throughput(args.target) if rules.min_throughput is not None else None
    return base, target, gate.evaluate(rules, target, base, rate)


def _gate(args: argparse.Namespace) -> int:
    _, _, verdict = _verdict(args, need_baseline=False)
    for check in verdict.checks:
        print(check.line())
    print(verdict.summary())
    return 0 if verdict.passed else 1


def _report(args: argparse.Namespace) -> int:
    from sentinelle.production.review import report  # matplotlib (+0.6 s): only `report` pays

    base, target, verdict = _verdict(args, need_baseline=True)
    out = report.write(args.output, base, target, verdict)
    print(out)
    log.info("gate %s", verdict.summary())
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from sentinelle.production.monitor import monitor  # scipy, matplotlib: only `monitor` pays

    params = load_params(args.params).monitor
    scorer = Scorer.load(args.model, args.metadata)
    summary, checks = monitor(
        Path(args.input),
        args.output,
        scorer=scorer,
        reference_path=args.reference,
        params=params,
        fmt=args.format,
        text_column=args.text_column,
        label_column=args.label_column,
        encoding=args.encoding,
    )
    failed = [c for c in checks if not c.passed]
    for check in failed:
        sys.stderr.write(f"sentinelle monitor: drift: {check.line()}\n")
    log.info(
        "%d messages, %d of %d checks passed%s; report: %s",
        summary["messages"],
        len(checks) - len(failed),
        len(checks),
        "" if summary["rescored"] else " (scores read from the input)",
        args.output / "report.html",
    )
    return 1 if failed else 0


def _feedback(args: argparse.Namespace) -> int:
    if args.action in ("trust", "release", "quarantine"):
        return {"trust": _trust, "release": _release, "quarantine": _quarantine}[args.action](args)
    store = feedback_store.Store(args.file)
    if args.action == "stats":
        print(json.dumps(store.stats(), sort_keys=True))
        return 0
    if not tokens.NAME.fullmatch(args.reporter):
        raise UserError(
            f"--reporter {args.reporter[:80]!r} is invalid: a name like a token's (1 to 64 of "
            "a-z 0-9 _ . -, starting with a letter or digit)"
        )
    if args.action == "add":
        records = [
            feedback_store.record(
                args.text, args.label, args.id, args.source, reporter=args.reporter, where="TEXT"
            )
        ]
    else:
        records = read_file(
            Path(args.input),
            fmt=args.format,
            text_column=args.text_column,
            label_column=args.label_column,
            id_column=args.id_column,
            source=args.source,
            reporter=args.reporter,
            encoding=args.encoding,
        )
    results = store.add_many(records)
    stored = sum(new for _, new in results)
    if args.action == "add":
        print(json.dumps(dataclasses.asdict(results[0][0]), ensure_ascii=False, sort_keys=True))
    log.info(
        "stored %d record(s) in %s%s",
        stored,
        args.file,
        f"; {len(results) - stored} already stored (same id)" if stored < len(results) else "",
    )
    return 0


def _quarantined(report: Path) -> list[dict[str, Any]]:
    try:
        data = io.read_json(report)
    except FileNotFoundError:
        raise UserError(f"{report}: not found: run `dvc repro` with ingest.feedback set") from None
    except ValueError as exc:
        raise UserError(f"{report}: not valid JSON: {exc}") from None
    return trust.quarantined(data, str(report))


def _trust(args: argparse.Namespace) -> int:
    decisions = trust.load(args.trust)
    name = args.name
    if not (tokens.NAME.fullmatch(name) or name == trust.UNNAMED):
        raise UserError(
            f"reporter {name[:80]!r} is invalid: a token's name (1 to 64 of a-z 0-9 _ . -, "
            f"starting with a letter or digit), or {trust.UNNAMED!r} for records without one"
        )
    if args.remove:
        if name not in decisions.trusted:
            raise UserError(f"{args.trust}: {name!r} is not trusted")
        trusted = decisions.trusted - {name}
    else:
        trusted = decisions.trusted | {name}
    trust.save(trust.Trust(trusted, decisions.released), args.trust)
    print(f"{'no longer trusted' if args.remove else 'trusted'}: {name} ({args.trust})")
    if not args.remove and args.report.is_file():
        try:
            entry = io.read_json(args.report).get("feedback") or {}
        except (ValueError, AttributeError):
            entry = {}  # only a hint: an unreadable report is `quarantine`'s error to give
        if name not in entry.get("reporters", {}):
            log.warning("%r has no reports in %s (a typo?)", name, args.report)
    return 0


def _release(args: argparse.Namespace) -> int:
    decisions = trust.load(args.trust)
    if args.remove:
        decisions, (digest, label) = trust.unrelease(decisions, args.key)
        trust.save(decisions, args.trust)
        print(f"no longer released: {digest[:12]} ({label}) ({args.trust})")
        return 0
    entry = trust.find(_quarantined(args.report), args.key, args.label)
    released = decisions.released | {(entry["sha256"], entry["label"])}
    trust.save(trust.Trust(decisions.trusted, released), args.trust)
    print(
        f"released: {entry['sha256'][:12]} ({entry['label']}, reported by "
        f"{entry['reporter']}) {json.dumps(entry['text'], ensure_ascii=False)} ({args.trust}); "
        "`dvc repro` merges it"
    )
    return 0


def _quarantine(args: argparse.Namespace) -> int:
    entries = [e for e in _quarantined(args.report) if args.reporter in (None, e["reporter"])]
    for e in entries:
        score = "-" if e["score"] is None else f"{e['score']:.3f}"
        ids = ",".join(e["ids"]) or "-"
        print(
            f"{e['sha256'][:12]}  {e['label']:<4}  {e['reporter']}  score {score}  id {ids}  "
            f"{e['reason']}  {json.dumps(e['text'], ensure_ascii=False)}"
        )
    log.info(
        "%d quarantined report(s) in %s; release one with `sentinelle feedback release HASH`",
        len(entries),
        args.report,
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    from sentinelle.production.champion import compare, read_labelled, table  # sklearn metrics

    data = read_labelled(args.data, args.format, args.text_column, args.label_column, args.encoding)
    champion, challenger = Scorer.load(args.champion), Scorer.load(args.challenger)
    result = compare(champion, challenger, data)
    sys.stdout.write(table(result, args.show))
    if args.output:
        io.write_json(args.output, result)
    return 0


def add_decision_commands(actions: Any) -> None:
    """`feedback trust|release|quarantine`: the operator's decisions on untrusted feedback."""
    tr = actions.add_parser(
        "trust",
        help="trust a reporter: ingest merges their reports without corroboration",
        description="Add a reporter (a token's name; '(unnamed)' for records without one) to "
        "the trusted reporters of the trust file. Commit the file: ingest depends on feedback/.",
    )
    tr.add_argument("name", help="the reporter")
    rel = actions.add_parser(
        "release",
        help="let one quarantined report into the training data",
        description="Release a report that ingest quarantined (by its id or its text hash, as "
        "`sentinelle feedback quarantine` lists them): its text and label go into the trust "
        "file, and the next `dvc repro` merges it.",
    )
    rel.add_argument("key", help="a report's id, or its text hash (8 hex digits or more)")
    rel.add_argument(
        "--label",
        choices=feedback_store.LABELS,
        help="the label, when the text is quarantined as both",
    )
    qua = actions.add_parser(
        "quarantine",
        help="list the reports the last ingest quarantined",
        description="One line per quarantined report of data/report.json: text hash, label, "
        "reporter, the serving model's score when reported, ids, reason and the text.",
    )
    qua.add_argument("--reporter", help="only this reporter's")
    for p in (tr, rel):
        p.add_argument("--remove", action="store_true", help="undo it")
    for p in (tr, rel, qua):
        p.add_argument(
            "--trust",
            type=Path,
            default=trust.TRUST_FILE,
            help="the trust file (default: %(default)s)",
        )
        p.add_argument(
            "--report",
            type=Path,
            default=paths.DATA_REPORT,
            help="ingest's data report (default: %(default)s)",
        )


def add_commands(sub: Any, model_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add report, gate, monitor, feedback and compare to the CLI's subparsers."""

    def review_options(p: argparse.ArgumentParser, required: bool) -> None:
        p.add_argument(
            "--baseline",
            required=required,
            help="git revision to compare with, e.g. main or origin/main",
        )
        p.add_argument(
            "--target",
            default="workspace",
            help="git revision, or the working tree (default: %(default)s)",
        )
        p.add_argument(
            "--params",
            type=Path,
            default=Path("params.yaml"),
            help="params file; the rules are the gate section of the settings.yaml beside it "
            "(default: %(default)s)",
        )

    report = sub.add_parser(
        "report",
        help="markdown report: params, metrics and plots against a baseline, the gate's verdict",
        description="Compare the target's committed results with the baseline's, as markdown "
        "with PNG plots in <report>-plots/ beside it. Exit 0 whatever the verdict.",
    )
    review_options(report, required=True)
    report.add_argument(
        "-o", "--output", type=Path, default=Path("report.md"), help="(default: %(default)s)"
    )
    report.set_defaults(run=_report)

    gate = sub.add_parser(
        "gate",
        help="may this model ship? check the rules of settings.yaml's gate section",
        description="One line per rule; exit 0 when every rule passes, 1 when one fails, "
        "2 on bad input (missing metrics, unknown revision).",
    )
    review_options(gate, required=False)
    gate.set_defaults(run=_gate)

    mon = sub.add_parser(
        "monitor",
        help="check a batch of messages for drift against the reference profile",
        description="Compare a batch (any format `score` reads; optionally already scored, "
        "optionally labelled) with the model's reference profile. Exit code 0: no drift, "
        "1: drift, 2: bad input.",
    )
    mon.add_argument("input", help="CSV, TSV, JSON Lines or plain text (one message a line)")
    mon.add_argument(
        "--reference",
        type=Path,
        default=paths.REFERENCE,
        help="reference profile written by the evaluate stage (default: %(default)s)",
    )
    mon.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("monitoring"),
        help="folder for monitor.json, report.html and dvclive/ (default: %(default)s)",
    )
    model_options(mon)
    mon.add_argument(
        "--params",
        type=Path,
        default=DEFAULT_PARAMS,
        help="params file; the limits are the `monitor` section of the settings.yaml beside it "
        "(default: %(default)s)",
    )
    mon.add_argument("--format", choices=FORMATS, help="input format (default: from the suffix)")
    mon.add_argument("--text-column", default="text", help="message column (default: %(default)s)")
    mon.add_argument(
        "--label-column",
        default="label",
        help="optional label column, spam/ham (default: %(default)s)",
    )
    mon.add_argument("--encoding", default="utf-8", help="input encoding (default: %(default)s)")
    mon.set_defaults(run=_monitor)

    fb = sub.add_parser(
        "feedback",
        help="store reported verdicts (training data for the next model)",
        description="Add, import and count reported verdicts in a feedback file (JSON Lines), "
        "which `ingest.feedback` merges into the training data.",
    )
    actions = fb.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="store one reported verdict")
    imp = actions.add_parser("import", help="store every row of a labelled file")
    stats = actions.add_parser("stats", help="count the stored records by label")
    for p in (add, imp, stats):
        p.add_argument("--file", type=Path, required=True, help="the feedback file (JSON Lines)")
    add.add_argument("text", help="the message")
    add.add_argument(
        "--label", choices=feedback_store.LABELS, required=True, help="the right verdict"
    )
    add.add_argument(
        "--id", help="an id: a record whose id its reporter already stored is not stored again"
    )
    for p in (add, imp):
        p.add_argument("--source", help="where it was reported, e.g. a client name")
        p.add_argument(
            "--reporter",
            required=True,
            help="who is answerable for these reports (recorded with each; the API records "
            "the token's name)",
        )
    imp.add_argument("input", help="CSV, TSV or JSON Lines with a text and a label column")
    imp.add_argument("--format", choices=FORMATS, help="input format (default: from the suffix)")
    imp.add_argument("--text-column", default="text", help="(default: %(default)s)")
    imp.add_argument("--label-column", default="label", help="spam/ham (default: %(default)s)")
    imp.add_argument("--id-column", default="id", help="optional ids (default: %(default)s)")
    imp.add_argument("--encoding", default="utf-8", help="(default: %(default)s)")
    add_decision_commands(actions)
    fb.set_defaults(run=_feedback)

    cmp_ = sub.add_parser(
        "compare",
        help="champion vs challenger on one labelled set",
        description="Score one labelled set with two models (each at its own threshold), print "
        "the same metrics side by side and the messages where their verdicts differ. "
        "`sentinelle gate` decides promotion.",
    )
    cmp_.add_argument("champion", type=Path, help="the model in production (model.skops)")
    cmp_.add_argument("challenger", type=Path, help="the candidate (model.skops)")
    cmp_.add_argument("--data", type=Path, required=True, help="CSV, TSV or JSON Lines with labels")
    cmp_.add_argument("-o", "--output", type=Path, help="also write every figure as JSON")
    cmp_.add_argument("--show", type=int, default=20, help="disagreements printed (default: 20)")
    cmp_.add_argument("--format", choices=FORMATS, help="input format (default: from the suffix)")
    cmp_.add_argument("--text-column", default="text", help="(default: %(default)s)")
    cmp_.add_argument("--label-column", default="label", help="(default: %(default)s)")
    cmp_.add_argument("--encoding", default="utf-8", help="(default: %(default)s)")
    cmp_.set_defaults(run=_compare)
