"""File IO shared by the stages: atomic writes, hashing, tables, JSON.

Every output is written to a temporary file in the destination folder and then
moved into place with ``os.replace``, so a killed stage never leaves a
half-written file that looks complete. A stage's outputs go through ``outputs()``:
all of them are written first and moved in together at the end, so a stage killed at
any moment leaves the previous set (DVC keeps it: the outputs are ``persist: true``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# The earliest timestamp a zip entry can carry; used to make zip files reproducible.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@contextlib.contextmanager
def atomic_path(dest: Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success move it onto ``dest`` with ``mode``.

    On any exception the temporary file is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def temp_name(dest: Path) -> Path:
    """A fresh temporary name beside ``dest`` (``.NAME.RANDOM.tmp``; .gitignore and
    .dvcignore skip such names, so one a SIGKILL leaves behind is never part of an output)."""
    return dest.parent / f".{dest.name}.{secrets.token_hex(4)}.tmp"


def is_temp_of(path: Path, dest: Path) -> bool:
    """Whether ``path`` is a temporary file or folder of a write to ``dest`` (also nested:
    a writer may stage its own temporary file beside the staged one)."""
    return path.name.endswith(".tmp") and path.name.lstrip(".").startswith(f"{dest.name}.")


class Outputs:
    """A stage's outputs, staged beside their destinations and moved in together.

    ``path(dest)`` names a temporary file (or folder) in ``dest``'s folder for the stage to
    write; ``folder(dest)`` makes a temporary folder beside ``dest`` for a library that
    writes a folder of files itself (DVCLive). ``commit`` moves them in with ``os.replace``,
    in the order they were asked for (so the file readers check last is asked for last),
    with SIGINT and SIGTERM held until the last move: only SIGKILL can fall between two
    moves. Until then the previous outputs are untouched. Use it through ``outputs()``.
    """

    def __init__(self) -> None:
        self._moves: list[tuple[Path, Path, bool]] = []  # (staged, destination, merged)

    def path(self, dest: Path) -> Path:
        return self._stage(Path(dest), merged=False)

    def folder(self, dest: Path) -> Path:
        """An empty temporary folder; at commit each file in it replaces the file at the
        same place under ``dest`` (other files under ``dest`` stay)."""
        tmp = self._stage(Path(dest), merged=True)
        tmp.mkdir()
        return tmp

    def write_bytes(self, dest: Path, data: bytes) -> None:
        self.path(dest).write_bytes(data)

    def write_text(self, dest: Path, text: str) -> None:
        self.write_bytes(dest, text.encode("utf-8"))

    def write_json(self, dest: Path, obj: Any) -> None:
        self.write_text(dest, dumps_json(obj))

    def commit(self) -> None:
        for tmp, _, _ in self._moves:
            if not tmp.exists():
                raise FileNotFoundError(f"{tmp}: a staged output was never written")
        with _signals_held():
            if _stopped:  # a signal whose exception was lost: move nothing in
                _raise_for(_stopped[0])
            for tmp, dest, merged in self._moves:
                (_merge if merged else _move)(tmp, dest)
            self._moves = []

    def discard(self) -> None:
        for tmp, _, _ in self._moves:
            _remove(tmp)
        self._moves = []

    def _stage(self, dest: Path, merged: bool) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _sweep(dest)  # what a SIGKILLed run left behind
        tmp = temp_name(dest)
        self._moves.append((tmp, dest, merged))
        return tmp


@contextlib.contextmanager
def outputs() -> Iterator[Outputs]:
    """Stage a set of outputs (``Outputs``); they are moved in together when the block ends
    without an error, and on any error (SIGINT and SIGTERM too) the staged files are removed
    and the previous outputs stay as they were."""
    staged = Outputs()
    try:
        yield staged
        staged.commit()
    finally:
        staged.discard()


def _move(tmp: Path, dest: Path) -> None:
    """``tmp`` takes the place of ``dest``: one ``os.replace``, unless a folder (a partitioned
    table) replaces or is replaced, when the previous one steps aside for an instant."""
    if not tmp.is_dir():
        os.chmod(tmp, 0o644)
    folders = tmp.is_dir() or (dest.is_dir() and not dest.is_symlink())
    if folders and (dest.exists() or dest.is_symlink()):
        old = temp_name(dest)
        dest.rename(old)
        tmp.rename(dest)
        _remove(old)
    else:
        os.replace(tmp, dest)


def _merge(tmp: Path, dest: Path) -> None:
    """Each file under ``tmp`` onto the same place under ``dest``, then ``tmp`` goes."""
    for path in sorted(p for p in tmp.rglob("*") if not p.is_dir()):
        target = dest / path.relative_to(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o644)
        os.replace(path, target)
    shutil.rmtree(tmp)


def _sweep(dest: Path) -> None:
    for path in dest.parent.iterdir():
        if is_temp_of(path, dest):
            _remove(path)


# SIGINT and SIGTERM received since ``stop_on_signals`` (in the order they came).
_stopped: list[int] = []


def stop_on_signals() -> None:
    """Make SIGINT raise ``KeyboardInterrupt`` and SIGTERM ``SystemExit`` (code 143), so that
    a stopped stage removes what it staged, and remember them: Python ignores an exception
    raised where it runs a hook (an at-fork hook, a ``__del__``), and
    ``Outputs.commit`` then still moves nothing in. A signal the process was started with
    ignored (SIGINT in a background job) stays ignored. Main thread only."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _stop)


