"""``python src/experiments.py run|check|compare|report``: the plans from the command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from sentinelle import params as schema
from sentinelle.errors import UserError
from sentinelle.experiments.comparison import comparison, make_report, write_report
from sentinelle.experiments.plans import load_plan, parse_set, select, validate
from sentinelle.experiments.runner import (
    check_clean,
    check_dvc_on_path,
    check_outputs_cached,
    queue_and_wait,
    repo_root,
)

log = logging.getLogger("sentinelle.experiments")


# ---------------------------------------------------------------------- CLI


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python src/experiments.py", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("run", "validate, queue, run and compare a plan"),
        ("check", "validate plans only"),
        ("compare", "print the comparison of a plan's existing experiments"),
        (
            "report",
            "dvc plots diff of a plan's experiments as offline HTML, checked in headless Chromium",
        ),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument(
            "plans" if name == "check" else "plan",
            type=Path,
            nargs="+" if name == "check" else None,
        )
        p.add_argument(
            "-S",
            "--set",
            dest="sets",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override applied to every run (repeatable)",
        )
        if name != "check":
            p.add_argument(
                "--only",
                action="append",
                default=[],
                metavar="NAME",
                help="only runs matching NAME (glob; repeatable)",
            )
            p.add_argument(
                "--columns",
                help="comma-separated params/metrics to show (default: all that differ)",
            )
            p.add_argument(
                "--sort",
                help=(
                    "comma-separated metrics to sort by, '-' prefix = lower is better "
                    "(default: the plan's compare.sort_by, else recall,mcc)"
                ),
            )
        if name == "report":
            p.add_argument(
                "--out",
                type=Path,
                help="folder for index.html (default experiments/results/<plan>-plots)",
            )
            p.add_argument(
                "--no-check",
                action="store_true",
                help="only write the HTML; skip the headless Chromium check",
            )
            p.add_argument(
                "--docs-image", type=Path, help="also save a small copy of the screenshot here"
            )
        if name == "run":
            p.add_argument(
                "-j", "--jobs", type=int, default=1, help="parallel queue workers (default 1)"
            )
            p.add_argument(
                "--timeout",
                type=float,
                default=1800,
                help=(
                    "give up after this many seconds without a run starting or finishing "
                    "(default 1800)"
                ),
            )
            p.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
            p.add_argument(
                "--replace",
                action="store_true",
                help="remove this commit's experiments of the same names first",
            )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="experiments: %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up like Ctrl-C does
    try:
        root = repo_root()
        extra = parse_set(args.sets)
        if args.command == "check":
            for path in args.plans:
                plan = load_plan(path, extra)
                validate(plan, root / schema.DEFAULT_PARAMS)
                log.info("%s: %d run(s) valid", path, len(plan.runs))
            return 0
        sort = tuple(s.strip() for s in args.sort.split(",") if s.strip()) if args.sort else None
        plan = select(load_plan(args.plan, extra, sort), args.only)
        if args.columns:
            plan.columns = tuple(c.strip() for c in args.columns.split(",") if c.strip())
        if args.command == "report":
            return make_report(plan, root, args.out, not args.no_check, args.docs_image)
        outcome = None
        if args.command == "run":
            if args.jobs < 1:
                raise UserError(f"--jobs {args.jobs} is invalid: must be >= 1")
            validate(plan, root / schema.DEFAULT_PARAMS)
            check_dvc_on_path()
            check_clean(root, plan.path)
            check_outputs_cached(root)
            outcome = queue_and_wait(plan, root, args.jobs, args.timeout, args.poll, args.replace)
        table, sort_keys = comparison(plan, root, outcome)
        report = write_report(plan, table, sort_keys, root, outcome, getattr(args, "jobs", None))
        sys.stdout.write(table + "\n")
        log.info("comparison written to %s", report.relative_to(root))
        if outcome:
            failed = [n for n, s in outcome.states.items() if s != "success"]
            log.info(
                "%s: %d of %d run(s) succeeded in %.0f s with %d worker(s)",
                plan.name,
                len(outcome.states) - len(failed),
                len(outcome.states),
                outcome.seconds,
                args.jobs,
            )
            if failed:
                for name, (path, err) in outcome.errors.items():
                    log.error("%s %s: %s (log: %s)", name, outcome.states[name], err, path)
                return 1
        return 0
    except UserError as exc:
        sys.stderr.write(f"experiments: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("experiments: interrupted; queued runs removed and workers stopped\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
