"""The canonical form of a message: cheap, dependency-free, shared by ingest and inference.

Unicode NFKC, invisible characters removed, look-alike letters folded to Latin,
accents stripped, case-folded, obfuscation undone (``deobfuscate``: "f.r.e.e" /
"f r e e" joined, "FR33 pr1ze" read as "free prize"), URLs / e-mail addresses /
phone numbers / money amounts / other numbers replaced by placeholders, white
space collapsed. Ingest uses it as the key that keeps near-duplicates on one side
of the split; ``text.normaliser`` builds the model's input on it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

from sentinelle.compute import chunks, map_texts, ordered_map

# Placeholders are words of their own: letters and underscores only, so that
# neither tokenisation nor stemming changes them.
URL, EMAIL, PHONE, MONEY, NUMBER = "_url_", "_email_", "_phone_", "_money_", "_num_"
PLACEHOLDERS = (URL, EMAIL, PHONE, MONEY, NUMBER)

# Characters that render as (almost) nothing: zero-width spaces and joiners, soft
# hyphen, word joiner, BOM; removed before anything else looks at the text.
# Also bidirectional marks and embeddings, the combining grapheme joiner and
# Hangul fillers, which render as nothing in most fonts.
_INVISIBLE = dict.fromkeys(
    map(
        ord,
        "\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
        "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067"
        "\u2068\u2069\u3164\ufeff\uffa0",
    )
)

# Cyrillic and Greek letters that look like Latin ones (after lower-casing), as
# spammers use them to dodge filters ("frее" with Cyrillic "е").
_CONFUSABLES = str.maketrans(
    {
        "а": "a",
        "в": "b",
        "е": "e",
        "ё": "e",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "ѕ": "s",
        "ԁ": "d",
        "ɡ": "g",
        "ԛ": "q",
        "ԝ": "w",
        "ո": "n",
        "ս": "u",
        "α": "a",
        "β": "b",
        "ε": "e",
        "η": "n",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "ω": "w",
        "ς": "c",
        "һ": "h",
        "ӏ": "l",
        "ԍ": "g",
        "ү": "y",
        "ɑ": "a",
        "ı": "i",
        "ȷ": "j",
        "ɩ": "i",
        "ᴀ": "a",
        "ʙ": "b",
        "ᴄ": "c",
        "ᴅ": "d",
        "ᴇ": "e",
        "ɢ": "g",
        "ʜ": "h",
        "ɪ": "i",
        "ᴊ": "j",
        "ᴋ": "k",
        "ʟ": "l",
        "ᴍ": "m",
        "ɴ": "n",
        "ᴏ": "o",
        "ᴘ": "p",
        "ʀ": "r",
        "ꜱ": "s",
        "ᴛ": "t",
        "ᴜ": "u",
        "ᴠ": "v",
        "ᴡ": "w",
        "ʏ": "y",
        "ᴢ": "z",
        "ϲ": "c",
    }
)

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


# Obfuscation. Letters (or digits) split by one repeated separator, "f.r.e.e",
# "f-r-e-e", "f*r*e*e" (3 or more) or by spaces "f r e e" (4 or more, so that
# SMS-speak such as "u r a" stays as it is).
_SPLIT_PUNCT_RE = re.compile(r"(?<![\w.])([a-z0-9])([.\-_*~+|/])[a-z0-9](?:\2[a-z0-9])+(?![\w])")
_SPLIT_SPACE_RE = re.compile(r"(?<!\S)[a-z0-9](?: [a-z0-9]){3,}(?!\S)")
# Look-alike digits and symbols inside words: "fr33", "pr1ze", "c@sh", "fr$e".
# Only in a word that starts with a letter, has at least two letters, and whose
# digit runs are at most two long, so that codes and amounts ("win150", "150p",
# "4get", "1st") are left alone.
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_INNER_SYMBOL_RE = re.compile(r"(?<=[a-z])[!|](?=[a-z])")  # "pr!ze", "he|lo"
# The lookahead skips, inside the regex engine, the words without a look-alike (most of
# them), which ``_unleet`` would give back unchanged: a Python call per word fewer.
_LEET_WORD_RE = re.compile(
    r"(?<![\w@$])(?=[a-z][a-z0-9@$]*[013457@$])[a-z][a-z0-9@$]*[a-z0-9](?![\w@$])"
)
_DIGIT_RUN_RE = re.compile(r"\d{3,}")
_LETTER_RE = re.compile(r"[a-z]")


def _strip_accents(text: str) -> str:
    """ "frée" -> "free": drop combining marks after canonical decomposition."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    )