def _stop(signum: int, _frame: object) -> None:
    _stopped.append(signum)
    _raise_for(signum)


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends, then take effect (main thread only:
    Python runs signal handlers there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda sig, _frame: caught.append(sig)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for sig in dict.fromkeys(caught):
            signal.raise_signal(sig)


def write_bytes(dest: Path, data: bytes, mode: int = 0o644) -> None:
    with atomic_path(dest, mode) as tmp:
        tmp.write_bytes(data)


def write_text(dest: Path, text: str) -> None:
    write_bytes(dest, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, two-space indent, trailing newline, strict floats."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(dest: Path, obj: Any) -> None:
    write_text(dest, dumps_json(obj))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def write_table(dest: Path, frame: pd.DataFrame, part_rows: int | None = None) -> None:
    """Write a DataFrame as Parquet, atomically and byte-reproducibly: one file, or, with
    more than ``part_rows`` rows, a partitioned table (see ``write_parts``)."""
    if part_rows is not None and len(frame) > part_rows:
        write_parts(dest, (frame.iloc[a : a + part_rows] for a in range(0, len(frame), part_rows)))
        return
    _remove_parts(dest)
    with atomic_path(dest) as tmp:
        _parquet(frame, tmp)


def write_parts(dest: Path, parts: Iterable[pd.DataFrame]) -> int:
    """Write ``parts`` as a partitioned table: the folder ``dest`` of ``part-00000.parquet``,
    ``part-00001.parquet``, ... (one per frame, in order), which pandas, pyarrow and Dask read
    as one table. Written into a temporary folder beside ``dest``, which replaces it (a file
    or folder) only once every part is there. Returns the number of rows."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        rows = 0
        for i, part in enumerate(parts):
            _parquet(part, tmp / f"part-{i:05d}.parquet")
            rows += len(part)
        os.chmod(tmp, 0o755)
        # The previous table (file or folder) steps aside, the new one takes its name.
        old = tmp.with_suffix(".old")
        if dest.exists() or dest.is_symlink():
            dest.rename(old)
        tmp.rename(dest)
        _remove(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_parts(dest: Path) -> None:
    """A partitioned table at ``dest`` makes way for a single file."""
    if Path(dest).is_dir() and not Path(dest).is_symlink():
        shutil.rmtree(dest)


def _parquet(frame: pd.DataFrame, path: Path) -> None:
    # pyarrow here, as pandas in read_table (docs/performance.md).
    import pyarrow as pa
    import pyarrow.parquet as pq

    # One chunk per column: the bytes do not depend on how the frame was put together
    # (read in batches, or joined from pieces normalised apart).
    table = pa.Table.from_pandas(frame, preserve_index=False).combine_chunks()
    pq.write_table(table, path, compression="zstd")


def table_parts(path: Path) -> list[Path]:
    """The Parquet files of a table: ``path`` itself, or a partitioned table's parts in order."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    parts = sorted(path.glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"{path}: a folder without part-*.parquet files")
    return parts


def table_rows(parts: list[Path]) -> int:
    """The rows of Parquet files, from their footers."""
    import pyarrow.parquet as pq  # as pandas in read_table

    return sum(pq.ParquetFile(part).metadata.num_rows for part in parts)


def sha256_table(path: Path) -> str:
    """SHA-256 of a table's bytes: a file's, or a partitioned table's parts in order."""
    parts = table_parts(path)
    if len(parts) == 1:
        return sha256_file(parts[0])
    listing = "".join(f"{sha256_file(part)}  {part.name}\n" for part in parts)
    return sha256_bytes(listing.encode())


def read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet file or partitioned table as a DataFrame (only ``columns``, if given)."""
    # pandas and pyarrow only where tables are read or written: check_params and bundled_data
    # would import them for nothing (docs/performance.md).
    import pandas as pd

    frames = [pd.read_parquet(p, engine="pyarrow", columns=columns) for p in table_parts(path)]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


_SKOPS_ID_RE = re.compile(rb'("__id__": )(\d+)|("file": ")(\d+)(\.npy")')


def _renumber_skops_ids(entries: dict[str, bytes]) -> dict[str, bytes]:
    """Replace the memory addresses skops uses as object ids by 1, 2, 3, … in order.

    skops names objects (``"__id__"``) and array files (``"<id>.npy"``) after
    ``id(obj)``, which differs from run to run. The renaming is a bijection, so
    the file loads exactly as before.
    """
    ids: dict[bytes, bytes] = {}

    def renumber(m: re.Match[bytes]) -> bytes:
        if m.group(2) is not None:
            return m.group(1) + ids.setdefault(m.group(2), str(len(ids) + 1).encode())
        return m.group(3) + ids.setdefault(m.group(4), str(len(ids) + 1).encode()) + m.group(5)

    schema = _SKOPS_ID_RE.sub(renumber, entries.pop("schema.json"))
    out = {"schema.json": schema}
    for name, data in entries.items():
        stem, dot, ext = name.partition(".")
        out[(ids[stem.encode()].decode() if stem.encode() in ids else stem) + dot + ext] = data
    return out


def normalise_zip(path: Path) -> None:
    """Rewrite a zip file in place with fixed timestamps, sorted entries and stable names.

    Zip-based formats stamp every entry with the current time, and skops also
    names objects after their memory address; this makes the same content give
    the same bytes.
    """
    with zipfile.ZipFile(path) as src:
        contents = {info.filename: src.read(info) for info in src.infolist()}
    if "schema.json" in contents:
        contents = _renumber_skops_ids(contents)
    entries = sorted(contents.items())
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, data)
