"""The `sentinelle` command: score files, serve the HTTP API, fetch a registered model.

    sentinelle score INPUT [-o OUTPUT] [--model models/model.skops] [--on-error fail|skip]
                     [--explain K]
    sentinelle serve [--model models/model.skops] [--host 127.0.0.1] [--port 8000]
    sentinelle fetch [--repo .] (--version vX.Y.Z | --stage prod) [-o served/]
    sentinelle report --baseline REF [--target REV|workspace] [-o report.md]
    sentinelle gate [--baseline REF] [--target REV|workspace]   # exit 0 pass, 1 fail, 2 bad input
    sentinelle monitor INPUT [--reference models/reference.json] [-o monitoring/]
    sentinelle feedback add --file FILE --label spam|ham [--id ID] [--source S] TEXT
    sentinelle feedback import --file FILE INPUT [--label-column label] [--id-column id]
    sentinelle feedback stats --file FILE
    sentinelle compare CHAMPION CHALLENGER --data FILE [-o comparison.json]

Also runnable as ``python -m sentinelle``. Bad input (files, rows, options)
is reported as one line ``sentinelle <command>: error: ...`` with exit code 2;
``monitor`` exits 1 when it finds drift.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

from sentinelle import feedback, io
from sentinelle.errors import UserError
from sentinelle.modeling.explanations import MAX_EXPLAIN
from sentinelle.params import DEFAULT_PARAMS
from sentinelle.params import load as load_params
from sentinelle.serving import partitions
from sentinelle.serving.batch import DEFAULT_CHUNK_SIZE, score_file
from sentinelle.serving.registry import fetch
from sentinelle.serving.rows import FORMATS
from sentinelle.serving.scorer import MAX_BATCH, MAX_CHARS, Scorer, metadata_path_for

log = logging.getLogger("sentinelle")


def _score(args: argparse.Namespace) -> int:
    if args.scheduler is not None or partitions.is_partitioned(args.input):
        return _score_partitions(args)
    if len(args.input) != 1:
        raise UserError("several inputs are partitions: give a directory with -o")
    scorer = Scorer.load(args.model, args.metadata)
    report = score_file(
        args.input[0],
        args.output,
        scorer=scorer,
        fmt=args.format,
        output_format=args.output_format,
        text_column=args.text_column,
        encoding=args.encoding,
        on_error=args.on_error,
        workers=args.workers,
        chunk_size=args.chunk_size,
        progress=False if args.no_progress else None,
        operating_point=args.operating_point,
        explain=args.explain,
    )
    log.info(
        "scored %d of %d rows (%d spam at threshold %g, operating point %s, model %s)%s%s",
        report.rows_scored,
        report.rows_read,
        report.spam,
        report.threshold,
        report.operating_point,
        report.model_version,
        f", skipped {report.bad_rows} bad rows" if report.bad_rows else "",
        f" -> {args.output}" if args.output and str(args.output) != "-" else "",
    )
    return 0


def _score_partitions(args: argparse.Namespace) -> int:
    """Partitions (a directory, a glob, Parquet, s3://, several files) with Dask."""
    if not args.output or args.output == "-":
        raise UserError("partitioned input: give the output directory with -o DIR")
    report = partitions.score_partitions(
        args.input,
        args.output,
        model_path=args.model,
        metadata_path=args.metadata,
        scheduler=args.scheduler,
        workers=args.workers,
        text_column=args.text_column,
        operating_point=args.operating_point,
        output_format=args.output_format or "parquet",
    )
    log.info(
        "scored %d rows in %d partitions (%d spam at threshold %g, operating point %s, "
        "model %s) on %s -> %s",
        report.rows,
        report.partitions,
        report.spam,
        report.threshold,
        report.operating_point,
        report.model_version,
        report.scheduler,
        args.output,
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from sentinelle.serving.api import create_app  # FastAPI: only `serve` imports it

    # Cheap checks before binding the port, so a wrong path fails here and now;
    # the full safe load (types allowlist, hash) runs in the app's lifespan.
    metadata = metadata_path_for(args.model, args.metadata)
    for path in (Path(args.model), metadata):
        if not path.is_file():
            raise UserError(
                f"{path}: not found (run `dvc repro`, `dvc pull` or `sentinelle fetch`)"
            )
    io.read_json(metadata)
    json_log = args.log_format == "json" and not args.no_access_log
    app = create_app(
        args.model,
        args.metadata,
        max_batch=args.max_batch,
        max_chars=args.max_chars,
        json_log=json_log,
        feedback_path=args.feedback,
    )
    if json_log:  # one JSON line per request on stdout, instead of uvicorn's access log
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access = logging.getLogger("sentinelle.access")
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=not args.no_access_log and not json_log,
    )
    return 0


def _fetch(args: argparse.Namespace) -> int:
    model, metadata = fetch(
        args.repo, args.output, name=args.name, version=args.version, stage=args.stage
    )
    print(model)
    print(metadata)
    return 0


def _throughput(target: str) -> float:
    """Messages per second scoring the raw test split with the workspace's model."""
    import time

    if target != "workspace":
        raise UserError(
            f"gate.min_throughput is measured with the workspace's model, not {target!r}: "
            "use --target workspace, or set gate.min_throughput: null"
        )
    split = Path("data/raw/test.parquet")
    if not split.is_file():
        raise UserError(f"{split}: not found (gate.min_throughput scores it): run `dvc repro`")
    texts = io.read_table(split, columns=["text"])["text"].tolist()
    scorer = Scorer.load(Path("models/model.skops"))
    scorer.scores(texts[:100])  # warm-up
    batch = (texts * (1 + 5000 // max(1, len(texts))))[:5000]
    start = time.perf_counter()
    for i in range(0, len(batch), 1000):
        scorer.scores(batch[i : i + 1000])
    rate = len(batch) / (time.perf_counter() - start)
    log.info("scored %d messages of %s: %.0f messages/s", len(batch), split, rate)
    return rate


def _verdict(args: argparse.Namespace, need_baseline: bool) -> tuple[Any, Any, Any]:
    from sentinelle.params import load
    from sentinelle.review import gate, results

    root = Path(".")
    rules = load(args.params).gate
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
    from sentinelle.review import report

    base, target, verdict = _verdict(args, need_baseline=True)
    out = report.write(args.output, base, target, verdict)
    print(out)
    log.info("gate %s", verdict.summary())
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from sentinelle.serving.monitor import monitor  # scipy, matplotlib: only `monitor` pays

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
    store = feedback.Store(args.file)
    if args.action == "stats":
        print(json.dumps(store.stats(), sort_keys=True))
        return 0
    if args.action == "add":
        records = [feedback.record(args.text, args.label, args.id, args.source, where="TEXT")]
    else:
        from sentinelle.serving.feedback import read_file

        records = read_file(
            Path(args.input),
            fmt=args.format,
            text_column=args.text_column,
            label_column=args.label_column,
            id_column=args.id_column,
            source=args.source,
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


def _compare(args: argparse.Namespace) -> int:
    from sentinelle.serving.compare import compare, read_labelled, table

    data = read_labelled(args.data, args.format, args.text_column, args.label_column, args.encoding)
    champion, challenger = Scorer.load(args.champion), Scorer.load(args.challenger)
    result = compare(champion, challenger, data)
    sys.stdout.write(table(result, args.show))
    if args.output:
        io.write_json(args.output, result)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sentinelle", description=__doc__.split("\n\n")[0])
    top.add_argument("-v", "--verbose", action="store_true", help="debug logs and tracebacks")
    sub = top.add_subparsers(dest="command", required=True)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model",
            type=Path,
            default=Path("models/model.skops"),
            help="skops model (default: %(default)s)",
        )
        p.add_argument(
            "--metadata", type=Path, help="its metadata (default: the model path with .json)"
        )

    score = sub.add_parser(
        "score", help="score a file of messages", description="Score every message of INPUT."
    )
    score.add_argument(
        "input",
        nargs="+",
        help="CSV, TSV, JSON Lines or plain text (one message a line); - for stdin; or "
        "partitions: Parquet files, directories or globs of .parquet/.csv/.tsv/.jsonl, "
        "local or s3:// (scored with Dask)",
    )
    score.add_argument(
        "-o",
        "--output",
        help="output file, written atomically (default: stdout); for partitions, a directory",
    )
    score.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="score the partitions on a Dask cluster: 'local' (worker processes on this "
        "machine, --workers of them) or a scheduler address such as tcp://host:8786",
    )
    model_options(score)
    score.add_argument(
        "--format", choices=FORMATS, help="input format (default: from the suffix; stdin: txt)"
    )
    score.add_argument(
        "--output-format",
        choices=[*(f for f in FORMATS if f != "txt"), "parquet"],
        help="output format (default: from the suffix, else the input's; txt -> jsonl; "
        "partitions: parquet, csv or jsonl, default parquet)",
    )
    score.add_argument(
        "--text-column", default="text", help="column/field with the message (default: %(default)s)"
    )
    score.add_argument("--encoding", default="utf-8", help="input encoding (default: %(default)s)")
    score.add_argument(
        "--on-error",
        choices=["fail", "skip"],
        default="fail",
        help="bad rows: stop at the first (fail, default) or leave them out and list them (skip)",
    )
    score.add_argument("--workers", type=int, help="scoring processes (default: one per core)")
    score.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help="rows per chunk (default: %(default)s)",
    )
    score.add_argument(
        "--no-progress", action="store_true", help="no progress bar even on a terminal"
    )
    score.add_argument(
        "--operating-point",
        metavar="NAME",
        help="decide is_spam at this named operating point of the model (models/model.json: "
        "operating_points; e.g. strict, lenient; default: the model's own threshold)",
    )
    score.add_argument(
        "--explain",
        type=int,
        metavar="K",
        help=f"add an explanation column: the K (1 to {MAX_EXPLAIN}) n-grams that pushed "
        "each row most towards spam and towards ham",
    )
    score.set_defaults(run=_score)

    serve = sub.add_parser(
        "serve", help="serve the HTTP API", description="Serve the HTTP API with uvicorn."
    )
    model_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument(
        "--max-batch",
        type=int,
        default=MAX_BATCH,
        help="most messages per batch (default: %(default)s)",
    )
    serve.add_argument(
        "--max-chars", type=int, default=MAX_CHARS, help="longest message (default: %(default)s)"
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument("--no-access-log", action="store_true", help="do not log every request")
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="access log: uvicorn's text lines, or one JSON object per request on stdout "
        "(route, method, status, latency_ms, request_id, model_version; never the text)",
    )
    serve.add_argument(
        "--feedback",
        type=Path,
        help="enable POST /feedback and GET /feedback/stats, storing reports in this JSON Lines "
        "file",
    )
    serve.set_defaults(run=_serve)

    fetch = sub.add_parser(
        "fetch",
        help="download a registered model version or stage",
        description="Download a model and its metadata registered with GTO from the DVC remote.",
    )
    fetch.add_argument(
        "--repo", default=".", help="git repository URL or path (default: %(default)s)"
    )
    fetch.add_argument(
        "--name", default="spam-classifier", help="artifact name (default: %(default)s)"
    )
    which = fetch.add_mutually_exclusive_group()
    which.add_argument("--version", help="a registered version, e.g. v1.0.0")
    which.add_argument("--stage", help="a stage, e.g. prod (default: the latest version)")
    fetch.add_argument(
        "-o", "--output", type=Path, default=Path("served"), help="folder (default: %(default)s)"
    )
    fetch.set_defaults(run=_fetch)

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
            help="params file whose gate section holds the rules (default: %(default)s)",
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
        help="may this model ship? check the rules of params.yaml's gate section",
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
        default=Path("models/reference.json"),
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
        help="params file whose `monitor` section holds the limits (default: %(default)s)",
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
    add.add_argument("--label", choices=feedback.LABELS, required=True, help="the right verdict")
    add.add_argument("--id", help="an id: a record with an id already stored is not stored again")
    for p in (add, imp):
        p.add_argument("--source", help="who reported it")
    imp.add_argument("input", help="CSV, TSV or JSON Lines with a text and a label column")
    imp.add_argument("--format", choices=FORMATS, help="input format (default: from the suffix)")
    imp.add_argument("--text-column", default="text", help="(default: %(default)s)")
    imp.add_argument("--label-column", default="label", help="spam/ham (default: %(default)s)")
    imp.add_argument("--id-column", default="id", help="optional ids (default: %(default)s)")
    imp.add_argument("--encoding", default="utf-8", help="(default: %(default)s)")
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
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"sentinelle {args.command}: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.run(args)
    except UserError as exc:
        if args.verbose:
            raise
        sys.stderr.write(f"sentinelle {args.command}: error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
