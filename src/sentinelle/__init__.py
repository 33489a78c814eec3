"""Sentinelle: a reproducible spam-detection pipeline built the DVC way.

The stage scripts in ``src/`` and every consumer of the model (scoring, serving)
share the code in this package, so training and inference cannot drift apart.
"""

__version__ = "0.1.0"
