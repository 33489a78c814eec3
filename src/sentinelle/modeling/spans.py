"""Where the model's tokens are in the raw message, and the raw words they fall in.

The model sees the normalised text (``text.normaliser``: canonical form, tokens, optional
stemming), which is not character-aligned with the raw message. The rule:

1. The raw message is cut into raw words (runs of non-white-space); each raw word is
   normalised on its own, and its tokens are attributed to it. When the raw word splits
   into as many tokenizer matches as it has normalised tokens ("FREE!!" -> "free", "!!"),
   each token gets its own match's span, else every token gets the whole word's.
2. Those per-word tokens are aligned with the tokens of the whole message (``difflib``):
   they are the same except where normalising the whole message joins words ("f r e e"
   -> "free", "0906 170 1461" -> "_phone_"); such a token gets the span of all the raw
   words it came from. A token with no raw counterpart has no span.
3. The words of an explanation (``raw_words``) are the raw words, joined where one token
   spans several.

Spans are ``[start, end)`` indices of Python ``str`` (code points) into the raw message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import numpy as np

from sentinelle.text.normaliser import TOKEN_PATTERN, Normaliser

_RAW_WORDS = re.compile(r"\S+")
_RAW_TOKENS = re.compile(TOKEN_PATTERN, re.UNICODE)

Span = tuple[int, int]


@dataclass(frozen=True)
class TokenSpans:
    """The normalised tokens of one raw message and each one's span (None: not mapped)."""

    raw: str
    tokens: list[str]
    spans: list[Span | None]
    # Each distinct token's positions (the spans of one n-gram are looked up, not searched).
    where: dict[str, list[int]] = field(default_factory=dict)


def token_spans(normaliser: Normaliser, raw: str) -> TokenSpans:
    """The tokens the model sees for ``raw`` and where each came from (see the module
    docstring)."""
    tokens = normaliser.tokens(raw)
    pieces: list[str] = []
    piece_spans: list[Span] = []
    for word in _RAW_WORDS.finditer(raw):
        toks = normaliser.tokens(word.group())
        matches = list(_RAW_TOKENS.finditer(word.group()))
        if len(matches) == len(toks):
            sub = [(word.start() + m.start(), word.start() + m.end()) for m in matches]
        else:
            sub = [word.span()] * len(toks)
        pieces += toks
        piece_spans += sub
    spans: list[Span | None] = [None] * len(tokens)
    matcher = SequenceMatcher(None, pieces, tokens, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            spans[j1:j2] = piece_spans[i1:i2]
        elif tag == "replace":
            joined = (min(s for s, _ in piece_spans[i1:i2]), max(e for _, e in piece_spans[i1:i2]))
            spans[j1:j2] = [joined] * (j2 - j1)
    where: dict[str, list[int]] = {}
    for i, token in enumerate(tokens):
        where.setdefault(token, []).append(i)
    return TokenSpans(raw, tokens, spans, where)


def raw_words(where: TokenSpans) -> tuple[np.ndarray, list[Span]]:
    """The words of the raw message that its tokens fall in, and the word of each token.

    A word is a run of non-white-space, or several runs that one token spans ("f r e e"
    -> ``free``) joined into one. Returns each token's word index (-1: the token has no
    span) and each word's ``(start, end)``, in message order; words without a token (only
    invisible characters) are left out.
    """
    raw = [m.span() for m in _RAW_WORDS.finditer(where.raw)]
    starts = np.array([s for s, _ in raw], dtype=np.int64)
    placed = [i for i, span in enumerate(where.spans) if span is not None]
    bounds = np.array([where.spans[i] for i in placed], dtype=np.int64).reshape(-1, 2)
    first = np.searchsorted(starts, bounds[:, 0], "right") - 1
    last = np.searchsorted(starts, bounds[:, 1] - 1, "right") - 1
    new = np.ones(len(raw), dtype=bool)  # new[w]: raw word w starts a word
    for a, b in zip(first[last > first], last[last > first], strict=True):
        new[a + 1 : b + 1] = False
    group = np.cumsum(new) - 1
    heads = np.flatnonzero(new)
    tails = np.append(heads[1:] - 1, len(raw) - 1)
    used = np.unique(group[first])
    number = np.full(len(heads), -1, dtype=np.int64)
    number[used] = np.arange(len(used))
    word_of = np.full(len(where.spans), -1, dtype=np.int64)
    word_of[placed] = number[group[first]]
    return word_of, [(raw[heads[g]][0], raw[tails[g]][1]) for g in used]
