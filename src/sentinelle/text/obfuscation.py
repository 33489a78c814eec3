"""A seeded generator of the obfuscations spammers use to slip past filters.

``obfuscate(text, rng, rate)`` rewrites each word of at least three letters, with
probability ``rate``, by one trick drawn at random:

- ``leet``: look-alike digits and symbols ("FR33", "pr1ze", "c@$h");
- ``homoglyph``: Cyrillic/Greek letters that look Latin ("frее" with Cyrillic "е");
- ``invisible``: zero-width characters inside the word ("fr\\u200bee");
- ``dots``: letters split by a separator ("f.r.e.e", "f-r-e-e", "f*r*e*e");
- ``spaces``: letters split by spaces ("f r e e");
- ``accents``: accented letters ("frée");
- ``fullwidth``: full-width or mathematical bold letters ("ｆｒｅｅ", "𝐟𝐫𝐞𝐞");
- ``case``: alternating case ("FrEe").

The evaluate stage applies it to the test split's messages (seeded from
``base.seed``) and reports spam recall with and without it at the model's frozen
threshold. It is deliberately independent of ``sentinelle.text``: it writes what
spammers write, not what the normaliser happens to undo.
"""

from __future__ import annotations

import re

import numpy as np

TRICKS = ("leet", "homoglyph", "invisible", "dots", "spaces", "accents", "fullwidth", "case")

_LEET = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "5$", "t": "7", "b": "8", "l": "1"}
_HOMOGLYPHS = {
    "a": "аα",
    "c": "сϲ",
    "e": "еε",
    "i": "іι",
    "j": "ј",
    "o": "оο",
    "p": "рρ",
    "s": "ѕ",
    "x": "хχ",
    "y": "уү",
    "h": "һ",
    "k": "κ",
    "n": "ո",
    "d": "ԁ",
    "u": "υ",
    "w": "ԝ",
}
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_ACCENTS = {
    "a": "áàâäã",
    "e": "éèêë",
    "i": "íìîï",
    "o": "óòôöõ",
    "u": "úùûü",
    "c": "ç",
    "n": "ñ",
    "y": "ý",
}
_SEPARATORS = ".-*_"
_WORD_RE = re.compile(r"[A-Za-z]{3,}")


def _fullwidth(ch: str, bold: bool) -> str:
    if not ch.isascii() or not ch.isalpha():
        return ch
    if bold:  # MATHEMATICAL BOLD CAPITAL/SMALL A
        base = 0x1D400 if ch.isupper() else 0x1D41A
        return chr(base + ord(ch.lower()) - ord("a"))
    return chr(ord(ch) + 0xFEE0)  # FULLWIDTH LATIN LETTER


def _substitute(word: str, table: dict[str, str], rng: np.random.Generator) -> str:
    """Replace at least one (and each further with probability 1/2) mappable letter."""
    positions = [i for i, ch in enumerate(word) if ch.lower() in table]
    if not positions:
        return word
    forced = positions[int(rng.integers(len(positions)))]
    chars = list(word)
    for i in positions:
        if i == forced or rng.random() < 0.5:
            options = table[word[i].lower()]
            chars[i] = options[int(rng.integers(len(options)))]
    return "".join(chars)


def obfuscate_word(word: str, trick: str, rng: np.random.Generator) -> str:
    """Apply one named trick to one word."""
    match trick:
        case "leet":
            return _substitute(word, _LEET, rng)
        case "homoglyph":
            return _substitute(word, _HOMOGLYPHS, rng)
        case "invisible":
            i = int(rng.integers(1, len(word)))
            return word[:i] + _INVISIBLE[int(rng.integers(len(_INVISIBLE)))] + word[i:]
        case "dots":
            return _SEPARATORS[int(rng.integers(len(_SEPARATORS)))].join(word)
        case "spaces":
            return " ".join(word)
        case "accents":
            return _substitute(word, _ACCENTS, rng)
        case "fullwidth":
            bold = bool(rng.integers(2))
            return "".join(_fullwidth(ch, bold) for ch in word)
        case "case":
            start = int(rng.integers(2))
            return "".join(
                ch.upper() if (i + start) % 2 else ch.lower() for i, ch in enumerate(word)
            )
    raise ValueError(f"unknown obfuscation trick {trick!r}; known: {', '.join(TRICKS)}")


def obfuscate(text: str, rng: np.random.Generator, rate: float = 0.3) -> str:
    """Obfuscate each word of 3+ ASCII letters with probability ``rate`` (one random trick)."""

    def one(match: re.Match[str]) -> str:
        if rng.random() >= rate:
            return match.group(0)
        return obfuscate_word(match.group(0), TRICKS[int(rng.integers(len(TRICKS)))], rng)

    return _WORD_RE.sub(one, text)


def obfuscate_many(texts: list[str], seed: int, rate: float = 0.3) -> list[str]:
    """Obfuscate a list of messages reproducibly: same texts, seed and rate -> same output."""
    rng = np.random.default_rng(seed)
    return [obfuscate(t, rng, rate) for t in texts]
