"""Text normalisation shared by the preprocess stage and every consumer at inference.

Two levels:

``canonical(text)``
    cheap and dependency-free: Unicode NFKC, invisible characters removed, look-alike
    letters folded to Latin, case-folded, URLs / e-mail addresses / phone numbers /
    money amounts / other numbers replaced by placeholders, white space collapsed.
    Ingest uses it as the key that keeps near-duplicates on one side of the split.

``Normaliser(...)(text)``
    ``canonical`` followed by NLTK tokenisation and optional stemming and stopword
    removal; the output is the tokens joined by single spaces. NLTK is imported only
    here (it costs over a second), and none of what is used needs downloaded data.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

# Placeholders are words of their own: letters and underscores only, so that
# neither tokenisation nor stemming changes them.
URL, EMAIL, PHONE, MONEY, NUMBER = "_url_", "_email_", "_phone_", "_money_", "_num_"
PLACEHOLDERS = (URL, EMAIL, PHONE, MONEY, NUMBER)

# Characters that render as (almost) nothing: zero-width spaces and joiners, soft
# hyphen, word joiner, BOM; removed before anything else looks at the text.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff"))

# Cyrillic and Greek letters that look like Latin ones (after lower-casing), as
# spammers use them to dodge filters ("frее" with Cyrillic "е").
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
        "ѕ": "s", "ԁ": "d", "ɡ": "g", "ԛ": "q", "ԝ": "w", "ո": "n", "ս": "u",
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "c",
    }
)  # fmt: skip

_URL_RE = re.compile(
    r"(?:https?://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|co\.uk|uk|biz|info|tv|mobi)\b(?:/\S*)?"
)
_EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_MONEY_RE = re.compile(
    r"[£$€]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:k|m|bn)\b)?|\b\d[\d,]*(?:\.\d+)?\s?(?:p|pence|gbp|usd|eur|pounds?|dollars?)\b"
)
# Seven or more digits, possibly split by single spaces/dashes/dots: UK mobile and
# premium-rate numbers (07..., 08..., 09...) and international ones (+44...).
_PHONE_RE = re.compile(r"(?<![\w£$€])\+?\d(?:[ \-.]?\d){6,}(?!\w)")
_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
_SPACE_RE = re.compile(r"\s+")


def canonical(text: str, placeholders: bool = True) -> str:
    """Return the canonical form of a message (see module docstring)."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    text = text.casefold().translate(_CONFUSABLES)
    if not placeholders:
        return _SPACE_RE.sub(" ", text).strip()
    text = _URL_RE.sub(f" {URL} ", _EMAIL_RE.sub(f" {EMAIL} ", text))
    text = _MONEY_RE.sub(f" {MONEY} ", text)
    text = _PHONE_RE.sub(f" {PHONE} ", text)
    text = _NUMBER_RE.sub(f" {NUMBER} ", text)
    return _SPACE_RE.sub(" ", text).strip()


# Placeholders first, then words (with an inner apostrophe: "don't"), then runs of
# punctuation ("!!!", "...", "?!"). NLTK's RegexpTokenizer needs non-capturing groups.
TOKEN_PATTERN = r"_(?:url|email|phone|money|num)_|\w+(?:'\w+)?|[^\w\s]+"


class Normaliser:
    """Full normalisation: ``canonical`` + NLTK tokens + optional stemming/stopwords."""

    def __init__(
        self, *, placeholders: bool = True, stem: bool = False, remove_stopwords: bool = False
    ) -> None:
        from nltk.tokenize import RegexpTokenizer

        self._placeholders = placeholders
        self._tokenize = RegexpTokenizer(TOKEN_PATTERN).tokenize
        self._stopwords: frozenset[str] = frozenset()
        if remove_stopwords:
            from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

            self._stopwords = frozenset(ENGLISH_STOP_WORDS)
        self._stem = _porter_stem if stem else None

    def tokens(self, text: str) -> list[str]:
        toks = [t for t in self._tokenize(canonical(text, self._placeholders)) if t not in self._stopwords]
        if self._stem is not None:
            toks = [t if t in PLACEHOLDERS else self._stem(t) for t in toks]
        return toks

    def __call__(self, text: str) -> str:
        return " ".join(self.tokens(text))

    def many(self, texts: Iterable[str]) -> list[str]:
        return [self(t) for t in texts]


@lru_cache(maxsize=1 << 16)
def _porter_stem(token: str) -> str:
    return _porter().stem(token)


@lru_cache(maxsize=1)
def _porter():
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()
