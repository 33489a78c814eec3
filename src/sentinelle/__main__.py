"""``python -m sentinelle``: the ``sentinelle`` command (see ``sentinelle.cli``)."""

import sys

from sentinelle.cli import main

sys.exit(main())
