"""Two-pass n-gram counting of a whole corpus for several vectorisers, over the cores.

``count`` fits the vectorisers' vocabularies and writes their counts side by side
into a ``CountFile`` chunk by chunk, so no process holds the whole matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from sentinelle.features.countfile import CountFile
from sentinelle.features.ngrams import COUNT_CHUNK, count_chunk, countable
from sentinelle.processes import forked_map

COUNT_KEEP_NNZ = 2_000_000  # count keeps pass-1 counts up to this size instead of counting twice


@dataclass
class Combined:
    """The count matrices of several vectorisers side by side, in ``file`` (see
    ``features.countfile``), with each column's vectoriser and document frequency."""

    file: CountFile
    indptr: np.ndarray
    column_block: np.ndarray
    n_blocks: int
    df: np.ndarray

    @cached_property
    def matrix(self) -> Any:
        """The CSR matrix, mapped into this process."""
        return self.file.csr(self.indptr, len(self.column_block))


def count(
    vectorisers: list[Any], texts: np.ndarray, jobs: int = 1, file: CountFile | None = None
) -> Combined:
    """``vectorisers`` fitted (vocabulary only), and their counts of ``texts`` side by side.

    Counts are small integers, kept as uint16 (float32 if one exceeds 65,535) with
    int32 columns: 6 bytes per non-zero, in ``file`` (a new ``CountFile`` if None),
    which this process does not map. On the fast path (``ngrams.countable``, no
    ``max_features``) pass 1, one process per vectoriser, counts ``COUNT_CHUNK`` texts
    at a time for the document frequencies; terms below ``min_df`` (or above
    ``max_df``) are dropped and the rest numbered alphabetically, as scikit-learn
    does; pass 2 counts each chunk's kept terms again, the chunks over ``jobs``
    forked processes, each writing its chunk beside the file, and this one copies them
    in, in order. So no process holds the matrix: only a chunk each.
    """
    file = file or CountFile()
    docs = texts.tolist()
    if any(v.max_features is not None or not countable(v, docs) for v in vectorisers):
        blocks = []
        for vectoriser in vectorisers:
            vectoriser._count_dtype = np.float32
            try:
                blocks.append(CountVectorizer.fit_transform(vectoriser, docs))
            finally:
                del vectoriser._count_dtype
            vectoriser.set_vocabulary(vectoriser.vocabulary_)
        matrix = sp.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
        matrix.sort_indices()
        df = np.bincount(matrix.indices, minlength=matrix.shape[1])
        file.start(matrix.nnz, matrix.data.dtype, matrix.indices.dtype)
        file.write_chunk(0, matrix.data, matrix.indices)
        file.append_chunk(0)
        file.finish()
        column_block = _column_block([b.shape[1] for b in blocks])
        return Combined(file, matrix.indptr, column_block, len(blocks), df)

    n = len(texts)
    budget = COUNT_KEEP_NNZ // len(vectorisers)

    def first_pass(k: int) -> tuple[dict[str, int], dict[str, Any], np.ndarray, int, list[Any]]:
        """Pass 1 for vectoriser ``k``: its vocabulary of kept terms, numbered alphabetically as
        scikit-learn does; its char_wb word cache, renumbered; the document frequency of each
        kept term (their sum is the non-zeros it adds) and its largest count; its first
        chunks' counts, renumbered, while they are small (pass 2 then need not count them again)."""
        vectoriser = vectorisers[k]
        vocabulary: dict[str, int] = {}
        cache: dict[str, Any] = {}
        df = np.zeros(0, dtype=np.int64)
        blocks, seen_nnz, max_count = [], 0, 0
        for start in range(0, n, COUNT_CHUNK):
            block = count_chunk(
                vectoriser, docs[start : start + COUNT_CHUNK], vocabulary, False, cache
            )
            chunk_df = np.bincount(block.indices, minlength=block.shape[1])
            chunk_df[: len(df)] += df
            df = chunk_df
            max_count = max(max_count, int(block.data.max(initial=0)))
            seen_nnz += block.nnz
            if seen_nnz <= budget:
                blocks.append(block)
        if not vocabulary:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        low = vectoriser.min_df if isinstance(vectoriser.min_df, int) else vectoriser.min_df * n
        high = vectoriser.max_df if isinstance(vectoriser.max_df, int) else vectoriser.max_df * n
        keep = (df >= low) & (df <= high)
        terms = list(vocabulary)  # insertion order is id order
        del vocabulary
        kept = sorted((terms[i], i) for i in np.flatnonzero(keep))
        if not kept:
            raise ValueError(
                "After pruning, no terms remain. Try a lower min_df or a higher max_df."
            )
        remap = np.full(len(df), -1, dtype=np.int64)
        remap[[i for _, i in kept]] = np.arange(len(kept))
        # char_wb: every word's n-grams are cached; renumber them instead of cutting them again.
        for word, (ids, counts) in cache.items():
            new = remap[ids]
            cache[word] = (new[new >= 0], counts[new >= 0])
        blocks = [_renumbered(b, remap, len(kept)) for b in blocks]
        kept_df = df[[i for _, i in kept]]
        return {term: j for j, (term, _) in enumerate(kept)}, cache, kept_df, max_count, blocks

    # The vectorisers' first passes are independent: one process each, as cores allow.
    caches, kept_blocks, dfs, max_count = [], [], [], 0
    for vectoriser, (vocabulary, cache, df_k, max_k, blocks_k) in zip(
        vectorisers, forked_map(first_pass, len(vectorisers), jobs), strict=True
    ):
        vectoriser.set_vocabulary(vocabulary)
        caches.append(cache)
        kept_blocks.append(blocks_k)
        dfs.append(df_k)
        max_count = max(max_count, max_k)
    df = np.concatenate(dfs)
    nnz = int(df.sum())
    # Pass 2: each chunk's counts of the kept terms, into the file in order: pass 1's
    # if it kept them (small data), otherwise counted again, chunks over the cores.
    sizes = [len(v.vocabulary_) for v in vectorisers]
    index = np.int32 if max(nnz, sum(sizes)) < 2**31 else np.int64
    # Counts are small integers: uint16 (2 bytes) when they fit, else float32 (exact to 2**24).
    file.start(nnz, np.uint16 if max_count <= np.iinfo(np.uint16).max else np.float32, index)
    starts = list(range(0, n, COUNT_CHUNK))

    def chunk_block(c: int) -> Any:
        chunk = docs[starts[c] : starts[c] + COUNT_CHUNK]
        pieces = []
        for k, vectoriser in enumerate(vectorisers):
            if c < len(kept_blocks[k]):
                pieces.append(kept_blocks[k][c])
                kept_blocks[k][c] = None
            else:
                pieces.append(
                    count_chunk(vectoriser, chunk, vectoriser.vocabulary_, True, caches[k])
                )
        block = sp.hstack(pieces, format="csr") if len(pieces) > 1 else pieces[0]
        block.sort_indices()
        return block

    def write_chunk(c: int) -> np.ndarray:
        """Chunk ``c``'s counts beside the file (for this process to copy in); its rows'
        non-zeros."""
        block = chunk_block(c)
        file.write_chunk(c, block.data, block.indices)
        return np.diff(block.indptr)

    serial = min(len(blocks) for blocks in kept_blocks)
    row_nnz = []
    for c, nnz_of_rows in enumerate(forked_map(write_chunk, len(starts), jobs, serial)):
        file.append_chunk(c)
        row_nnz.append(nnz_of_rows)
    file.finish()
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(row_nnz))]).astype(index)
    assert indptr[-1] == nnz
    return Combined(file, indptr, _column_block(sizes), len(sizes), df)


def _renumbered(block: Any, remap: np.ndarray, n_columns: int) -> Any:
    """``block`` with column ``j`` moved to ``remap[j]``, and the columns mapped to -1 dropped."""

    cols = remap[block.indices]
    keep = cols >= 0
    indptr = np.concatenate([[0], np.cumsum(keep)])[block.indptr]
    return sp.csr_matrix((block.data[keep], cols[keep], indptr), shape=(block.shape[0], n_columns))


def _column_block(sizes: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
