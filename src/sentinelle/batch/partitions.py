"""Scoring partitioned data with Dask: Parquet, CSV or JSON Lines partitions in, a directory of
scored partitions out, in this process or on a Dask cluster.

``score_partitions`` reads files, directories or globs (local or ``s3://``, through fsspec)
as one Dask DataFrame, one partition per file, and adds ``spam_score``, ``is_spam`` and
``model_version`` to every row, keeping the input's columns (an ``id`` passes through
untouched). The model travels in the task graph as its bytes and its metadata: each worker
process writes them to a private folder once and loads them with the same safe loader
(allowlisted types, SHA-256 checked) and scores with the same ``Scorer`` as the in-process
path, so the scores are bit-identical. ``scheduler``: ``None`` runs the graph in this
process (Dask's synchronous scheduler), ``"local"`` starts a ``LocalCluster`` of worker
processes on 127.0.0.1, anything else is a scheduler address (``tcp://host:8786``).
Output partitions are written by the tasks themselves (``part-00000.parquet``, ...), so a
task that Dask retries after a worker died rewrites its own file: every row exactly once.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sentinelle.compute import client_for
from sentinelle.errors import UserError
from sentinelle.serving.scorer import Scorer, metadata_path_for

log = logging.getLogger("sentinelle")

SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"}
OUTPUT_FORMATS = ("parquet", "csv", "jsonl")
SCORE_COLUMNS = ("spam_score", "is_spam", "model_version")


@dataclass(frozen=True)
class PartitionReport:
    rows: int
    spam: int
    partitions: int
    threshold: float
    operating_point: str
    model_version: str
    scheduler: str
    workers: int


def is_partitioned(inputs: list[str]) -> bool:
    """Whether ``inputs`` need this path: several, a directory, a glob, Parquet or s3://."""
    if len(inputs) != 1:
        return True
    only = inputs[0]
    return (
        only.startswith("s3://")
        or glob.has_magic(only)
        or Path(only).is_dir()
        or only.endswith(".parquet")
    )


def expand(inputs: list[str]) -> tuple[list[str], str]:
    """The files ``inputs`` name, sorted per input, and their one format."""
    files: list[str] = []
    for item in inputs:
        found = _files_of(item)
        if not found:
            raise UserError(
                f"{item}: no .parquet, .csv, .tsv or .jsonl files found (a file, a directory "
                "of partitions or a glob, local or s3://)"
            )
        files += found
    formats = {SUFFIXES[PurePosixPath(f).suffix.lower()] for f in files}
    if len(formats) > 1:
        raise UserError(
            f"the inputs mix formats ({', '.join(sorted(formats))}); score one format at a time"
        )
    return files, formats.pop()


def _files_of(item: str) -> list[str]:
    if item.startswith("s3://"):
        import fsspec

        fs = fsspec.filesystem("s3")
        path = item[len("s3://") :]
        if glob.has_magic(path):
            names = fs.glob(path)
        elif fs.isdir(path):
            names = fs.find(path)
        else:
            names = [path] if fs.exists(path) else []
        return [f"s3://{n}" for n in sorted(names) if _is_data(n)]
    if glob.has_magic(item):
        return sorted(n for n in glob.glob(item) if Path(n).is_file() and _is_data(n))
    path = Path(item)
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*") if p.is_file() and _is_data(str(p)))
    if path.is_file():
        if not _is_data(item):
            raise UserError(f"{item}: not a .parquet, .csv, .tsv or .jsonl file")
        return [item]
    return []


def _is_data(name: str) -> bool:
    pure = PurePosixPath(name)
    return pure.suffix.lower() in SUFFIXES and not pure.name.startswith((".", "_"))


def _read(files: list[str], fmt: str, text_column: str) -> Any:
    import dask.dataframe as dd

    if fmt == "parquet":
        frame = dd.read_parquet(files, split_row_groups=False)
    elif fmt == "jsonl":
        frame = dd.read_json(files, lines=True, blocksize=None, dtype=False)
    else:  # one partition per file: a quoted newline never splits a row
        sep = "\t" if fmt == "tsv" else ","
        frame = dd.read_csv(files, sep=sep, dtype=str, keep_default_na=False, blocksize=None)
    if text_column not in frame.columns:
        shown = ", ".join(repr(c) for c in list(frame.columns)[:20])
        raise UserError(
            f"{files[0]}: no column {text_column!r} (columns: {shown}); "
            "choose one with --text-column"
        )
    clash = [c for c in SCORE_COLUMNS if c in frame.columns]
    if clash:
        raise UserError(f"{files[0]}: already has column(s) {', '.join(clash)}; rename them first")
    return frame


# ---------------------------------------------------------------- inside a worker

_SCORERS: dict[str, Scorer] = {}  # per process: model SHA-256 -> loaded scorer


