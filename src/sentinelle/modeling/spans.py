"""Where the model's n-grams are in the raw message: character spans for highlighting.

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
3. A word n-gram spans from its first token's start to its last token's end. A char
   n-gram (``char_wb``: inside one space-padded token) gets the exact characters when
   the token is, up to the n-gram's end, the lower-cased raw text of its span
   ("fre" in "FREE"; "win" in "WINNING" stemmed to "win"), else the whole token's span.

Spans are ``[start, end)`` indices of Python ``str`` (code points) into the raw message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher

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


def ngram_spans(where: TokenSpans, ngram: str, kind: str) -> list[list[int]]:
    """Every ``[start, end)`` of ``ngram`` (a word or char_wb feature name) in the raw
    message, sorted, without repeats."""
    found: set[Span] = set()
    tokens, spans = where.tokens, where.spans
    if kind == "word":
        words = ngram.split(" ")
        n = len(words)
        for i in where.where.get(words[0], ()):
            first, last = spans[i], spans[min(i + n, len(spans)) - 1]
            if tokens[i : i + n] == words and first is not None and last is not None:
                found.add((first[0], last[1]))
    else:
        for token, positions in where.where.items():
            padded = f" {token} "
            at = padded.find(ngram)
            while at >= 0:
                # The n-gram's characters of the token itself (the padding is not text).
                lo, hi = max(at - 1, 0), min(at + len(ngram) - 1, len(token))
                for i in positions if lo < hi else ():
                    span = spans[i]
                    if span is not None:
                        found.add(_char_span(where.raw, span, token, lo, hi))
                at = padded.find(ngram, at + 1)
    return [list(s) for s in sorted(found)]


def _char_span(raw: str, span: Span, token: str, lo: int, hi: int) -> Span:
    """Characters ``lo:hi`` of ``token`` in the raw text of ``span``, exactly when the token
    matches that text up to ``hi``; else the whole span."""
    text = raw[span[0] : span[1]]
    if len(text) >= hi and text[:hi].lower() == token[:hi]:
        return span[0] + lo, span[0] + hi
    return span
