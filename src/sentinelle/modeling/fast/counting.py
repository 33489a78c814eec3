"""Two-pass n-gram counting of a whole corpus for several vectorisers, as Dask tasks if large.

``count`` fits the vectorisers' vocabularies and writes their counts side by side
into a ``CountFile`` chunk by chunk, so no process holds the whole matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from sentinelle.compute import on_this_machine, ordered_map, uses_dask
from sentinelle.modeling.fast.countfile import CountFile, write_piece
from sentinelle.modeling.fast.ngrams import COUNT_CHUNK, count_chunk, countable

COUNT_KEEP_NNZ = 2_000_000  # count keeps pass-1 counts up to this size instead of counting twice
PASS2_DOCS = 10 * COUNT_CHUNK  # documents per pass-2 task


@dataclass
class Combined:
    """The count matrices of several vectorisers side by side, in ``file`` (see
    ``countfile``), with each column's vectoriser and document frequency."""

    file: CountFile
    indptr: np.ndarray
    column_block: np.ndarray
    n_blocks: int
    df: np.ndarray

    @cached_property
    def matrix(self) -> Any:
        """The CSR matrix, mapped into this process."""
        return self.file.csr(self.indptr, len(self.column_block))


def count(vectorisers: list[Any], texts: np.ndarray, file: CountFile | None = None) -> Combined:
    """``vectorisers`` fitted (vocabulary only), and their counts of ``texts`` side by side.

    Counts are small integers, kept as uint16 (float32 if one exceeds 65,535) with
    int32 columns: 6 bytes per non-zero, in ``file`` (a new ``CountFile`` if None),
    which this process does not map. On the fast path (``ngrams.countable``, no
    ``max_features``) pass 1, a task per vectoriser, counts ``COUNT_CHUNK`` texts
    at a time for the document frequencies; terms below ``min_df`` (or above
    ``max_df``) are dropped and the rest numbered alphabetically, as scikit-learn
    does; pass 2 counts the kept terms again, ``PASS2_DOCS`` texts per task, and this
    process appends each task's counts to the file, in order. The tasks run on the
    ``compute`` cluster for large corpora (``compute.ordered_map``), here otherwise.
    So no process holds the matrix: only a piece each.
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
        file.append(matrix.data, matrix.indices)
        file.finish()
        column_block = _column_block([b.shape[1] for b in blocks])
        return Combined(file, matrix.indptr, column_block, len(blocks), df)

    n = len(texts)
    # The vectorisers' first passes are independent: a task each (on a cluster, in parallel).
    passes = ordered_map(_first_pass, vectorisers, n, docs, COUNT_KEEP_NNZ // len(vectorisers))
    caches, kept_blocks, dfs, max_count = [], [], [], 0
    for vectoriser, (vocabulary, cache, df_k, max_k, blocks_k) in zip(
        vectorisers, passes, strict=True
    ):
        vectoriser.set_vocabulary(vocabulary)
        caches.append(cache)
        kept_blocks.append(blocks_k)
        dfs.append(df_k)
        max_count = max(max_count, max_k)
    df = np.concatenate(dfs)
    nnz = int(df.sum())
    # Pass 2: each chunk's counts of the kept terms, into the file in order: pass 1's
    # if it kept them (small data), otherwise counted again, pieces as tasks.
    sizes = [len(v.vocabulary_) for v in vectorisers]
    # Column numbers fit int32 (4 bytes a non-zero); past 2**31 non-zeros only the row
    # offsets need int64 (scipy then widens the indices of ``Combined.matrix`` as it maps it).
    index = np.int32 if sum(sizes) < 2**31 else np.int64
    # Counts are small integers: uint16 (2 bytes) when they fit, else float32 (exact to 2**24).
    dtypes = (np.uint16 if max_count <= np.iinfo(np.uint16).max else np.float32, index)
    file.start(nnz, *dtypes)
    row_nnz = []
    kept, counted = min(len(blocks) for blocks in kept_blocks), 0
    for c in range(kept):
        block = _side_by_side([blocks[c] for blocks in kept_blocks])
        file.append(block.data, block.indices)
        row_nnz.append(np.diff(block.indptr))
        counted += block.shape[0]
    kept_blocks.clear()
    # A task counts PASS2_DOCS texts; here, a piece is one chunk, so that this process holds
    # one chunk's counts, not a task's (100K messages: train's peak 565 -> 401 MB).
    step = PASS2_DOCS if uses_dask(n) else COUNT_CHUNK
    pieces = [(start, docs[start : start + step]) for start in range(counted, n, step)]
    # Workers on this machine write their counts beside the file rather than send them back.
    beside = file.folder if uses_dask(n) and on_this_machine() else None
    passes = ordered_map(_second_pass, pieces, n, vectorisers, caches, dtypes, beside)
    for counts, nnz_of_rows in passes:
        if beside is None:
            file.append(*counts)
        else:
            file.append_piece(counts)
        row_nnz.append(nnz_of_rows)
    file.finish()
    indptr = np.concatenate([[0], *row_nnz]).cumsum().astype(index if nnz < 2**31 else np.int64)
    assert indptr[-1] == nnz
    return Combined(file, indptr, _column_block(sizes), len(sizes), df)


def _first_pass(
    vectoriser: Any, docs: list[str], budget: int
) -> tuple[dict[str, int], dict[str, Any], np.ndarray, int, list[Any]]:
    """Pass 1 for one vectoriser: its vocabulary of kept terms, numbered alphabetically as
    scikit-learn does; its char_wb word cache, renumbered; the document frequency of each
    kept term (their sum is the non-zeros it adds) and its largest count; its first
    chunks' counts, renumbered, while they are small (``budget`` non-zeros: pass 2 then
    need not count them again)."""
    n = len(docs)
    vocabulary: dict[str, int] = {}
    cache: dict[str, Any] = {}
    df = np.zeros(0, dtype=np.int64)
    blocks, seen_nnz, max_count = [], 0, 0
    for start in range(0, n, COUNT_CHUNK):
        block = count_chunk(vectoriser, docs[start : start + COUNT_CHUNK], vocabulary, False, cache)
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
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    remap = np.full(len(df), -1, dtype=np.int64)
    remap[[i for _, i in kept]] = np.arange(len(kept))
    # char_wb: every word's n-grams are cached; renumber them instead of cutting them again.
    for word, (ids, counts) in cache.items():
        new = remap[ids]
        cache[word] = (new[new >= 0], counts[new >= 0])
    blocks = [_renumbered(b, remap, len(kept)) for b in blocks]
    kept_df = df[[i for _, i in kept]]
    return {term: j for j, (term, _) in enumerate(kept)}, cache, kept_df, max_count, blocks


def _second_pass(
    piece: tuple[int, list[str]],
    vectorisers: list[Any],
    caches: list[dict[str, Any]],
    dtypes: tuple[Any, Any],
    beside: Path | None,
) -> tuple[tuple[Any, Any], np.ndarray]:
    """The counts of a piece's kept terms (its first document's number and its documents),
    vectorisers side by side, ``COUNT_CHUNK`` documents at a time: the values and the column
    indices as the file's ``dtypes`` (6 bytes a non-zero, not 12), written to two files in
    ``beside`` if given (``countfile.write_piece``: their paths instead), and each row's
    number of non-zeros."""
    start, docs = piece
    data_dtype, index_dtype = dtypes
    data, indices, row_nnz = [], [], []
    for first in range(0, len(docs), COUNT_CHUNK):
        chunk = docs[first : first + COUNT_CHUNK]
        block = _side_by_side(
            [
                count_chunk(v, chunk, v.vocabulary_, True, cache)
                for v, cache in zip(vectorisers, caches, strict=True)
            ]
        )
        data.append(block.data.astype(data_dtype))
        indices.append(block.indices.astype(index_dtype, copy=False))
        row_nnz.append(np.diff(block.indptr).astype(np.int32))
    counts = np.concatenate(data), np.concatenate(indices)
    if beside is not None:
        counts = write_piece(beside, f"piece-{start:012d}", *counts)
    return counts, np.concatenate(row_nnz)


def _side_by_side(pieces: list[Any]) -> Any:
    block = sp.hstack(pieces, format="csr") if len(pieces) > 1 else pieces[0]
    block.sort_indices()
    return block


def _renumbered(block: Any, remap: np.ndarray, n_columns: int) -> Any:
    """``block`` with column ``j`` moved to ``remap[j]``, and the columns mapped to -1 dropped."""

    cols = remap[block.indices]
    keep = cols >= 0
    indptr = np.concatenate([[0], np.cumsum(keep)])[block.indptr]
    return sp.csr_matrix((block.data[keep], cols[keep], indptr), shape=(block.shape[0], n_columns))


def _column_block(sizes: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
