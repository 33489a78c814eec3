"""Text descriptors of a set of messages, the same at training time and in production.

Each message gets its length in characters and four yes/no descriptors: it holds a
URL, a phone number, a money amount (found with the canonical form's placeholders,
``sentinelle.text.canonical``), or invisible / look-alike characters (zero-width and
other format characters, Cyrillic or Greek letters, full-width or mathematical
letters: what obfuscated spam is made of). ``unseen_shares`` is, per message, the
share of the model's word n-grams that its vocabulary does not hold.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Container, Sequence

import numpy as np

from sentinelle.text.canonical import MONEY, PHONE, URL, canonical

# name -> the placeholder canonical() puts in place of the thing
PLACEHOLDER_DESCRIPTORS = {"has_url": URL, "has_phone": PHONE, "has_money": MONEY}
FLAGS = (*PLACEHOLDER_DESCRIPTORS, "has_lookalike")

# Blocks whose letters look Latin or are Latin in disguise: Greek and Cyrillic (with
# Cyrillic Supplement), Armenian, full-width forms, mathematical alphanumerics.
_LOOKALIKE_RANGES = ((0x0370, 0x058F), (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF))


def _lookalike(ch: str) -> bool:
    code = ord(ch)
    if code < 0x80:
        return False
    if unicodedata.category(ch) == "Cf" or ch == "\u00ad":  # zero-width, joiners, BOM, ...
        return True
    return any(low <= code <= high for low, high in _LOOKALIKE_RANGES)


def has_lookalike(text: str) -> bool:
    """True if the text holds an invisible character or a look-alike letter."""
    return not text.isascii() and any(_lookalike(ch) for ch in text)


def describe(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """``length`` (characters) and each of ``FLAGS`` (0/1) for every raw message."""
    forms = [canonical(t, True) for t in texts]
    out: dict[str, np.ndarray] = {
        "length": np.array([len(t) for t in texts], dtype=np.float64),
    }
    for name, token in PLACEHOLDER_DESCRIPTORS.items():
        out[name] = np.array([token in f for f in forms], dtype=np.float64)
    out["has_lookalike"] = np.array([has_lookalike(t) for t in texts], dtype=np.float64)
    return out


def unseen_shares(
    normalised: Sequence[str], analyzer: Callable[[str], list[str]], vocabulary: Container[str]
) -> np.ndarray:
    """Per message, the share of its n-grams (``analyzer``) not in ``vocabulary`` (0 if none)."""
    shares = np.zeros(len(normalised), dtype=np.float64)
    for i, text in enumerate(normalised):
        grams = analyzer(text)
        if grams:
            shares[i] = sum(g not in vocabulary for g in grams) / len(grams)
    return shares