def _unleet(match: re.Match[str]) -> str:
    word = match.group(0)  # holds a look-alike (the lookahead of _LEET_WORD_RE)
    if len(_LETTER_RE.findall(word)) < 2 or _DIGIT_RUN_RE.search(word):
        return word
    return word.translate(_LEET)


def deobfuscate(text: str) -> str:
    """Undo spacing and look-alike-digit tricks in case-folded text with single spaces.

    "f.r.e.e" / "f r e e" -> "free", "fr33 pr!ze" -> "free prize", "c@$h" -> "cash".
    """
    text = _SPLIT_PUNCT_RE.sub(lambda m: m.group(0).replace(m.group(2), ""), text)
    text = _SPLIT_SPACE_RE.sub(lambda m: m.group(0).replace(" ", ""), text)
    if "!" in text or "|" in text:
        text = _INNER_SYMBOL_RE.sub(lambda m: "i" if m.group(0) == "!" else "l", text)
    return _LEET_WORD_RE.sub(_unleet, text)


def canonical(text: str, placeholders: bool = True) -> str:
    """The canonical form of a message (see the module docstring)."""
    if text.isascii():
        # NFKC, the invisible characters, the look-alikes and the accents are all beyond
        # ASCII, and ASCII case-folds as it lower-cases (tests/test_text.py checks each).
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
        # Folded before case-folding too: some look-alikes (lunate sigma "ϲ") case-fold to
        # non-look-alikes.
        text = _strip_accents(text.translate(_CONFUSABLES).casefold().translate(_CONFUSABLES))
    # White space collapsed: str.split splits on what \s matches (tests/test_text.py).
    text = " ".join(text.split())
    if not placeholders:
        return deobfuscate(text)
    if "@" in text:
        text = _EMAIL_RE.sub(f" {EMAIL} ", text)
    text = " ".join(_URL_RE.sub(f" {URL} ", text).split())
    text = deobfuscate(text)
    text = _MONEY_RE.sub(f" {MONEY} ", text)
    text = _PHONE_RE.sub(f" {PHONE} ", text)
    text = _NUMBER_RE.sub(f" {NUMBER} ", text)
    return " ".join(text.split())


def canonical_many(texts: Iterable[str], placeholders: bool = True) -> list[str]:
    """``canonical`` of every text (as Dask tasks for large inputs, see ``compute.map_texts``)."""
    texts = texts if isinstance(texts, list) else list(texts)
    return map_texts(canonical if placeholders else _canonical_plain, texts)


def canonical_digests(texts: Sequence[str]) -> np.ndarray:
    """A 16-byte BLAKE2b digest of each text's ``canonical`` form, as an ``(n, 2)`` uint64
    array (Dask tasks for large inputs): a key for grouping near-duplicates, 16 bytes a text.
    ``texts`` (a list, or a pandas Series or array of Arrow strings) become Python strings a
    piece at a time."""
    pieces = (list(texts[a:b]) for a, b in chunks(len(texts)))
    blobs = list(ordered_map(_digests, pieces, len(texts)))
    return np.frombuffer(b"".join(blobs), dtype=np.uint64).reshape(-1, 2)


def _digests(texts: list[str]) -> bytes:
    return b"".join(
        hashlib.blake2b(canonical(t).encode("utf-8", "surrogatepass"), digest_size=16).digest()
        for t in texts
    )


def _canonical_plain(text: str) -> str:
    return canonical(text, placeholders=False)
