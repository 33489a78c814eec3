"""``train.engine``: which engine fits the model, ``sklearn`` (the specification) or ``fast``.

Both have one public function, ``fit(train, params) -> FittedModel``, and give the same
model (``tests/test_engines.py``). ``auto`` picks by the size of the training split, from
the cut-over measured in docs/performance.md.
"""

from __future__ import annotations

from types import ModuleType

from sentinelle.modeling import fast, sklearn_engine

__all__ = ["ENGINES", "FAST_FROM", "pick"]

ENGINES: dict[str, ModuleType] = {"sklearn": sklearn_engine, "fast": fast}
# ``auto`` takes the fast engine from this many training messages: below it the sklearn
# engine is faster, as it loads no numba solver (measured: docs/performance.md).
FAST_FROM = 400


def pick(engine: str, n_messages: int) -> tuple[str, ModuleType]:
    """The name and module of the engine ``train.engine`` (``engine``) means for a training
    split of ``n_messages``."""
    if engine == "auto":
        engine = "fast" if n_messages >= FAST_FROM else "sklearn"
    return engine, ENGINES[engine]
