"""Reading ``ingest.source``: one file, or a folder of partitions read as Dask tasks.

A source that is a local folder is a partitioned dataset: each of its files (sorted by
name; hidden files skipped) is fetched, parsed and checked against the per-row policies
on its own (``read_part``), by a Dask task when the folder is large (``compute``), and
the valid rows are joined in file order. ``ingest.max_bytes`` bounds each file;
``ingest.sha256`` pins the folder's listing of file digests (what ``sha256sum *``
prints, hashed). Rows of a partition are named ``file:line`` in messages.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from sentinelle import compute
from sentinelle.data import cleaning, formats, sources
from sentinelle.errors import UserError
from sentinelle.params import IngestParams

BYTES_PER_MESSAGE = 100  # a folder of N bytes counts as N / this messages for compute.min_rows


@dataclass(frozen=True)
class Read:
    """What was read, and how: the data report's account of the source and its layout."""

    valid: cleaning.Valid | None  # None once deduplicated (its memory goes back)
    where: str  # how errors name the source
    unit: str  # line | row
    sha256: str
    size: int
    compression: str
    member: str | None
    format: str
    encoding: str | None
    rows_read: int
    delimiter: str | None = None
    header: bool | None = None
    sheet: str | None = None
    columns: dict[str, str | int] = field(default_factory=dict)
    partitions: int | None = None  # files of a partitioned source


def read_source(p: IngestParams) -> Read:
    """``p.source`` read and checked row by row (not yet deduplicated)."""
    files = partition_files(p.source)
    if files is None:
        return read_part(p.source, p)
    if not files:
        raise UserError(f"{p.source}: a folder without data files (partitions)")
    size = sum(f.stat().st_size for f in files)
    # Each file with its own sha256 (the folder's pin is checked below, on the listing).
    unpinned = dataclasses.replace(p, sha256=None)
    parts = list(
        compute.ordered_map(read_part, map(str, files), size // BYTES_PER_MESSAGE, unpinned)
    )
    listing = "".join(f"{part.sha256}  {f.name}\n" for part, f in zip(parts, files, strict=True))
    digest = hashlib.sha256(listing.encode()).hexdigest()
    if p.sha256 is not None and digest != p.sha256:
        raise UserError(
            f"{p.source}: sha256 of the partitions' listing is {digest}, but ingest.sha256 "
            f"pins {p.sha256}; the content changed: check it, then update or clear ingest.sha256"
        )
    first = parts[0]
    dropped = dict.fromkeys(first.valid.dropped, 0)
    for part in parts:
        for reason, n in part.valid.dropped.items():
            dropped[reason] += n
    valid = cleaning.Valid(
        pa.concat_arrays([part.valid.texts for part in parts]),
        np.concatenate([part.valid.digests for part in parts]),
        np.concatenate([part.valid.spam for part in parts]),
        np.concatenate([part.valid.rows for part in parts]),
        dropped,
        files=[f.name for f in files],
        file_of=np.repeat(
            np.arange(len(parts), dtype=np.int32), [len(part.valid.rows) for part in parts]
        ),
    )
    size, rows_read = sum(part.size for part in parts), sum(part.rows_read for part in parts)
    del parts  # the per-file lists
    return dataclasses.replace(
        first,
        valid=valid,
        where=p.source,
        sha256=digest,
        size=size,
        member=None,
        rows_read=rows_read,
        partitions=len(files),
    )


def partition_files(source: str) -> list[Path] | None:
    """The data files of a local folder, sorted by name; None if ``source`` is not a folder."""
    if "://" in source or not Path(source).is_dir():
        return None
    return sorted(
        f for f in Path(source).iterdir() if f.is_file() and not f.name.startswith((".", "_"))
    )


def read_part(source: str, p: IngestParams) -> Read:
    """One file: fetched, parsed (``formats``) and checked row by row (``cleaning.validate``)."""
    fetched = sources.fetch(dataclasses.replace(p, source=source))
    parsed = formats.parse(fetched, p)
    valid = cleaning.validate(parsed.records, parsed.where, p)
    return Read(
        valid=valid,
        where=parsed.where,
        unit=parsed.records.unit,
        sha256=fetched.sha256,
        size=fetched.size,
        compression=fetched.compression,
        member=fetched.member,
        format=parsed.format,
        encoding=parsed.encoding,
        rows_read=len(parsed.records.rows),
        delimiter=parsed.delimiter,
        header=parsed.header,
        sheet=parsed.sheet,
        columns=parsed.columns,
    )
