"""Stage `check_params`: validate the whole params.yaml before any other stage runs.

Every stage validates params itself, but DVC reruns a stage only when one of its
own keys changes: a misspelled key added to params.yaml would be ignored. This
stage depends on the whole file, so any edit is checked; its output never changes
when the file is valid, so it does not make later stages rerun.
"""

from pathlib import Path

from sentinelle import io
from sentinelle.params import Params
from sentinelle.stage import log, run

OUT = Path("data/params.ok")


def main(params: Params) -> None:
    io.write_text(OUT, "params.yaml is valid\n")
    log.info("params.yaml is valid")


if __name__ == "__main__":
    run(main, "check_params", __doc__)