def _scorer(model: bytes, metadata: dict[str, Any]) -> Scorer:
    """The scorer for these model bytes, loaded once per process with the safe loader."""
    sha = metadata["model_sha256"]
    if sha not in _SCORERS:
        folder = Path(tempfile.mkdtemp(prefix="sentinelle-model-"))
        (folder / "model.skops").write_bytes(model)
        (folder / "model.json").write_text(_json(metadata), encoding="utf-8")
        _SCORERS[sha] = Scorer.load(folder / "model.skops")  # SHA-256 checked here
        shutil.rmtree(folder, ignore_errors=True)
    return _SCORERS[sha]


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data)


def score_frame(
    frame: Any, model: bytes, metadata: dict[str, Any], text_column: str, threshold: float
) -> Any:
    """One partition with its score columns (the same ``Scorer.scores`` as everywhere)."""
    scorer = _scorer(model, metadata)
    texts = frame[text_column]
    bad = texts.isna() | ~texts.map(lambda t: isinstance(t, str) and bool(t.strip()))
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        raise UserError(
            f"a partition has {int(bad.sum())} row(s) without text in {text_column!r} "
            f"(first: row {first + 1} of the partition); clean them before scoring"
        )
    scores = scorer.scores(texts.tolist()) if len(frame) else []
    out = frame.copy()
    out["spam_score"] = scores
    out["is_spam"] = out["spam_score"] >= threshold
    out["model_version"] = scorer.version
    return out


def _write_partition(frame: Any, folder: str, fmt: str, number: int) -> tuple[int, int]:
    """Write one scored partition as ``part-NNNNN.<fmt>`` (a retried task rewrites its own
    file); return its rows and spam counts."""
    import fsspec

    name = f"{folder.rstrip('/')}/part-{number:05d}.{fmt}"
    with fsspec.open(name, "wb") as fh:
        if fmt == "parquet":
            frame.to_parquet(fh, index=False)
        elif fmt == "csv":
            fh.write(frame.to_csv(index=False).encode("utf-8"))
        else:
            fh.write(frame.to_json(orient="records", lines=True).encode("utf-8"))
    return len(frame), int(frame["is_spam"].sum())


# ---------------------------------------------------------------------- the driver


@contextlib.contextmanager
def _output_folder(dest: str) -> Iterator[str]:
    """A folder to write into; a local ``dest`` appears whole or not at all."""
    if "://" in dest:
        yield dest
        return
    target = Path(dest)
    if target.exists() and not target.is_dir():
        raise UserError(f"{dest}: exists and is not a directory (the output is a directory)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield str(tmp)
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def score_partitions(
    inputs: list[str],
    dest: str,
    *,
    model_path: Path,
    metadata_path: Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    text_column: str = "text",
    operating_point: str | None = None,
    output_format: str = "parquet",
) -> PartitionReport:
    """Score every row of the partitions ``inputs`` name into the directory ``dest``."""
    import dask

    if output_format not in OUTPUT_FORMATS:
        raise UserError(
            f"--output-format {output_format}: partitions are {', '.join(OUTPUT_FORMATS)}"
        )
    scorer = Scorer.load(model_path, metadata_path)  # checks the model here, before any task
    point, threshold = scorer.operating_point(operating_point)
    model = Path(model_path).read_bytes()
    if hashlib.sha256(model).hexdigest() != scorer.metadata["model_sha256"]:
        raise UserError(f"{model_path}: changed while loading; try again")
    files, fmt = expand(inputs)
    frame = _read(files, fmt, text_column)
    meta = frame._meta.assign(spam_score=0.0, is_spam=False, model_version="")
    with _output_folder(dest) as folder, client_for(scheduler, workers) as (client, where, n):
        payload = dask.delayed(model, pure=True), dask.delayed(scorer.metadata, pure=True)
        scored = frame.map_partitions(score_frame, *payload, text_column, threshold, meta=meta)
        parts = scored.to_delayed()
        writes = [
            dask.delayed(_write_partition, pure=False)(part, folder, output_format, i)
            for i, part in enumerate(parts)
        ]
        if client is None:
            _SCORERS[scorer.metadata["model_sha256"]] = scorer  # loaded above: reuse it
        # With a client, dask.compute runs on its cluster.
        (counts,) = dask.compute(writes, scheduler="synchronous" if client is None else None)
    return PartitionReport(
        rows=sum(rows for rows, _ in counts),
        spam=sum(spam for _, spam in counts),
        partitions=len(parts),
        threshold=threshold,
        operating_point=point,
        model_version=scorer.version,
        scheduler=where,
        workers=n,
    )


__all__ = ["PartitionReport", "expand", "is_partitioned", "metadata_path_for", "score_partitions"]
