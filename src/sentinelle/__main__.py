"""``python -m sentinelle``: the ``sentinelle`` command (see ``serving.cli``)."""

import sys

from sentinelle.serving.cli import main

sys.exit(main())
