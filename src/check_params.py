"""Stage `check_params`: validate params.yaml and settings.yaml before any other stage runs.

Every stage validates both files itself, but DVC reruns a stage only when something it
depends on changes: a misspelled key added to either file would be ignored. This stage
depends on both whole files, so any edit is checked. It writes data/params.ok: the settings
the stages' outputs depend on (``params.output_settings``; ingest, train and evaluate depend on
it), so a change to one of them reruns those stages, and a change to any other setting
(where work runs, downloads, the monitor and gate limits) or a valid edit that changes no
value reruns nothing else. params.yaml's keys are DVC params of the stages that read them.
"""

from sentinelle import io, paths
from sentinelle.params import Params, output_settings
from sentinelle.stage import log, run

OUT = paths.PARAMS_OK


def main(params: Params) -> None:
    with io.outputs() as out:
        out.write_json(OUT, output_settings(params))
    log.info("params.yaml and settings.yaml are valid")


if __name__ == "__main__":
    run(main, "check_params", __doc__)
