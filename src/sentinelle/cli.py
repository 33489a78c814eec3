"""The `sentinelle` command: score files, serve the HTTP API, fetch a registered model.

    sentinelle score INPUT [-o OUTPUT] [--model models/model.skops] [--on-error fail|skip]
                     [--explain K]
    sentinelle serve [--model models/model.skops] [--host 127.0.0.1] [--port 8000]
                     [--tokens TOKENS [--feedback FILE] [--predict-auth open|required]]
                     [--max-batch-chars N] [--max-explain-work N] [--scoring-jobs N]
    sentinelle tokens add NAME --scope predict|feedback|admin[,...] --file TOKENS
    sentinelle tokens list|revoke [NAME] --file TOKENS
    sentinelle fetch [--repo .] (--version vX.Y.Z | --stage prod) [-o served/]
    sentinelle report --baseline REF [--target REV|workspace] [-o report.md]
    sentinelle gate [--baseline REF] [--target REV|workspace]   # exit 0 pass, 1 fail, 2 bad input
    sentinelle monitor INPUT [--reference models/reference.json] [-o monitoring/]
    sentinelle feedback add --file FILE --label spam|ham --reporter NAME [--id ID] TEXT
    sentinelle feedback import --file FILE --reporter NAME INPUT [--label-column label]
    sentinelle feedback stats --file FILE
    sentinelle feedback quarantine [--reporter NAME]     # what the last ingest quarantined
    sentinelle feedback trust NAME [--remove]            # feedback/trust.yaml
    sentinelle feedback release ID|HASH [--label L] [--remove]
    sentinelle compare CHAMPION CHALLENGER --data FILE [-o comparison.json]

Also runnable as ``python -m sentinelle``. Bad input (files, rows, options)
is reported as one line ``sentinelle <command>: error: ...`` with exit code 2;
``monitor`` exits 1 when it finds drift.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from sentinelle import paths
from sentinelle.batch import partitions
from sentinelle.batch.files import DEFAULT_CHUNK_SIZE, score_file
from sentinelle.errors import UserError
from sentinelle.modeling.explanations import MAX_EXPLAIN
from sentinelle.production import commands
from sentinelle.production.registry import fetch
from sentinelle.serving import tokens
from sentinelle.serving.rows import FORMATS
from sentinelle.serving.scorer import (
    FEEDBACK_BURST,
    FEEDBACK_RATE,
    MAX_BATCH,
    MAX_BATCH_CHARS,
    MAX_CHARS,
    MAX_EXPLAIN_WORK,
    MAX_HEADER_BYTES,
    SCORING_JOBS,
    Scorer,
    metadata_path_for,
)

log = logging.getLogger("sentinelle")


def _score(args: argparse.Namespace) -> int:
    if args.workers is not None and args.scheduler != "local":
        raise UserError(
            "--workers sets the Dask workers of --scheduler local; without it, "
            "scoring runs in this process"
        )
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
    if args.explain:
        raise UserError("--explain scores one file (CSV, TSV, JSON Lines or text), not partitions")
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
    # uvicorn and FastAPI (1.8 s): only `serve` imports them (a test checks `score` does not).
    import uvicorn

    from sentinelle.serving.api import create_app
    from sentinelle.serving.auth import parse_rate
    from sentinelle.serving.limits import HeaderLimitProtocol

    # Cheap checks before binding the port, so a wrong path fails here and now; the
    # metadata's schema and the safe load (types allowlist, hash) run in the app's lifespan:
    # a tampered model keeps the server up, with /readyz 503 and the reason.
    metadata = metadata_path_for(args.model, args.metadata)
    for path in (Path(args.model), metadata):
        if not path.is_file():
            raise UserError(
                f"{path}: not found (run `dvc repro`, `dvc pull` or `sentinelle fetch`)"
            )
    if args.feedback is not None and args.tokens is None:
        raise UserError(
            "--feedback needs --tokens TOKENS: reports are accepted only from a feedback "
            "token (make one with `sentinelle tokens add NAME --scope feedback --file TOKENS`)"
        )
    if args.predict_auth == "required" and args.tokens is None:
        raise UserError("--predict-auth required needs --tokens TOKENS")
    if args.tokens is not None:
        tokens.load(args.tokens)  # a missing or bad token file: one line, before binding
    rate = parse_rate(args.feedback_rate)
    for name in ("feedback_burst", "scoring_jobs", "max_batch_chars", "max_explain_work"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_header_bytes < 1024:
        raise UserError("--max-header-bytes must be at least 1024")
    json_log = args.log_format == "json" and not args.no_access_log
    app = create_app(
        args.model,
        args.metadata,
        max_batch=args.max_batch,
        max_chars=args.max_chars,
        json_log=json_log,
        feedback_path=args.feedback,
        tokens_path=args.tokens,
        predict_auth=args.predict_auth,
        feedback_rate=rate,
        feedback_burst=args.feedback_burst,
        scoring_jobs=args.scoring_jobs,
        max_batch_chars=args.max_batch_chars,
        max_explain_work=args.max_explain_work,
        max_header_bytes=args.max_header_bytes,
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
        http=HeaderLimitProtocol,  # headers over the limit: 431, not uvicorn's 400
        h11_max_incomplete_event_size=args.max_header_bytes,
    )
    return 0


def _tokens(args: argparse.Namespace) -> int:
    if args.action == "add":
        token, secret = tokens.add(args.file, args.name, tokens.parse_scopes(args.scope))
        log.info(
            "added token %r (scopes %s) to %s; its secret, shown this once, is the last line",
            token.name,
            ",".join(token.scopes),
            args.file,
        )
        print(secret)
    elif args.action == "list":
        for token in tokens.load(args.file):
            print(f"{token.name}\t{','.join(token.scopes)}\tcreated {token.created}")
    else:
        token = tokens.revoke(args.file, args.name)
        log.info("revoked token %r; a running server refuses it from its next request", token.name)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    model, metadata = fetch(
        args.repo, args.output, name=args.name, version=args.version, stage=args.stage
    )
    print(model)
    print(metadata)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sentinelle", description=__doc__.split("\n\n")[0])
    top.add_argument("-v", "--verbose", action="store_true", help="debug logs and tracebacks")
    sub = top.add_subparsers(dest="command", required=True)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model",
            type=Path,
            default=paths.MODEL,
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
    score.add_argument(
        "--workers", type=int, help="with --scheduler local: Dask workers (default: one per core)"
    )
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
        help=f"add an explanation column: the K (1 to {MAX_EXPLAIN}) words of each message "
        "that pushed it most towards spam and towards ham, with their offsets and shares of "
        "the decision",
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
        "--max-batch-chars",
        type=int,
        default=MAX_BATCH_CHARS,
        help="work budget: most characters in one scoring request, all its texts together; "
        "more get a 413 before any scoring (default: %(default)s)",
    )
    serve.add_argument(
        "--max-explain-work",
        type=int,
        default=MAX_EXPLAIN_WORK,
        help="work budget of ?explain=K: most characters x K in one request (default: %(default)s)",
    )
    serve.add_argument(
        "--max-header-bytes",
        type=int,
        default=MAX_HEADER_BYTES,
        help="most bytes of the request line and headers; more get a 431 (default: %(default)s)",
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
        "file (needs --tokens: only feedback tokens may report)",
    )
    serve.add_argument(
        "--tokens",
        type=Path,
        help="the token file (`sentinelle tokens add`): Authorization: Bearer <token>; "
        "re-read when it changes, so a revocation needs no restart",
    )
    serve.add_argument(
        "--predict-auth",
        choices=["open", "required"],
        default="open",
        help="whether /predict, /predict/batch and /model need a predict token (default: "
        "%(default)s); /healthz, /readyz and /metrics are always open",
    )
    serve.add_argument(
        "--feedback-rate",
        default=FEEDBACK_RATE,
        metavar="N/PERIOD",
        help="reports each reporter (token) may send, per second, minute or hour, after a "
        "burst; more get a 429 with Retry-After (default: %(default)s)",
    )
    serve.add_argument(
        "--feedback-burst",
        type=int,
        default=FEEDBACK_BURST,
        help="reports a reporter may send at once before --feedback-rate applies "
        "(default: %(default)s)",
    )
    serve.add_argument(
        "--scoring-jobs",
        type=int,
        default=SCORING_JOBS,
        help="batch requests scored at once, each in a worker thread; more wait; single "
        "messages have 8 threads of their own (default: %(default)s)",
    )
    serve.set_defaults(run=_serve)

    tok = sub.add_parser(
        "tokens",
        help="API tokens for `serve --tokens`: add, list, revoke",
        description="Manage the token file of `sentinelle serve --tokens`. Scopes: predict "
        "(scoring, the model card, with --predict-auth required), feedback (POST /feedback, "
        "GET /feedback/stats), admin (every scope). Only a salted hash of each secret is kept.",
    )
    tok_actions = tok.add_subparsers(dest="action", required=True)
    tok_add = tok_actions.add_parser(
        "add", help="make a token; its secret is printed once, as the last line of stdout"
    )
    tok_add.add_argument("name", help="a-z 0-9 _ . -, up to 64; the reporter of its reports")
    tok_add.add_argument(
        "--scope", required=True, help="one or more of predict, feedback, admin, comma-separated"
    )
    tok_list = tok_actions.add_parser("list", help="name, scopes and creation time of each token")
    tok_revoke = tok_actions.add_parser("revoke", help="remove a token (no restart needed)")
    tok_revoke.add_argument("name")
    for p in (tok_add, tok_list, tok_revoke):
        p.add_argument("--file", type=Path, required=True, help="the token file (JSON, mode 0600)")
    tok.set_defaults(run=_tokens)

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

    commands.add_commands(sub, model_options)
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
