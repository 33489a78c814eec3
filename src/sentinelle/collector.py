"""Python's cyclic garbage collector as every Sentinelle process runs it: stages and Dask workers.

``relax`` freezes the objects that exist so far (the imported modules, hundreds of
thousands of them) out of the collector, and makes it run less often (``THRESHOLD``).
Otherwise it walks them again and again while a stage builds its vocabularies of
millions of terms. A stage's own memory is arrays and strings, freed by reference
counting. ``stage.run`` calls it first; ``compute`` has every Dask worker call it
(current and future ones). What it saves: docs/performance.md.
"""

from __future__ import annotations

import gc

# Allocations between youngest-generation collections (Python's default: 700, 2,000 from 3.13).
THRESHOLD = (100_000, 50, 100)


def relax() -> None:
    """Freeze what exists now out of the cyclic collector and raise its thresholds."""
    gc.freeze()
    gc.set_threshold(*THRESHOLD)
