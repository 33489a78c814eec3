"""Full normalisation, the model's input: ``canonical`` + tokens + optional stemming and stopwords.

Shared by the preprocess stage and every consumer at inference. Tokens are
``re.findall`` of ``TOKEN_PATTERN`` (what NLTK's ``RegexpTokenizer`` does with
``gaps=False``); Porter stemming is NLTK's ``PorterStemmer``, imported without the
optional SciPy and scikit-learn parts NLTK's ``__init__`` would load (see
``import_nltk``); nothing used needs downloaded data.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from sentinelle.compute import map_texts
from sentinelle.text.canonical import PLACEHOLDERS, canonical

# Placeholders first, then words (with an inner apostrophe: "don't"), then runs of
# punctuation ("!!!", "...", "?!"); non-capturing groups, so ``findall`` returns whole matches.
TOKEN_PATTERN = r"_(?:url|email|phone|money|num)_|\w+(?:'\w+)?|[^\w\s]+"
# NLTK's RegexpTokenizer flags (tests/test_text.py checks the tokens are its tokens).
_TOKENS = re.compile(TOKEN_PATTERN, re.UNICODE | re.MULTILINE | re.DOTALL).findall


class Normaliser:
    """Full normalisation: ``canonical`` + tokens + optional stemming/stopwords."""

    def __init__(
        self, *, placeholders: bool = True, stem: bool = False, remove_stopwords: bool = False
    ) -> None:
        self._placeholders = placeholders
        self._stopwords: frozenset[str] = frozenset()
        if remove_stopwords:
            # Only here: preprocess loads scikit-learn for nothing else (docs/performance.md).
            from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

            self._stopwords = frozenset(ENGLISH_STOP_WORDS)
        self._stem = _porter_stem if stem else None
        if stem:
            _porter()  # NLTK loads now, in the main thread (see import_nltk)

    def tokens(self, text: str) -> list[str]:
        toks = [t for t in _TOKENS(canonical(text, self._placeholders)) if t not in self._stopwords]
        if self._stem is not None:
            toks = [t if t in PLACEHOLDERS else self._stem(t) for t in toks]
        return toks

    def __call__(self, text: str) -> str:
        return " ".join(self.tokens(text))

    def many(self, texts: Iterable[str]) -> list[str]:
        """Normalise every text (as Dask tasks for large inputs, see ``compute.map_texts``)."""
        return map_texts(self, texts if isinstance(texts, list) else list(texts))


# Optional dependencies of NLTK's __init__ (each imported in a try/except ImportError):
# scipy.stats for nltk.metrics' Fisher test, scikit-learn (and through it pandas) for
# nltk.classify's SklearnClassifier wrapper, scipy.sparse for a parser.
NLTK_OPTIONAL = ("scipy", "sklearn")


class _Unavailable:
    """A meta-path finder that makes the packages it names (and their submodules) unimportable."""

    def __init__(self, packages: tuple[str, ...]) -> None:
        self._packages = packages

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".", 1)[0] in self._packages:
            raise ModuleNotFoundError(f"{name} is not imported while NLTK loads", name=name)


def import_nltk() -> None:
    """``import nltk`` without the NLTK_OPTIONAL modules not yet loaded (preprocess's time and
    memory: docs/performance.md).

    NLTK's ``__init__`` imports every subpackage, and with them SciPy and scikit-learn
    when they are installed. We use only its Porter stemmer, which needs
    neither, so those imports fail while NLTK loads (NLTK then leaves out the two
    features that use them: ``nltk.metrics.fisher_exact`` and ``SklearnClassifier``).
    Already-imported modules are not affected, and once NLTK is loaded SciPy and
    scikit-learn import as usual. Call it from the main thread (another thread
    importing SciPy meanwhile would fail).
    """
    if "nltk" in sys.modules:
        return
    blocker = _Unavailable(NLTK_OPTIONAL)  # consulted only for modules not yet imported
    sys.meta_path.insert(0, blocker)
    try:
        import nltk  # noqa: F401
    finally:
        sys.meta_path.remove(blocker)


# Tokens repeat: each distinct one is stemmed once, in a bounded cache (docs/performance.md).
@lru_cache(maxsize=1 << 18)
def _porter_stem(token: str) -> str:
    return _porter().stem(token)


@lru_cache(maxsize=1)
def _porter() -> Any:
    import_nltk()
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()
