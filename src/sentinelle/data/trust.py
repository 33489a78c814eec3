"""The operator's decisions on feedback: trusted reporters and released reports.

``feedback/trust.yaml`` (beside the feedback file, in git; ingest depends on the whole
``feedback/`` folder, so editing it reruns ingest)::

    trusted: [support-desk]          # reporters whose reports merge without corroboration
    released:                        # reports let out of quarantine, by the text's SHA-256
      - {sha256: 9f2c…, label: spam}

Written by ``sentinelle feedback trust|release`` (sorted, so a review shows one line per
decision), read by ingest (``sentinelle.data.feedback``). A missing file trusts no one.
A reporter is a token's name; records stored without one (older files, the command line
without ``--reporter``) are the one reporter ``UNNAMED``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sentinelle import io, paths
from sentinelle.errors import UserError

__all__ = [
    "TRUST_FILE",
    "UNNAMED",
    "Trust",
    "find",
    "load",
    "quarantined",
    "reporter_key",
    "save",
    "text_sha256",
    "unrelease",
]

TRUST_FILE = paths.TRUST
UNNAMED = "(unnamed)"
LABELS = ("spam", "ham")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEADER = (
    "# Who and what ingest trusts in the feedback: `sentinelle feedback trust NAME`,\n"
    '# `sentinelle feedback release ID|HASH` (README, "The model in production").\n'
)


@dataclass(frozen=True)
class Trust:
    trusted: frozenset[str] = frozenset()
    released: frozenset[tuple[str, str]] = frozenset()  # (sha256 of the text, label)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def reporter_key(reporter: str | None) -> str:
    """The name a report is counted under: its reporter, or ``UNNAMED``."""
    return UNNAMED if reporter is None else reporter


def load(path: Path = TRUST_FILE) -> Trust:
    """The decisions in ``path``; a missing file is no decision. A bad entry is a one-line
    ``UserError`` naming the file, the entry and what is allowed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return Trust()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the trust file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    data = {} if data is None else data
    if not isinstance(data, dict) or set(data) - {"trusted", "released"}:
        keys = ", ".join(map(repr, data)) if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{path}: holds {keys}; allowed: a mapping of trusted, released")
    trusted = _trusted(data.get("trusted") or [], path)
    return Trust(trusted, _released(data.get("released") or [], path))


def _trusted(names: Any, path: Path) -> frozenset[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise UserError(f"{path}: trusted = {names!r} is invalid: must be a list of reporter names")
    return frozenset(names)


def _released(entries: Any, path: Path) -> frozenset[tuple[str, str]]:
    if not isinstance(entries, list):
        raise UserError(f"{path}: released = {entries!r} is invalid: must be a list")
    out = set()
    for i, entry in enumerate(entries, 1):
        if (
            not isinstance(entry, dict)
            or set(entry) != {"sha256", "label"}
            or not isinstance(entry["sha256"], str)
            or not _SHA256.fullmatch(entry["sha256"])
            or entry["label"] not in LABELS
        ):
            raise UserError(
                f"{path}: released entry {i} = {entry!r} is invalid: must be "
                "{sha256: <64 lower-case hex digits>, label: spam|ham}"
            )
        out.add((entry["sha256"], entry["label"]))
    return frozenset(out)


def save(trust: Trust, path: Path = TRUST_FILE) -> None:
    """Write ``trust`` to ``path`` atomically, sorted."""
    data = {
        "trusted": sorted(trust.trusted),
        "released": [{"sha256": h, "label": label} for h, label in sorted(trust.released)],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    io.write_text(Path(path), _HEADER + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def quarantined(report: Any, where: str) -> list[dict[str, Any]]:
    """The quarantined reports of a data report (``data/report.json``)."""
    entry = report.get("feedback") if isinstance(report, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("quarantine"), list):
        raise UserError(
            f"{where}: no feedback in this data report: set ingest.feedback and run `dvc repro`"
        )
    return entry["quarantine"]


def find(entries: list[dict[str, Any]], key: str, label: str | None) -> dict[str, Any]:
    """The one quarantined report (text and label) that ``key`` names: an id, or the text's
    SHA-256 or a prefix of it of at least 8 hex digits."""
    digest = key.lower()
    hex_prefix = len(digest) >= 8 and all(c in "0123456789abcdef" for c in digest)
    matches = {
        (e["sha256"], e["label"]): e
        for e in entries
        if (key in e["ids"] or (hex_prefix and e["sha256"].startswith(digest)))
        and label in (None, e["label"])
    }
    if not matches:
        raise UserError(
            f"{key!r}: no quarantined report has this id or text hash"
            f"{f' and label {label}' if label else ''} "
            "(`sentinelle feedback quarantine` lists them; hashes need 8 hex digits or more)"
        )
    if len(matches) > 1:
        found = ", ".join(f"{h[:12]} ({lab})" for h, lab in sorted(matches))
        raise UserError(
            f"{key!r} names {len(matches)} quarantined reports: {found}; "
            "give more of the hash, or --label"
        )
    return next(iter(matches.values()))


def unrelease(trust: Trust, key: str) -> tuple[Trust, tuple[str, str]]:
    """``trust`` without the one released report whose hash starts with ``key``."""
    digest = key.lower()
    matches = sorted(r for r in trust.released if len(digest) >= 8 and r[0].startswith(digest))
    if len(matches) != 1:
        raise UserError(
            f"{key!r}: {'no' if not matches else len(matches)} released reports have a text hash "
            "starting so; give 8 hex digits or more of one listed in the trust file"
        )
    return Trust(trust.trusted, trust.released - {matches[0]}), matches[0]
