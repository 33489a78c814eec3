"""n-gram counting kernels: scikit-learn's counts of word and char_wb n-grams, vectorised.

``count_chunk`` gives exactly ``CountVectorizer._count_vocab``'s counts for the
analyzers this project uses (``countable`` says when), a chunk of documents at a
time, growing a vocabulary as it goes (or looking terms up in a fixed one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

COUNT_CHUNK = 5_000  # documents counted at a time (bounds the temporary arrays)


def countable(vectoriser: Any, docs: list[Any]) -> bool:
    """Whether ``count_chunk`` gives exactly scikit-learn's counts for this vectoriser and
    these documents."""
    return (
        vectoriser.analyzer in ("char_wb", "word")
        and vectoriser.input == "content"
        and not vectoriser.lowercase
        and vectoriser.strip_accents is None
        and vectoriser.preprocessor is None
        and vectoriser.tokenizer is None
        and vectoriser.stop_words is None
        and all(type(d) is str for d in docs)
    )


def count_chunk(
    vectoriser: Any,
    chunk: list[str],
    vocabulary: dict[str, int],
    fixed_vocab: bool,
    cache: dict[str, tuple[np.ndarray, np.ndarray]],
) -> Any:
    """Counts of ``chunk`` (CSR, columns numbered by ``vocabulary``, which grows unless fixed).

    char_wb: the n-grams of a document are those of its white-space separated
    words, so each distinct word is cut into n-grams once (``_char_wb_ngrams`` of
    the word alone; ``cache`` keeps them across chunks) and the document counts are
    (documents x words) @ (words x n-grams), a sparse product. word: tokens are
    numbered, n-grams of consecutive token ids are numbered by pairing, and only
    the distinct n-grams are joined into strings.
    """
    if vectoriser.analyzer == "char_wb":
        pieces = [d.split() for d in chunk]
    else:
        findall = vectoriser.build_tokenizer()
        pieces = [findall(d) for d in chunk]
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    flat = np.fromiter((t for ts in pieces for t in ts), dtype=object, count=int(lengths.sum()))
    del pieces
    doc_of = np.repeat(np.arange(len(chunk), dtype=np.int64), lengths)
    codes, uniques = pd.factorize(flat)
    del flat
    if vectoriser.analyzer == "char_wb":
        block = _char_wb_block(
            vectoriser, codes, uniques, doc_of, len(chunk), vocabulary, fixed_vocab, cache
        )
    else:
        block = _word_block(vectoriser, codes, uniques, doc_of, lengths, vocabulary, fixed_vocab)
    block = sp.csr_matrix(block, dtype=vectoriser.__dict__.get("_count_dtype", vectoriser.dtype))
    block.indices = block.indices.astype(np.int32, copy=False)
    return block


def _grow(vocabulary: dict[str, int], terms: list[str], fixed_vocab: bool) -> np.ndarray:
    """Ids of ``terms`` in ``vocabulary`` (-1 if absent and fixed; otherwise added)."""
    if fixed_vocab:
        get = vocabulary.get
        return np.fromiter((get(t, -1) for t in terms), dtype=np.int64, count=len(terms))
    setdefault = vocabulary.setdefault
    return np.fromiter(
        (setdefault(t, len(vocabulary)) for t in terms), dtype=np.int64, count=len(terms)
    )


def _char_wb_block(
    vectoriser: Any,
    codes: np.ndarray,
    words: Any,
    doc_of: np.ndarray,
    n_docs: int,
    vocabulary: dict[str, int],
    fixed_vocab: bool,
    cache: dict[str, tuple[np.ndarray, np.ndarray]],
) -> Any:
    ngrams = vectoriser._char_wb_ngrams
    rows, cols, vals = [], [], []
    for i, word in enumerate(words.tolist() if hasattr(words, "tolist") else list(words)):
        hit = cache.get(word)
        if hit is None:
            grams: dict[str, int] = {}
            for g in ngrams(word):
                grams[g] = grams.get(g, 0) + 1
            ids = _grow(vocabulary, list(grams), fixed_vocab)
            counts = np.fromiter(grams.values(), dtype=np.int64, count=len(grams))
            keep = ids >= 0
            hit = cache[word] = (ids[keep], counts[keep])
        rows.append(np.full(len(hit[0]), i, dtype=np.int64))
        cols.append(hit[0])
        vals.append(hit[1])
    n_terms = len(vocabulary)
    concat = (lambda a: np.concatenate(a)) if rows else (lambda a: np.empty(0, dtype=np.int64))
    W = sp.csr_matrix(
        (concat(vals), (concat(rows), concat(cols))), shape=(len(words), n_terms), dtype=np.int32
    )
    D = sp.csr_matrix(
        (np.ones(len(codes), dtype=np.int32), (doc_of, codes)),
        shape=(n_docs, len(words)),
        dtype=np.int32,
    )
    return (D @ W).tocsr()


def _word_block(
    vectoriser: Any,
    codes: np.ndarray,
    tokens: Any,
    doc_of: np.ndarray,
    lengths: np.ndarray,
    vocabulary: dict[str, int],
    fixed_vocab: bool,
) -> Any:
    min_n, max_n = vectoriser.ngram_range
    tokens = np.asarray(tokens, dtype=object)
    n_docs = len(lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(len(codes), dtype=np.int64) - starts  # index of each token in its doc
    doc_rows, term_cols = [], []
    gram = codes.astype(np.int64)  # id of the n-gram ending at each token, for n = 1, 2, ...
    gram_parts: list[np.ndarray] = [
        np.arange(len(tokens), dtype=np.int64).reshape(-1, 1)
    ]  # tokens of each id
    for n in range(1, max_n + 1):
        if n > 1:
            valid = position >= n - 1
            key = np.full(len(codes), -1, dtype=np.int64)
            prev = np.roll(gram, 1)
            key[valid] = prev[valid] * len(tokens) + codes[valid]
            new_ids, uniq = pd.factorize(key[valid])
            gram = np.full(len(codes), -1, dtype=np.int64)
            gram[valid] = new_ids
            first_tokens = gram_parts[-1][uniq // len(tokens)]
            gram_parts.append(np.hstack([first_tokens, (uniq % len(tokens)).reshape(-1, 1)]))
        if n < min_n:
            continue
        present = gram >= 0
        parts = gram_parts[-1]
        terms = [" ".join(row) for row in tokens[parts].tolist()] if n > 1 else tokens.tolist()
        ids = _grow(vocabulary, terms, fixed_vocab)
        cols = ids[gram[present]]
        keep = cols >= 0
        doc_rows.append(doc_of[present][keep])
        term_cols.append(cols[keep])
    rows = np.concatenate(doc_rows) if doc_rows else np.empty(0, dtype=np.int64)
    cols = np.concatenate(term_cols) if term_cols else np.empty(0, dtype=np.int64)
    X = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(n_docs, len(vocabulary))
    )
    X.sum_duplicates()
    return X
