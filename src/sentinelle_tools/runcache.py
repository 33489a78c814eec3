"""Push the objects of `cache: false` outputs that the run cache refers to.

    dvc push --run-cache
    PYTHONPATH=src python -m sentinelle_tools.runcache push      # in the activated venv

DVC 3.67 saves `cache: false` outputs (our git-tracked metrics and plots) into the
local cache when it records a run, but `dvc push --run-cache` uploads only the run
entries, never those objects. On another machine the entries of `train` and
`evaluate` then cannot be restored and the stages rerun. This pushes the missing
objects, after which `dvc repro --pull` there restores every stage.

Sentinelle's own pipeline records no run-cache entries since every output became
`persist: true` (a killed stage leaves the previous outputs; DVC keeps no stage with a
persist output in its run cache): this helps only a pipeline with stages that are not.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("sentinelle_tools.runcache")


def push_run_outputs(root: Path, remote: str | None = None, jobs: int | None = None) -> int:
    """Push every object named by a local run-cache entry; returns how many were transferred."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        runs = Path(repo.stage_cache.cache_dir)
        entries = [(p.parent.name, p.name) for p in sorted(runs.glob("*/*/*")) if p.is_file()]
        used = repo.stage_cache.get_used_objs(entries)
        transferred = 0
        for odb, objs in used.items():
            transferred += len(repo.cloud.push(objs, jobs=jobs, remote=remote, odb=odb).transferred)
        log.info("%d run-cache entries, %d objects pushed", len(entries), transferred)
        return transferred


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sentinelle_tools.runcache", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=["push"])
    parser.add_argument("-r", "--remote", help="DVC remote (default: the default remote)")
    parser.add_argument("-j", "--jobs", type=int, help="parallel transfers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="runcache: %(message)s", stream=sys.stderr)
    push_run_outputs(Path.cwd(), args.remote, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
